"""llm_backend.oracles and llm_backend.pairs: preference oracles on text and pair construction, against known answers
and independent computations (tiny float64 classifiers built from a config, nothing downloaded).

Tolerances: a batched classifier against the same classifier run on one text at a time, BATCHED_TOL = 1e-8 (float64
weights, but HF's eager attention softmaxes in float32, and padding changes that sum's rounding on some CPU
kernels); the protocol identity p(y ≻ y') + p(y' ≻ y) = 1, exactly; Monte
Carlo estimates, stated per test in standard errors computed from the exact variance.
"""

import math
import re
import zlib

import pytest
import torch

pytest.importorskip("transformers")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from llm_backend.oracles import (  # noqa: E402
    CallableOracle, Environment, GameOracle, PairwiseOracle, RewardModelOracle, _symmetric,
)
from llm_backend.pairs import tournament_pairs, win_rate_pairs  # noqa: E402
from llm_backend.text import TextCodec, char_tokenizer, game_tokenizer  # noqa: E402
from preference_games.samplers import PairSampler, Roles  # noqa: E402
from preference_games.sequences import (  # noqa: E402
    AutoregressivePolicy, SequenceGame, SequenceOracle, Tokens, sequence_game_by_name,
)

ALPHABET = "ab c"
TOKENIZER = char_tokenizer(ALPHABET)  # <pad> 0, <bos> 1, <eos> 2, <unk> 3, then one id per character
CODEC = TextCodec(TOKENIZER)
RPS = sequence_game_by_name("rps-sequences")  # 1 prompt, 27 strings, P in {0, ½, 1}
RANDOM = sequence_game_by_name("random-sequences")  # 2 prompts, 27 strings, P continuous


def classifier(seed=0, labels=1, pad=0, context=64):
    """A tiny float64 Llama sequence classifier over TOKENIZER's ids (eager attention; see BATCHED_TOL)."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=len(TOKENIZER), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=context,
                         num_labels=labels, pad_token_id=pad, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForSequenceClassification(config).to(torch.float64)


@pytest.fixture(scope="module")
def reward_model():
    return classifier(seed=0)


@pytest.fixture(scope="module")
def pair_model():
    return classifier(seed=1)


def alone(model, text: str) -> float:
    """The classifier's output on one text, unpadded: the independent computation."""
    ids = torch.tensor([TOKENIZER(text).input_ids])  # [1, T]
    with torch.no_grad():
        return float(model(input_ids=ids).logits[0, 0])


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


PROMPTS = ["a", "b c", "ab", "c c c ab"]
Y = ["b", "abc a", "", "cc"]
Y2 = ["c ab", "a", "bb", "cc"]


def tokens(prompts, y, y2):
    return CODEC.encode_prompts(prompts), CODEC.encode_responses(y), CODEC.encode_responses(y2)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


#: How closely a text's score in a padded mini-batch matches its score alone. The model is float64, but HF's eager
#: attention takes its softmax in float32, and the rounding of that row sum depends on the row's length under some
#: CPU kernels: 5.6e-17 apart on AVX-512, 1.9e-10 under ATEN_CPU_CAPABILITY=avx2 (measured on the pairwise test).
BATCHED_TOL = 1e-8

# ================================================================================================= reward model
def test_reward_model_is_bradley_terry_on_independent_forward_passes(reward_model):
    oracle = RewardModelOracle(reward_model, TOKENIZER, CODEC, batch_size=3)  # mini-batches of 3 of the 8 texts
    p = oracle.prob(*tokens(PROMPTS, Y, Y2))  # [1, 4]
    expected = [sigmoid(alone(reward_model, x + y) - alone(reward_model, x + y2)) for x, y, y2 in zip(PROMPTS, Y, Y2)]
    assert p.dtype == torch.float64 and p.shape == (1, 4)
    assert torch.allclose(p[0], torch.tensor(expected, dtype=torch.float64), atol=BATCHED_TOL, rtol=0)
    assert p[0, 3] == 0.5  # the same text on both sides
    # a text ending in the pad id (a tokenizer whose pad is its EOS may end texts so) is pooled as HF pools it alone
    assert oracle.rewards(["a"], ["bc<pad>"]).item() == pytest.approx(alone(reward_model, "abc<pad>"), abs=BATCHED_TOL)
    assert len({round(v, 6) for v in expected}) == 4  # the rewards differ: the check sees the model
    assert oracle.calls == 4
    r = oracle.rewards(PROMPTS, Y)
    assert torch.allclose(r, torch.tensor([alone(reward_model, x + y) for x, y in zip(PROMPTS, Y)],
                                          dtype=torch.float64), atol=BATCHED_TOL, rtol=0)
    assert not reward_model.training


