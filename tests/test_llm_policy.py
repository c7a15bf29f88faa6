"""llm_backend: a HuggingFace causal LM as a Policy on sequence games (tiny Llamas built from a config, no download).

Float64 models give exact-bridge checks at 1e-10; a float32 model's enumerated probabilities sum to 1 within ~1e-6.
"""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from llm_backend import TransformerMixture, TransformerPolicy, full_recompute_mixture_sample  # noqa: E402
from preference_games import losses  # noqa: E402
from preference_games.algorithms import dap, make, names  # noqa: E402
from preference_games.games import rock_paper_scissors  # noqa: E402
from preference_games.models import TabularLogits  # noqa: E402
from preference_games.samplers import Pairs, Roles  # noqa: E402
from preference_games.sequences import (  # noqa: E402
    SequenceGame, SequenceOracle, Tokens, full_recompute_sample, mixture_tv, sequence_game_by_name,
)
from preference_games.training import TrainingStep, sampled_pairs  # noqa: E402

GAME = sequence_game_by_name("rps-sequences")  # V = 3, L = 3, one prompt: 27 strings


@pytest.fixture(scope="module")
def policy():
    return TransformerPolicy.for_game(GAME, seed=0, dtype=torch.float64)


@pytest.fixture(scope="module")
def other():
    return TransformerPolicy.for_game(GAME, seed=1, dtype=torch.float64).snapshot()


def prompts(batch=3):
    return GAME.prompt_tokens(torch.zeros(1, batch, dtype=torch.long))


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("greedy", [False, True])
def test_cached_sampling_equals_full_recomputation(policy, greedy):
    cached = policy.sample(prompts(), 4, seeded(3), greedy=greedy)  # [1, 12, 3]
    full = full_recompute_sample(policy, prompts(), 4, seeded(3), greedy=greedy)
    assert cached.shape == (1, 12, 3)
    assert torch.equal(cached.ids, full.ids)
    if not greedy:  # a seeded draw that is constant would not test the generator's use
        assert len({tuple(row) for row in cached.ids[0].tolist()}) > 1


@pytest.mark.parametrize("greedy", [False, True])
def test_mixture_sampler_equals_full_recompute_mixture(policy, other, greedy):
    mixture = policy.mixture_sampler(other, 0.4)
    assert isinstance(mixture, TransformerMixture)
    cached = mixture.sample(prompts(), 4, seeded(5), greedy=greedy)
    full = full_recompute_mixture_sample(policy, other, 0.4, prompts(), 4, seeded(5), greedy=greedy)
    assert torch.equal(cached.ids, full.ids)


@pytest.mark.parametrize("beta", [None, 0.0, 0.4, 1.0])
def test_cached_next_token_distributions_equal_teacher_forcing(policy, other, beta):
    """Sharper than equal draws from near-uniform models: every cached step's next-token log-probs [N, V] equal the
    teacher-forced pass's, for the policy (beta None) and for the two-cache mixture."""
    model = policy if beta is None else policy.mixture_sampler(other, beta)
    x = prompts(4)
    y = model.sample(x, 1, seeded(11))  # [1, 4, 3]
    forced = model.token_log_probs(x, y)  # [4, L, V]
    state = model._start(x)
    for t in range(GAME.length):
        assert torch.allclose(model._next(state), forced[:, t], atol=1e-12, rtol=0), t
        state = model._advance(state, y.ids[0, :, t])


def test_one_shared_cache_would_differ(policy, other):
    """The bug the two caches avoid: feeding both models through one cache changes the mixture's next-token
    distribution (each model then attends to the other's keys), so a test equal to full recomputation can fail."""
    x = prompts(1)
    own = policy.mixture_sampler(other, 0.5)
    state = own._advance(own._start(x), torch.tensor([1]))
    right = own._next(state)  # [1, V]
    shared = transformers.DynamicCache()
    a = policy._forward(x.ids[0], cache=shared)
    b = other._forward(x.ids[0], cache=shared)  # appends the other model's keys to the same cache
    assert a.shape == b.shape
    step_a = policy._response_log_probs(policy._forward(torch.tensor([[1]]), cache=shared)[:, -1])
    step_b = other._response_log_probs(other._forward(torch.tensor([[1]]), cache=shared)[:, -1])
    assert not torch.allclose(own._mix(step_a, step_b), right, atol=1e-6)


def test_mixture_at_beta_zero_samples_the_policy(policy, other):
    ours = policy.sample(prompts(), 5, seeded(7))
    mixed = policy.mixture_sampler(other, 0.0).sample(prompts(), 5, seeded(7))
    assert torch.equal(ours.ids, mixed.ids)


# ------------------------------------------------------------------------------------------------ the exact bridge
def test_enumeration_is_a_distribution(policy):
    table = policy.enumerate(GAME)  # [1, X, Y]
    assert table.shape == (1, 1, 27) and table.dtype == torch.float64
    assert torch.allclose(table.exp().sum(-1), torch.ones(1, 1, dtype=torch.float64), atol=1e-10, rtol=0)
    # it is log_prob on every string: the sampled responses' scores are entries of the table
    y = policy.sample(prompts(), 2, seeded(1))
    scores = policy.log_prob(prompts().repeat_interleave(2), y)[0]  # [6]
    assert torch.allclose(scores, table[0, 0, GAME.response_index(y)[0]], atol=1e-12, rtol=0)
    single = TransformerPolicy.for_game(GAME, seed=2)  # float32: rounding of 27 probabilities summed
    assert abs(float(single.enumerate(GAME).detach().exp().sum()) - 1) < 1e-5
    mixture = policy.mixture_sampler(single.snapshot(), 0.3).enumerate(GAME)
    assert abs(float(mixture.exp().sum()) - 1) < 1e-5


