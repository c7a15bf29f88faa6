"""TransformerPolicy in the text layout: prompts of different lengths (left-padded inside the policy), responses that
end at EOS, temperature and top-p — each checked against an independent computation."""

import pytest
import torch

pytest.importorskip("transformers")

from llm_backend import TransformerPolicy, full_recompute_mixture_sample  # noqa: E402
from llm_backend.policy import tiny_llama  # noqa: E402
from preference_games.sequences import Tokens, full_recompute_sample  # noqa: E402

VOCAB, PAD, EOS = 7, 0, 1  # a small vocabulary: EOS comes up within a few tokens of a random model


def make(seed=0, length=8, **options) -> TransformerPolicy:
    model = tiny_llama(VOCAB, pad_id=PAD, eos_id=EOS, seed=seed, dtype=torch.float64)
    return TransformerPolicy(model, length, eos_id=EOS, **options)


def ragged_prompts() -> Tokens:
    """Three right-padded prompts of lengths 3, 1 and 2: Tokens [1, 3, 3]."""
    ids = torch.tensor([[[2, 3, 4], [5, PAD, PAD], [6, 2, PAD]]])
    return Tokens(ids, torch.tensor([[3, 1, 2]]))


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_a_prompt_scores_the_same_alone_and_padded_in_a_batch():
    policy = make()
    prompts = ragged_prompts()
    responses = Tokens(torch.tensor([[[3, 4, EOS], [2, EOS, PAD], [4, 4, 5]]]), torch.tensor([[3, 2, 3]]))
    batched = policy.log_prob(prompts, responses)[0]  # [3]
    for b in range(3):
        Lp, L = int(prompts.lengths[0, b]), int(responses.lengths[0, b])
        alone = policy.log_prob(Tokens(prompts.ids[:, b:b + 1, :Lp], prompts.lengths[:, b:b + 1]),
                                Tokens(responses.ids[:, b:b + 1, :L], responses.lengths[:, b:b + 1]))
        assert torch.allclose(batched[b], alone[0, 0], atol=1e-12, rtol=0), b
    batched.sum().backward()  # padding positions must not leak NaN into the gradient either
    assert all(bool(torch.isfinite(p.grad).all()) for p in policy.parameters() if p.grad is not None)


def test_log_prob_is_the_sum_of_next_token_log_probs_by_hand():
    """An independent computation: run the HF model on [prompt, y_<t] for each t without padding or cache."""
    policy = make(seed=1)
    prompt, response = [2, 5], [4, 3, EOS]
    by_hand = 0.0
    with torch.no_grad():
        for t, token in enumerate(response):
            logits = policy.model(input_ids=torch.tensor([prompt + response[:t]])).logits[0, -1]
            by_hand += float(torch.log_softmax(logits, -1)[token])
    ours = policy.log_prob(Tokens(torch.tensor([[prompt]]), torch.tensor([[2]])),
                           Tokens(torch.tensor([[response]]), torch.tensor([[3]])))
    assert abs(float(ours.detach()) - by_hand) < 1e-12


@pytest.mark.parametrize("greedy", [False, True])
def test_cached_sampling_with_eos_equals_full_recomputation(greedy):
    policy = make(seed=2)
    cached = policy.sample(ragged_prompts(), 5, seeded(3), greedy=greedy)
    full = full_recompute_sample(policy, ragged_prompts(), 5, seeded(3), greedy=greedy)
    assert torch.equal(cached.ids, full.ids) and torch.equal(cached.lengths, full.lengths)
    if not greedy:  # the draws must exercise EOS: some responses stop early, some run to the end
        assert 1 <= int(cached.lengths.min()) < policy.length
    ids, lengths = cached.ids[0], cached.lengths[0]
    for row, length in zip(ids.tolist(), lengths.tolist()):
        ended = EOS in row[:length]
        assert (row[length - 1] == EOS) == ended and EOS not in row[:length - 1]
        assert all(token == PAD for token in row[length:])  # padding after EOS