def test_reward_model_context_and_truncation(reward_model):
    long = "ab " * 30  # 90 characters + BOS, longer than the context of 64
    with pytest.raises(ValueError, match=r"91 tokens exceeds .*max_position_embeddings=64.*max_length"):
        RewardModelOracle(reward_model, TOKENIZER, CODEC).compare(["a"], [long], ["b"])
    oracle = RewardModelOracle(reward_model, TOKENIZER, CODEC, max_length=20)
    first20 = TOKENIZER.decode(TOKENIZER("a" + long).input_ids[:20], skip_special_tokens=True)  # right truncation
    expected = sigmoid(alone(reward_model, first20) - alone(reward_model, "ab"))
    assert oracle.compare(["a"], [long], ["b"]).item() == pytest.approx(expected, abs=BATCHED_TOL)


def test_reward_model_refuses_what_it_cannot_score(reward_model):
    with pytest.raises(ValueError, match="num_labels=2"):
        RewardModelOracle(classifier(labels=2), TOKENIZER, CODEC)
    no_pad = classifier()
    no_pad.config.pad_token_id = None
    with pytest.raises(ValueError, match="no pad_token_id"):
        RewardModelOracle(no_pad, TOKENIZER, CODEC)
    with pytest.raises(ValueError, match="pads with id 0 but the model's config has pad_token_id=2"):
        RewardModelOracle(classifier(pad=2), TOKENIZER, CODEC)
    tokenizer = char_tokenizer(ALPHABET)
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match="tokenizer has no pad token"):
        RewardModelOracle(reward_model, tokenizer, CODEC)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            RewardModelOracle(reward_model, TOKENIZER, CODEC, batch_size=bad)
    for bad in (0, 65, True):  # the context is 64
        with pytest.raises(ValueError, match=r"max_length must be .* in \[1, max_position_embeddings=64\]"):
            RewardModelOracle(reward_model, TOKENIZER, CODEC, max_length=bad)
    oracle = RewardModelOracle(reward_model, TOKENIZER, CODEC)
    for empty in ("", "<pad>"):  # nothing but pads for the classifier to pool at
        with pytest.raises(ValueError, match="no token other than the pad token"):
            oracle.compare([""], [empty], ["b"])
    with pytest.raises(ValueError, match="as many prompts as responses"):
        oracle.compare(["a"], ["b", "c"], ["b"])
    with pytest.raises(ValueError, match="share"):
        oracle.prob(*tokens(["a"], ["b", "c"], ["b", "c"]))


def test_from_pretrained_round_trip_and_missing_directory(reward_model, pair_model, tmp_path):
    for model, cls, kwargs in ((reward_model, RewardModelOracle, {}), (pair_model, PairwiseOracle,
                                                                      {"template": "{prompt}|{a}|{b}"})):
        folder = tmp_path / cls.__name__
        model.save_pretrained(folder)
        TOKENIZER.save_pretrained(folder)
        loaded = cls.from_pretrained(str(folder), CODEC, model_kwargs={"dtype": torch.float64,
                                                                       "attn_implementation": "eager"}, **kwargs)
        original = cls(model, TOKENIZER, CODEC, **kwargs)
        assert torch.equal(loaded.prob(*tokens(PROMPTS, Y, Y2)), original.prob(*tokens(PROMPTS, Y, Y2)))
        missing = tmp_path / "nothing-here"
        with pytest.raises(ValueError, match=f"no model directory at {re.escape(str(missing))}$"):
            cls.from_pretrained(str(missing), CODEC)