def test_length_normalise_gives_the_per_token_mean(policy):
    y = policy.sample(prompts(), 1, seeded(2))
    mean = TransformerPolicy(policy.model, 3, response_vocab=3, length_normalise=True)
    assert torch.allclose(mean.log_prob(prompts(), y), policy.log_prob(prompts(), y) / 3, atol=1e-12, rtol=0)
    assert torch.allclose(mean.enumerate(GAME), policy.enumerate(GAME))  # enumeration always sums


def test_one_token_ipo_loss_equals_the_tabular_loss():
    game = SequenceGame.lift(rock_paper_scissors(), 1)
    policy = TransformerPolicy.for_game(game, seed=3, dtype=torch.float64)
    ref = TransformerPolicy.for_game(game, seed=4, dtype=torch.float64).snapshot()
    y, y2 = torch.tensor([[0, 1, 2, 0, 2]]), torch.tensor([[1, 2, 0, 0, 1]])
    weight = torch.full((1, 5), 0.2, dtype=torch.float64)
    pref = torch.tensor([[0.9, 0.1, 0.5, 0.5, 0.7]], dtype=torch.float64)
    loss = dap.contrastive(losses.ipo, 0.1)
    x = torch.zeros(1, 5, dtype=torch.long)
    tokens = Pairs(game.prompt_tokens(x), Tokens(y[..., None], torch.ones_like(y)),
                   Tokens(y2[..., None], torch.ones_like(y2)), weight, pref)
    transformer = loss(Roles(policy, ref=ref), tokens)
    table = loss(Roles(TabularLogits.from_log_probs(policy.enumerate(game)),
                       ref=TabularLogits.from_log_probs(ref.enumerate(game))), Pairs(x, y, y2, weight, pref))
    assert transformer.shape == table.shape == (1,)
    assert torch.allclose(transformer, table, atol=1e-10, rtol=0)
    assert transformer.requires_grad


def test_mixture_tv(policy, other):
    assert mixture_tv(policy, other, 0.5, GAME) > 0  # L = 3: per-token normalisers do not multiply up to Z
    for beta in (0.0, 1.0):
        assert mixture_tv(policy, other, beta, GAME) <= 1e-12


# ------------------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", names())
def test_every_algorithm_trains_the_transformer(name):
    algorithm = make(name)
    policy = TransformerPolicy.for_game(GAME, seed=0, dtype=torch.float64)
    ref = policy.snapshot()
    roles = Roles(policy=policy, ref=ref, data=ref)
    roles.aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
    algorithm.schedule.start(roles)
    params = [*policy.parameters(), *(p for module in roles.aux.values() for p in module.parameters())]
    before = [p.detach().clone() for p in policy.parameters()]
    generator = seeded(0)
    step = TrainingStep(algorithm, roles, sampled_pairs(algorithm, roles, SequenceOracle(GAME), 8, generator, "soft"),
                        torch.optim.SGD(params, lr=1e-3))
    for t in range(2):
        algorithm.schedule.before_step(t, roles)
        loss = step()
        algorithm.schedule.after_step(t, roles)
        assert torch.all(torch.isfinite(loss)), name
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters())), name


# ------------------------------------------------------------------------------------------------ saving, snapshot
def test_save_and_load_round_trip(policy, tmp_path):
    policy.save_pretrained(tmp_path)
    # eager attention, as for_game builds it: the loader's default (sdpa) moved float64 log-probs by ~3e-8
    loaded = TransformerPolicy.from_pretrained(tmp_path, dtype=torch.float64, attn_implementation="eager")
    y = policy.sample(prompts(), 2, seeded(4))
    x = prompts().repeat_interleave(2)
    assert torch.equal(loaded.log_prob(x, y), policy.log_prob(x, y))


def test_snapshot_is_frozen(policy):
    frozen = policy.snapshot()
    assert frozen.snapshot() is frozen and not frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    y = policy.sample(prompts(), 1, seeded(0))
    assert not frozen.log_prob(prompts(), y).requires_grad and policy.log_prob(prompts(), y).requires_grad
    assert (frozen.configs, frozen.dtype) == (1, torch.float64)


# ------------------------------------------------------------------------------------------------------ bad input
def test_response_token_outside_the_response_vocabulary(policy):
    y = Tokens(torch.tensor([[[0, 3, 1]]]), torch.tensor([[3]]))  # 3 is PAD: read, never generated
    with pytest.raises(ValueError, match=r"response vocabulary \[0, 3\); got 3"):
        policy.log_prob(prompts(1), y)


def test_too_long_for_the_position_embeddings(policy):
    long = TransformerPolicy(policy.model, 63, response_vocab=3)  # 2 + 63 > max_position_embeddings = 64
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        long.sample(prompts(1), 1, seeded(0))
    y = Tokens(torch.zeros(1, 1, 63, dtype=torch.long), torch.tensor([[63]]))
    with pytest.raises(ValueError, match="need 65 positions"):
        policy.log_prob(prompts(1), y)