@pytest.mark.parametrize("greedy", [False, True])
def test_two_cache_mixture_with_padded_prompts_equals_full_recomputation(greedy):
    policy, other = make(seed=4), make(seed=5).snapshot()
    cached = policy.mixture_sampler(other, 0.3).sample(ragged_prompts(), 4, seeded(6), greedy=greedy)
    full = full_recompute_mixture_sample(policy, other, 0.3, ragged_prompts(), 4, seeded(6), greedy=greedy)
    assert torch.equal(cached.ids, full.ids) and torch.equal(cached.lengths, full.lengths)


def test_cached_next_token_distributions_equal_teacher_forcing_on_padded_prompts():
    policy = make(seed=7)
    x = ragged_prompts()
    y = Tokens(torch.tensor([[[3, 4, 5, 6], [2, 2, 3, 4], [6, 5, 4, 3]]]), torch.full((1, 3), 4))
    forced = policy.token_log_probs(x, y)  # [3, 4, V]
    state = policy._start(x)
    for t in range(4):
        assert torch.allclose(policy._next(state), forced[:, t], atol=1e-12, rtol=0), t
        state = policy._advance(state, y.ids[0, :, t])


def test_top_p_and_temperature_known_answers():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05, 0.0, 0.0, 0.0]], dtype=torch.float64)
    log_probs = probs.log()
    kept = make(top_p=0.8)._warp(log_probs).exp()
    assert torch.allclose(kept, torch.tensor([[0.625, 0.375, 0, 0, 0, 0, 0]], dtype=torch.float64))
    assert torch.equal(make(top_p=0.5)._warp(log_probs).exp()[0, :2], torch.tensor([1.0, 0.0], dtype=torch.float64))
    hot = make(temperature=2.0)._warp(log_probs).exp()
    expected = probs.sqrt() / probs.sqrt().sum()
    assert torch.allclose(hot, expected, atol=1e-15)
    assert torch.equal(make()._warp(log_probs), log_probs)  # the defaults leave π alone


def test_top_p_draws_only_from_the_nucleus():
    policy = make(seed=8, length=1, top_p=0.3)
    nxt = policy._next(policy._start(ragged_prompts())).exp()  # [3, V]
    y = policy.sample(ragged_prompts(), 200, seeded(9))  # [1, 600, 1]
    for b in range(3):
        ordered, order = nxt[b].sort(descending=True)
        nucleus = set(order[: int((ordered.cumsum(0) - ordered < 0.3).sum())].tolist())
        assert set(y.ids[0, b * 200:(b + 1) * 200, 0].tolist()) <= nucleus


def test_save_and_load_keeps_the_settings(tmp_path):
    policy = make(seed=10, length=5, temperature=0.7, top_p=0.9, length_normalise=True)
    policy.save_pretrained(tmp_path)
    loaded = TransformerPolicy.from_pretrained(tmp_path, dtype=torch.float64, attn_implementation="eager")
    assert loaded.settings() == policy.settings()
    y = policy.sample(ragged_prompts(), 2, seeded(11))
    x = ragged_prompts().repeat_interleave(2)
    assert torch.equal(loaded.log_prob(x, y), policy.log_prob(x, y))


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match="no model directory at"):
        TransformerPolicy.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="cannot load a causal language model"):
        TransformerPolicy.from_pretrained(tmp_path, length=4)  # an empty directory
    with pytest.raises(ValueError, match="top_p must lie in"):
        make(top_p=0.0)
    with pytest.raises(ValueError, match="temperature must lie in"):
        make(temperature=-1.0)
    model = tiny_llama(VOCAB, pad_id=PAD, eos_id=EOS)
    model.config.pad_token_id = None
    with pytest.raises(ValueError, match="no pad token id"):
        TransformerPolicy(model, 4)
    policy = make(length=4)
    empty = Tokens(torch.tensor([[[2, 3]]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="length in \\[1, 2\\]"):
        policy.sample(empty, 1, seeded(0))
    with pytest.raises(ValueError, match="need 65 positions"):
        make(length=62).sample(ragged_prompts(), 1, seeded(0))  # 3 + 62 > 64