# ============================================================================================= pairwise model
def test_pairwise_model_averages_both_orders(pair_model):
    template = "{prompt}|{a}|{b}"
    oracle = PairwiseOracle(pair_model, TOKENIZER, CODEC, template=template, batch_size=5)
    x, y, y2 = tokens(PROMPTS, Y, Y2)
    p, q = oracle.prob(x, y, y2), oracle.prob(x, y2, y)  # [1, 4] each
    forward = [sigmoid(alone(pair_model, f"{x}|{a}|{b}")) for x, a, b in zip(PROMPTS, Y, Y2)]
    backward = [sigmoid(alone(pair_model, f"{x}|{b}|{a}")) for x, a, b in zip(PROMPTS, Y, Y2)]
    expected = torch.tensor([0.5 * (f + 1 - b) for f, b in zip(forward, backward)], dtype=torch.float64)
    assert torch.allclose(p[0], expected, atol=BATCHED_TOL, rtol=0)
    assert torch.equal(p + q, torch.ones_like(p))  # exactly
    assert max(abs(f + b - 1) for f, b in zip(forward, backward)) > 1e-3  # the raw model is not symmetric
    assert oracle.calls == 8  # a pair scored in both orders counts once


@pytest.mark.parametrize("template", ["{prompt} {a}", "{prompt} {a} {b} {c}", "{0} {a} {b}", "{prompt {a} {b}"])
def test_pairwise_template_must_hold_prompt_a_and_b(pair_model, template):
    with pytest.raises(ValueError, match="template"):
        PairwiseOracle(pair_model, TOKENIZER, CODEC, template=template)


# ==================================================================================================== callables
def by_length(x, a, b):
    return 0.9 if len(a) > len(b) else 0.3  # inconsistent across orders: 0.9 + 0.3 ≠ 1


@pytest.mark.parametrize("batched", [False, True])
def test_callable_oracle_known_answers(batched):
    fn = (lambda xs, as_, bs: [by_length(*t) for t in zip(xs, as_, bs)]) if batched else by_length
    oracle = CallableOracle(fn, CODEC, batched=batched)
    p = oracle.compare(["x"] * 3, ["long", "s", "ab"], ["s", "long", "cd"])
    # ½(0.9 + 1 − 0.3) = 0.8 when a is longer, its complement 0.2, ½(0.3 + 1 − 0.3) = ½ at equal lengths
    assert torch.allclose(p, torch.tensor([0.8, 0.2, 0.5], dtype=torch.float64), atol=1e-15)
    assert oracle.calls == 3


def test_both_orders_are_complements_to_the_last_bit():
    # q(a, b) = 0.51 and q(b, a) = 0.4: averaging each order's own way, ½(q + 1 − q') + ½(q' + 1 − q), misses 1
    assert 0.5 * (0.51 + 1 - 0.4) + 0.5 * (0.4 + 1 - 0.51) != 1
    oracle = CallableOracle(lambda x, a, b: 0.51 if a == "ab" else 0.4, CODEC)
    p, q = oracle.compare(["x"], ["ab"], ["ba"]), oracle.compare(["x"], ["ba"], ["ab"])
    assert p.item() == pytest.approx(0.555, abs=1e-15) and p.item() + q.item() == 1


def test_a_batched_judge_sees_the_same_questions_in_both_orders():
    def judge(xs, as_, bs):  # answers that drift with the position in the batch, as a batched model's last bits can
        return [(0.7 if len(a) > len(b) else 0.3) + 1e-3 * i / len(xs) for i, (a, b) in enumerate(zip(as_, bs))]

    oracle = CallableOracle(judge, CODEC, batched=True)
    a, b = ["ccc", "a", "b c", "aa"], ["a", "bb", "ab", "aa"]
    p, q = oracle.compare(["x"] * 4, a, b), oracle.compare(["x"] * 4, b, a)
    assert torch.equal(p + q, torch.ones(4, dtype=torch.float64))
    assert p[3] == 0.5  # a response against itself


def test_callable_oracle_broadcasts_configurations():
    oracle = CallableOracle(by_length, CODEC)
    x = CODEC.encode_prompts(["a", "b"])  # [1, 2]
    y = CODEC.encode_responses(["aa", "a", "a", "a"])  # [1, 4] seen as [2, 2]
    y = Tokens(y.ids.reshape(2, 2, -1), y.lengths.reshape(2, 2))
    y2 = CODEC.encode_responses(["a", "a"])  # [1, 2]
    assert torch.allclose(oracle.prob(x, y, y2), torch.tensor([[0.8, 0.5], [0.5, 0.5]], dtype=torch.float64))


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), "high", None, float("inf")])
@pytest.mark.parametrize("batched", [False, True])
def test_callable_oracle_refuses_values_that_are_not_probabilities(value, batched):
    fn = (lambda xs, as_, bs: [value] * len(xs)) if batched else (lambda x, a, b: value)
    with pytest.raises(ValueError, match=f"returned {value!r} for .*probability in \\[0, 1\\]"):
        CallableOracle(fn, CODEC, batched=batched).compare(["x"], ["a"], ["b"])


def test_callable_oracle_bad_inputs():
    with pytest.raises(ValueError, match="returned 1 values for 2 questions"):
        CallableOracle(lambda xs, as_, bs: [0.5], CODEC, batched=True).compare(["x"], ["a"], ["b"])
    with pytest.raises(ValueError, match="needs a function"):
        CallableOracle(0.5, CODEC)
    with pytest.raises(ValueError, match="returned 2.0") as error:  # a long text is cut: the message stays one line
        CallableOracle(lambda x, a, b: 2.0, CODEC).compare(["a\n" * 500], ["a"], ["b"])
    assert len(str(error.value)) < 250 and "\n" not in str(error.value).replace("\\n", "")


# ===================================================================================== the protocol's identity
texts = st.text(alphabet=ALPHABET, min_size=0, max_size=6)


# prompts are not empty: an empty prompt and response leave the classifier no token to score
@given(st.lists(st.tuples(texts.filter(bool), texts, texts), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_every_oracle_sums_to_one_exactly(reward_model, pair_model, triples, salt):
    prompts, y, y2 = map(list, zip(*triples))
    # an arbitrary, order-dependent judge: a (reproducible) hash of the strings
    judge = CallableOracle(lambda x, a, b: zlib.crc32(f"{x}|{a}|{b}|{salt}".encode()) % 1001 / 1000, CODEC)
    oracles = [RewardModelOracle(reward_model, TOKENIZER, CODEC, batch_size=3),
               PairwiseOracle(pair_model, TOKENIZER, CODEC, batch_size=3), judge]
    x, a, b = tokens(prompts, y, y2)
    for oracle in oracles:
        p, q = oracle.prob(x, a, b), oracle.prob(x, b, a)
        assert ((0 <= p) & (p <= 1)).all()
        assert torch.equal(p + q, torch.ones_like(p)), type(oracle).__name__


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=50))
def test_symmetric_rounds_the_two_orders_to_complements(u):
    u = torch.tensor(u, dtype=torch.float64)
    assert torch.equal(_symmetric(u) + _symmetric(-u), torch.ones_like(u))
    assert torch.allclose(_symmetric(u), 0.5 * (1 + u), atol=1e-16, rtol=0)


@given(st.integers(0, 1), st.lists(st.tuples(st.integers(0, 26), st.integers(0, 26)), min_size=1, max_size=8))
def test_game_oracle_sums_to_one(x, pairs):
    oracle = GameOracle(RANDOM, TextCodec(game_tokenizer(RANDOM)))
    y, y2 = map(list, zip(*pairs))
    prompts = RANDOM.prompt_tokens(torch.full((1, len(y)), x))
    a, b = (Tokens(RANDOM.responses().ids[:, i], RANDOM.responses().lengths[:, i]) for i in (y, y2))
    assert torch.equal(oracle.prob(prompts, a, b) + oracle.prob(prompts, b, a), torch.ones(1, len(y),
                                                                                          dtype=torch.float64))


# ================================================================================================ game oracle
@pytest.mark.parametrize("game", [RPS, RANDOM], ids=["rps-sequences", "random-sequences"])
def test_game_oracle_equals_sequence_oracle_on_every_pair(game):
    X, Yn = game.num_prompts, game.num_responses
    x = torch.arange(X).repeat_interleave(Yn * Yn)  # [X·Y·Y]: every (x, y, y2)
    y = torch.arange(Yn).repeat_interleave(Yn).repeat(X)
    y2 = torch.arange(Yn).repeat(X * Yn)
    strings = game.responses()
    prompts = game.prompt_tokens(x[None])
    a, b = Tokens(strings.ids[:, y], strings.lengths[:, y]), Tokens(strings.ids[:, y2], strings.lengths[:, y2])
    oracle = GameOracle(game, TextCodec(game_tokenizer(game)))
    assert torch.equal(oracle.prob(prompts, a, b), SequenceOracle(game).prob(prompts, a, b))
    assert oracle.calls == X * Yn * Yn


@pytest.mark.parametrize("prompt, response, message", [
    ("<x1>", "aaa", "not a prompt of"),  # rps-sequences has one prompt
    ("hello", "aaa", "not a prompt of"),
    ("<x0>", "aad", "not a response of"),  # only a, b, c
    ("<x0>", "aa", "not a response of"),  # three letters
    ("<x0>", "aaaa", "not a response of"),
])
def test_game_oracle_refuses_text_that_is_not_the_game(prompt, response, message):
    oracle = GameOracle(RPS, TextCodec(game_tokenizer(RPS)))
    with pytest.raises(ValueError, match=message):
        oracle.compare([prompt], [response], ["abc"])
    assert oracle.compare(["<bos><x0>"], ["baa"], ["aaa"]).item() == 1.0  # paper beats rock


def test_game_oracle_needs_letters_for_every_response_token():
    with pytest.raises(ValueError, match="at most 26 response tokens as letters; .* has 27"):
        GameOracle(SequenceGame.random_intransitive(27, 1), CODEC)


# ================================================================================================ environment
def test_environment_is_the_prompt_source_and_the_oracle_of_pair_sampler():
    codec = TextCodec(game_tokenizer(RANDOM))
    env = Environment(SequenceOracle(RANDOM), GameOracle(RANDOM, codec))
    policy = AutoregressivePolicy.for_game(RANDOM, seed=0, dtype=torch.float64)
    pairs = PairSampler("policy").sample(Roles(policy, policy.snapshot()), env, 32, seeded(0), "soft")
    assert torch.equal(pairs.pref, SequenceOracle(RANDOM).prob(pairs.x, pairs.y, pairs.y2))
    assert env.calls == env.oracle.calls == 32
    assert set(RANDOM.prompt_index(pairs.x)[0].tolist()) == {0, 1}
    exact = Environment(SequenceOracle(RANDOM), SequenceOracle(RANDOM))  # an oracle without a counter of its own
    PairSampler("policy").sample(Roles(policy, policy.snapshot()), exact, 16, seeded(0), "soft")
    assert exact.calls == 16


def test_environment_draws_from_a_prompt_pool():
    pool = CODEC.encode_prompts(["a", "bb", "c c c"])  # [1, 3, 6]: lengths 2, 3, 6
    env = Environment(pool, CallableOracle(by_length, CODEC))
    drawn = env.sample(300, seeded(1))
    texts = CODEC.decode_prompts(drawn)
    assert {t: texts.count(t) for t in set(texts)}.keys() == {"a", "bb", "c c c"}
    assert all(abs(texts.count(t) - 100) < 40 for t in ("a", "bb", "c c c"))  # uniform: 100 ± 4.9σ
    only_short = env.sample(1, seeded(2))
    assert only_short.ids.shape[-1] == int(only_short.lengths.max())  # trimmed to the widest drawn


@pytest.mark.parametrize("prompts, oracle, message", [
    ("not a source", CallableOracle(by_length, CODEC), "prompts must be Tokens or a prompt source"),
    (CODEC.encode_prompts(["a"]), by_length, "oracle must have prob"),
    (Tokens(torch.zeros(2, 1, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.long)),
     CallableOracle(by_length, CODEC), r"Tokens \[1, N, L\]"),
])
def test_environment_bad_inputs(prompts, oracle, message):
    with pytest.raises(ValueError, match=message):
        Environment(prompts, oracle)


# ================================================================================================= tournaments
class CountingEnv(Environment):
    """An Environment that also counts its ``prob`` calls (the batched oracle calls)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.batches = 0

    def prob(self, *args):
        self.batches += 1
        return super().prob(*args)


def score(text: str) -> float:
    """A known, injective score of RANDOM's strings (its base-3 value, permuted): the true ranking."""
    value = int(text.translate(str.maketrans("abc", "012")), 3)
    return float((value * 7) % 27)


def bradley_terry(x, a, b):
    return 0.0 if x == "<x1>" else sigmoid(score(a) - score(b))  # prompt 1: the oracle calls everything a draw


def test_tournament_finds_best_and_worst_in_eleven_comparisons():
    codec = TextCodec(game_tokenizer(RANDOM))
    # on prompt 1 the callable returns 0 in both orders: p = ½(0 + 1 − 0) = ½, every match a tie
    env = CountingEnv(SequenceOracle(RANDOM), CallableOracle(bradley_terry, codec))
    policy = AutoregressivePolicy.for_game(RANDOM, seed=0, head_scale=3.0)
    B, K = 12, 8
    generator = seeded(4)
    pairs = tournament_pairs(PairSampler("policy"), Roles(policy, policy.snapshot()), env, B, K, generator)
    assert env.calls == 11 * B and env.batches == 4  # log₂8 rounds + the final, each one batched call
    # replay the draws to know every prompt's candidates
    generator = seeded(4)
    x = env.sample(B, generator)
    y = policy.snapshot().sample(x, K, generator)
    candidates = [[score(t) for t in codec.decode_responses(y)[b * K:(b + 1) * K]] for b in range(B)]
    prompts = RANDOM.prompt_index(x)[0].tolist()
    kept = [b for b in range(B) if prompts[b] == 0 and max(candidates[b]) > min(candidates[b])]
    assert 0 < len(kept) < B
    assert [score(t) for t in codec.decode_responses(pairs.y)] == [max(candidates[b]) for b in kept]
    assert [score(t) for t in codec.decode_responses(pairs.y2)] == [min(candidates[b]) for b in kept]
    assert RANDOM.prompt_index(pairs.x)[0].tolist() == [0] * len(kept)  # the ties of prompt 1 are dropped
    assert torch.equal(pairs.weight, torch.full((1, len(kept)), 1 / len(kept), dtype=policy.dtype))
    assert torch.equal(pairs.pref, torch.ones(1, len(kept), dtype=policy.dtype))


class Fixed:
    """A frozen 'policy' that answers every prompt with the same candidates, in order."""

    dtype, device = torch.float64, torch.device("cpu")

    def __init__(self, texts):
        self.candidates = CODEC.encode_responses(texts)  # [1, K, L]

    def sample(self, prompts, n, generator):
        assert n == self.candidates.shape[1]
        B = prompts.shape[1]
        return Tokens(self.candidates.ids.repeat(1, B, 1), self.candidates.lengths.repeat(1, B))  # [1, B·K, L]


def test_tournament_on_a_transformer_finds_the_reward_models_best_and_worst(reward_model):
    from llm_backend.policy import TransformerPolicy

    # ragged prompts, responses of up to 6 characters ending at EOS, a Bradley–Terry oracle on the decoded text
    policy = TransformerPolicy.tiny(TOKENIZER, 6, seed=0, dtype=torch.float64)
    oracle = RewardModelOracle(reward_model, TOKENIZER, CODEC)
    env = Environment(CODEC.encode_prompts(PROMPTS), oracle)
    B, K = 5, 8
    pairs = tournament_pairs(PairSampler("policy"), Roles(policy, policy.snapshot()), env, B, K, seeded(7))
    assert env.calls == 11 * B
    generator = seeded(7)  # replay the draws: the prompts, then every prompt's K candidates
    x = env.sample(B, generator)
    candidates = CODEC.decode_responses(policy.snapshot().sample(x, K, generator))  # B·K texts
    prompts = [p for p in CODEC.decode_prompts(x) for _ in range(K)]
    r = oracle.rewards(prompts, candidates).reshape(B, K)  # [B, K]
    assert CODEC.decode_responses(pairs.y) == [candidates[b * K + int(r[b].argmax())] for b in range(B)]
    assert CODEC.decode_responses(pairs.y2) == [candidates[b * K + int(r[b].argmin())] for b in range(B)]
    assert len(set(candidates)) > B  # the candidates differ: the tournament had something to choose


def test_tournament_ties_go_to_the_first_response():
    scores = {"a": 1, "b": 1, "c": 0, "cc": 0}  # round one: a–b and c–cc are ties
    env = Environment(CODEC.encode_prompts(["x"]),
                      CallableOracle(lambda x, a, b: sigmoid(scores[a] - scores[b]), CODEC))
    policy = Fixed(["a", "b", "c", "cc"])
    pairs = tournament_pairs(PairSampler("ref"), Roles(policy, policy), env, 3, 4, seeded(0))
    # a and c win round one on ties; a beats c; the losers b and cc meet and cc, losing, is the worst
    assert CODEC.decode_responses(pairs.y) == ["a"] * 3 and CODEC.decode_responses(pairs.y2) == ["cc"] * 3
    assert env.calls == 3 * (4 - 1 + 1 + 1)


def test_tournament_soft_labels_and_two_candidates():
    codec = TextCodec(game_tokenizer(RANDOM))
    env = CountingEnv(SequenceOracle(RANDOM), CallableOracle(bradley_terry, codec))
    policy = AutoregressivePolicy.for_game(RANDOM, seed=1, head_scale=3.0)
    pairs = tournament_pairs(PairSampler("policy"), Roles(policy, policy.snapshot()), env, 10, 2, seeded(0), "soft")
    assert env.calls == 2 * 10 and env.batches == 2  # K = 2: one match, then the final
    expected = [sigmoid(score(a) - score(b)) for a, b in zip(codec.decode_responses(pairs.y),
                                                                codec.decode_responses(pairs.y2))]
    assert torch.allclose(pairs.pref[0].double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert (pairs.pref > 0.5).all()


def test_tournament_without_a_winner_raises_after_its_attempts():
    env = Environment(SequenceOracle(RPS), CallableOracle(lambda x, a, b: 0.5, TextCodec(game_tokenizer(RPS))))
    policy = AutoregressivePolicy.for_game(RPS)
    with pytest.raises(ValueError, match="no prompt's best of 4 strictly beat its worst in 3 batches of 5"):
        tournament_pairs(PairSampler("policy"), Roles(policy, policy.snapshot()), env, 5, 4, seeded(0), attempts=3)
    assert env.calls == 3 * 5 * (4 - 1 + 1 + 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k must be an integer >= 1"), ({"k": 1}, "power of 2"), ({"k": 6}, "power of 2"),
    ({"k": 2.5}, "k must be"), ({"k": True}, "k must be"), ({"batch": 0}, "batch must be"),
    ({"labels": "bernoulli"}, "labels must be one of"), ({"attempts": 0}, "attempts must be"),
])
def test_tournament_bad_inputs(kwargs, message):
    env = Environment(SequenceOracle(RPS), GameOracle(RPS, TextCodec(game_tokenizer(RPS))))
    policy = AutoregressivePolicy.for_game(RPS)
    arguments = {"batch": 2, "k": 4, "labels": "hard", "attempts": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        tournament_pairs(PairSampler("policy"), Roles(policy, policy.snapshot()), env,
                         generator=seeded(0), **arguments)


# ================================================================================================== win rates
def exact_win_rate(game, opponent, x, y):
    """p(y ≻ π | x) = Σ_y' π(y' | x) P[x, y, y'] by enumeration, and Var_{y'~π} P[x, y, y']: float64 [n] each."""
    table = opponent.enumerate(game)[0].exp()  # [X, Y]
    P = torch.tensor(game.tabular.P)  # [X, Y, Y]
    mean = (P * table[:, None, :]).sum(-1)  # [X, Y]
    var = (P**2 * table[:, None, :]).sum(-1) - mean**2
    return mean[x, y], var[x, y]


def win_rates(batch, k, seed):
    env = CountingEnv(SequenceOracle(RANDOM), GameOracle(RANDOM, TextCodec(game_tokenizer(RANDOM))))
    policy = AutoregressivePolicy.for_game(RANDOM, seed=0, dtype=torch.float64, head_scale=3.0)
    ref = AutoregressivePolicy.for_game(RANDOM, seed=5, dtype=torch.float64, head_scale=3.0).snapshot()
    # y from the policy, the K opponents from ref: the estimate must be of p(y ≻ ref)
    pairs = win_rate_pairs(PairSampler("policy", "ref"), Roles(policy, ref), env, batch, k, seeded(seed))
    x, y = RANDOM.prompt_index(pairs.x)[0], RANDOM.response_index(pairs.y)[0]
    mean, var = exact_win_rate(RANDOM, ref, x, y)
    return pairs, env, mean, var


def test_win_rate_approaches_the_exact_win_rate():
    pairs, env, exact, var = win_rates(batch=6, k=4096, seed=0)
    assert env.calls == 6 * 4096 and env.batches == 1
    assert pairs.pref.shape == pairs.weight.shape == (1, 6)
    assert torch.equal(pairs.weight, torch.full((1, 6), 1 / 6, dtype=torch.float64))
    error = (pairs.pref[0] - exact).abs()
    assert (error < 4 * (var / 4096).sqrt() + 1e-12).all(), (error, (var / 4096).sqrt())  # each within 4 sd
    assert exact.max() - exact.min() > 0.1  # the exact win rates differ: the estimate tracks y


def test_win_rate_is_unbiased():
    pairs, _, exact, var = win_rates(batch=3000, k=2, seed=1)
    residual = pairs.pref[0] - exact  # mean 0, variance var/K, independent across prompts
    se = (var.sum() / 2).sqrt() / 3000
    assert abs(residual.mean()) < 4 * se, (residual.mean(), se)
    assert residual.abs().max() > 0.1  # K = 2 is a noisy estimate, not the exact value


class TwoConfigurations(Environment):
    """An environment whose oracle answers for two configurations."""

    def prob(self, prompts, responses, responses2):
        return torch.full((2, responses.shape[1]), 0.5, dtype=torch.float64)


def test_pairs_need_token_batches_and_one_configuration():
    from preference_games.games import rock_paper_scissors
    from preference_games.models import TabularLogits
    from preference_games.samplers import TabularOracle

    table = TabularLogits.uniform(configs=1, prompts=1, actions=3)  # responses are index tensors, not Tokens
    with pytest.raises(ValueError, match="picks responses out of token batches; got Tensor"):
        tournament_pairs(PairSampler("policy"), Roles(table, table.snapshot()),
                         TabularOracle(rock_paper_scissors()), 2, 2, seeded(0))
    env = TwoConfigurations(SequenceOracle(RPS), SequenceOracle(RPS))
    policy = AutoregressivePolicy.for_game(RPS)
    for make in (tournament_pairs, win_rate_pairs):
        with pytest.raises(ValueError, match=r"one configuration \(C = 1\); the oracle returned 2"):
            make(PairSampler("policy"), Roles(policy, policy.snapshot()), env, 2, 2, seeded(0))


@pytest.mark.parametrize("kwargs, message", [({"k": 0}, "k must be"), ({"batch": 0}, "batch must be")])
def test_win_rate_bad_inputs(kwargs, message):
    env = Environment(SequenceOracle(RPS), GameOracle(RPS, TextCodec(game_tokenizer(RPS))))
    policy = AutoregressivePolicy.for_game(RPS)
    with pytest.raises(ValueError, match=message):
        win_rate_pairs(PairSampler("policy"), Roles(policy, policy.snapshot()), env,
                       generator=seeded(0), **({"batch": 2, "k": 4} | kwargs))
