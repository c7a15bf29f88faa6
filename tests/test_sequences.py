"""Sequence games, the autoregressive policy and the exact bridge (preference_games/sequences.py): known answers and
equivalences — enumeration is a distribution, cached decoding is full recomputation, the token-level mixture is the
sequence-level one exactly where theory says, and at L = 1 the GRU and a table give the same loss and gradient."""

import numpy as np
import pytest
import torch

from preference_games import equilibria, games, losses
from preference_games.algorithms.dap import contrastive
from preference_games.models import FrozenPolicy, TabularLogits
from preference_games.policies import TabularPolicy, _kl
from preference_games.protocols import Policy, PreferenceOracle, PromptSource
from preference_games.samplers import Pairs, Roles
from preference_games.sequences import (
    SEQUENCE_GAMES,
    AutoregressivePolicy,
    SequenceGame,
    SequenceOracle,
    Tokens,
    exact_duality_gap,
    full_recompute_sample,
    kl_to_equilibrium,
    mixture_tv,
    sequence_game_by_name,
    tabular_game,
)

F64 = torch.float64


def policy_for(game, seed=0, dtype=F64, **kwargs):
    return AutoregressivePolicy.for_game(game, seed=seed, dtype=dtype, **kwargs)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def batch_prompts(game, batch):
    """``batch`` prompts cycling through the game's prompts: Tokens [1, batch, 2]."""
    return game.prompt_tokens((torch.arange(batch) % game.num_prompts)[None])


# ================================================================================================== games
@pytest.mark.parametrize("name", list(SEQUENCE_GAMES))
def test_registered_games_build_seeded_with_at_least_27_responses(name):
    game = sequence_game_by_name(name, seed=3)
    assert game.num_responses >= 27
    assert game.vocab_size == game.vocab + 2 + game.num_prompts
    np.testing.assert_array_equal(game.tabular.P, sequence_game_by_name(name, seed=3).tabular.P)  # reproducible


def test_random_games_depend_on_the_seed():
    for name in ("random-sequences", "bt-sequences", "judge-sequences"):
        assert not np.array_equal(sequence_game_by_name(name, 0).tabular.P, sequence_game_by_name(name, 1).tabular.P)


def test_response_index_round_trips_responses_in_lexicographic_order():
    game = SequenceGame.random_intransitive(vocab=3, length=3, prompts=2, seed=0)
    responses = game.responses()  # [1, 27, 3]
    np.testing.assert_array_equal(game.response_index(responses)[0].numpy(), np.arange(27))
    assert responses.ids[0, 5].tolist() == [0, 1, 2]  # 5 = 0·9 + 1·3 + 2
    assert responses.ids[0, 26].tolist() == [2, 2, 2]
    x = torch.tensor([[1, 0, 1]])
    prompts = game.prompt_tokens(x)
    assert prompts.ids[0, 0].tolist() == [game.bos_id, game.vocab + 2 + 1]
    assert game.prompt_index(prompts).tolist() == x.tolist()


def test_lift_of_rps_compares_first_tokens_only():
    rps = games.rock_paper_scissors()
    game = SequenceGame.lift(rps, 3)
    first = game.responses().ids[0, :, 0].numpy()  # [27]
    P = game.tabular.P[0]
    np.testing.assert_array_equal(P, rps.P[0][first[:, None], first[None, :]])
    assert np.all(P[first[:, None] == first[None, :]] == 0.5)  # same action: a tie whatever follows
    assert P[9, 0] == 1.0 and P[9, 26] == 0.0  # "paper…" beats "rock…", loses to "scissors…"


def test_bradley_terry_and_judge_known_entries():
    game = SequenceGame.bradley_terry(np.arange(4.0), vocab=2, length=2, prompts=2)
    np.testing.assert_allclose(game.tabular.P[1, 3, 1], 1 / (1 + np.exp(-2.0)), rtol=1e-14)
    judge = SequenceGame.judge(vocab=3, length=3, prompts=1, seed=0, length_strength=0.8, format_strength=0.5)
    index = lambda *tokens: int(np.ravel_multi_index(tokens, (3, 3, 3)))  # noqa: E731
    P = judge.tabular.P[0]
    assert P[index(1, 0, 0), index(0, 0, 0)] == pytest.approx(0.9)  # one more content token wins
    assert P[index(1, 1, 0), index(1, 0, 0)] == pytest.approx(0.9)
    assert P[index(0, 0, 0), index(1, 1, 0)] == pytest.approx(0.9)  # two more lose: the cycle 0 ≺ 1 ≺ 2 ≺ 0
    favourite = np.random.default_rng(0).integers(1, 3, size=1)[0]
    other = 3 - favourite
    assert P[index(0, favourite, 0), index(0, 0, other)] == pytest.approx(0.75)  # same length: the closing token
    assert P[index(favourite, 0, 0), index(0, favourite, 0)] == 0.5


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SequenceGame.lift(games.rock_paper_scissors(), 0), "length must be an integer >= 1"),
        (lambda: SequenceGame.lift(games.rock_paper_scissors(), 9), "MiB per preference matrix"),
        (lambda: SequenceGame.random_intransitive(1, 3), "at least 3 responses"),
        (lambda: SequenceGame.random_intransitive(3, 2, prompts=0), "prompts must be an integer >= 1"),
        (lambda: SequenceGame.random_intransitive(64, 2), "64\\^2 = 4096 responses need 128 MiB"),
        (lambda: SequenceGame.bradley_terry(np.zeros(5), 2, 2), r"rewards must be finite with shape \(4,\)"),
        (lambda: SequenceGame.bradley_terry([np.nan] * 4, 2, 2), "rewards must be finite"),
        (lambda: SequenceGame.judge(1, 3), "vocab >= 2"),
        (lambda: SequenceGame.judge(3, 1), "length >= 2"),
        (lambda: SequenceGame.judge(3, 3, length_strength=0.0), "strengths must lie"),
        (lambda: SequenceGame(np.full((1, 4, 4), 0.5), 3, 2), r"responses need preference matrices \[X, 9, 9\]"),
        (lambda: sequence_game_by_name("chess"), "unknown sequence game 'chess'"),
        (lambda: Tokens(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long)), "ids \\[C, B, L\\]"),
        (lambda: AutoregressivePolicy(3, 3, 2), "vocab_size \\(3\\) must exceed"),
    ],
)
def test_constructors_validate_their_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_response_index_refuses_foreign_tokens():
    game = sequence_game_by_name("rps-sequences")
    with pytest.raises(ValueError, match="exactly 3 tokens"):
        game.response_index(Tokens(torch.zeros(1, 1, 2, dtype=torch.long), torch.full((1, 1), 2)))
    with pytest.raises(ValueError, match=r"response tokens must lie in \[0, 3\)"):
        game.response_index(Tokens(torch.full((1, 1, 3), game.bos_id), torch.full((1, 1), 3)))


# ================================================================================================= oracle
def test_oracle_reads_the_matrices_and_samples_prompts_from_d0():
    game = sequence_game_by_name("random-sequences")
    oracle = SequenceOracle(game)
    assert isinstance(oracle, PreferenceOracle) and isinstance(oracle, PromptSource)
    assert (oracle.num_prompts, oracle.num_actions) == (2, 27)
    prompts = oracle.sample(4000, gen(0))  # [1, 4000, 2]
    assert prompts.shape == (1, 4000, 2)
    share = game.prompt_index(prompts).float().mean().item()
    assert abs(share - 0.5) < 5 * 0.5 / np.sqrt(4000)  # d0 uniform over 2 prompts; 5 standard errors
    x = game.prompt_index(prompts)  # [1, B]
    y, y2 = torch.randint(0, 27, (1, 4000), generator=gen(1)), torch.randint(0, 27, (1, 4000), generator=gen(2))
    responses = game.responses()
    y_tokens = Tokens(responses.ids[0, y], responses.lengths[0, y])
    y2_tokens = Tokens(responses.ids[0, y2], responses.lengths[0, y2])
    p = oracle.prob(prompts, y_tokens, y2_tokens)  # [1, B]
    assert p.dtype == F64
    np.testing.assert_array_equal(p.numpy(), game.tabular.P[x.numpy(), y.numpy(), y2.numpy()])
    np.testing.assert_allclose((p + oracle.prob(prompts, y2_tokens, y_tokens)).numpy(), 1.0, atol=1e-15)


# ================================================================================================ policy
@pytest.mark.parametrize("name", list(SEQUENCE_GAMES))
def test_enumeration_sums_to_one(name):
    game = sequence_game_by_name(name)
    table = policy_for(game).enumerate(game)  # [1, X, Y]
    assert table.shape == (1, game.num_prompts, game.num_responses) and table.dtype == F64
    np.testing.assert_allclose(table.exp().sum(-1).detach().numpy(), 1.0, atol=1e-12)
    single = policy_for(game, dtype=torch.float32).enumerate(game)
    np.testing.assert_allclose(single.exp().sum(-1).detach().numpy(), 1.0, atol=1e-5)


def test_policy_follows_the_protocol_and_snapshots_are_frozen():
    game = sequence_game_by_name("judge-sequences")
    policy = policy_for(game)
    assert isinstance(policy, Policy) and policy.configs == 1 and policy.dtype == F64
    prompts = batch_prompts(game, 4)
    y = policy.sample(prompts, 1, gen(0))
    assert policy.log_prob(prompts, y).requires_grad
    frozen = policy.snapshot()
    assert not any(w.requires_grad for w in frozen.parameters())
    assert not frozen.log_prob(prompts, y).requires_grad
    assert frozen.snapshot() is frozen
    torch.testing.assert_close(frozen.log_prob(prompts, y), policy.log_prob(prompts, y).detach(), rtol=0, atol=0)
    with torch.no_grad():  # a later update of the policy does not reach the snapshot
        policy.head.weight.mul_(2.0)
    assert not torch.equal(frozen.log_prob(prompts, y), policy.log_prob(prompts, y).detach())


def test_init_is_seeded_near_uniform_and_leaves_the_global_rng_alone():
    game = sequence_game_by_name("rps-sequences")
    state = torch.random.get_rng_state()
    first, again = policy_for(game, seed=4), policy_for(game, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(first.enumerate(game), again.enumerate(game), rtol=0, atol=0)
    probs = first.enumerate(game).exp().detach().numpy()
    tv_from_uniform = 0.5 * np.abs(probs - 1 / 27).sum()
    assert 1e-3 < tv_from_uniform < 0.25, tv_from_uniform


def test_log_prob_masks_positions_past_the_length_and_padded_prompts():
    game = sequence_game_by_name("bt-sequences")
    policy = policy_for(game)
    prompts = batch_prompts(game, 2)
    full = policy.enumerate(game)[0].detach()  # [X, 27]
    # a response of length 2 (third token PAD) scores its prefix: the marginal over the third token
    prefix = Tokens(torch.tensor([[[2, 1, game.pad_id], [0, 2, game.pad_id]]]), torch.tensor([[2, 2]]))
    expected = [torch.logsumexp(full[0, 21:24], 0), torch.logsumexp(full[1, 6:9], 0)]  # "21·", "02·"
    torch.testing.assert_close(policy.log_prob(prompts, prefix)[0].detach(), torch.stack(expected))
    # a prompt padded past its length reads the same
    padded = Tokens(torch.cat([prompts.ids, torch.full((1, 2, 1), game.pad_id)], -1), prompts.lengths)
    y = game.responses().ids[:, [5, 17]]  # [1, 2, 3]
    torch.testing.assert_close(policy.log_prob(padded, Tokens(y, torch.full((1, 2), 3))),
                               policy.log_prob(prompts, Tokens(y, torch.full((1, 2), 3))))


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_cached_generation_equals_full_recomputation(dtype):
    game = sequence_game_by_name("judge-sequences")
    policy = policy_for(game, seed=2, dtype=dtype, head_scale=2.0)  # sharper, so greedy choices are not near-ties
    prompts = batch_prompts(game, 6)
    greedy = policy.sample(prompts, 1, greedy=True)
    assert torch.equal(greedy.ids, full_recompute_sample(policy, prompts, 1, greedy=True).ids)
    cached = policy.sample(prompts, 50, gen(7))  # [1, 300, 3]
    assert cached.shape == (1, 300, 3)
    assert torch.equal(cached.ids, full_recompute_sample(policy, prompts, 50, gen(7)).ids)
    assert not torch.equal(cached.ids, policy.sample(prompts, 50, gen(8)).ids)


def test_sample_lays_out_n_draws_per_prompt_contiguously():
    game = sequence_game_by_name("random-sequences")
    policy = policy_for(game, head_scale=4.0)
    prompts = game.prompt_tokens(torch.tensor([[0, 1]]))
    draws = policy.sample(prompts, 3, greedy=True).ids[0]  # [6, 3]
    for b in range(2):
        alone = policy.sample(game.prompt_tokens(torch.tensor([[b]])), 1, greedy=True).ids[0, 0]
        assert all(torch.equal(draws[b * 3 + k], alone) for k in range(3))


# ================================================================================================ mixture
def test_mixture_sampler_equals_full_recompute_mixture_token_for_token():
    game = sequence_game_by_name("judge-sequences")
    mixture = policy_for(game, seed=0, head_scale=2.0).mixture_sampler(policy_for(game, seed=1, head_scale=2.0), 0.3)
    assert isinstance(mixture, Policy)
    prompts = batch_prompts(game, 4)
    assert torch.equal(mixture.sample(prompts, 40, gen(3)).ids, full_recompute_sample(mixture, prompts, 40, gen(3)).ids)
    assert torch.equal(mixture.sample(prompts, 1, greedy=True).ids,
                       full_recompute_sample(mixture, prompts, 1, greedy=True).ids)


def test_mixture_tv_is_zero_for_one_token_and_at_the_endpoints_and_positive_otherwise():
    one_token = SequenceGame.random_intransitive(vocab=5, length=1, prompts=2, seed=0)
    a, b = policy_for(one_token, seed=0, head_scale=2.0), policy_for(one_token, seed=1, head_scale=2.0)
    for beta in (0.0, 0.3, 0.5, 1.0):
        assert mixture_tv(a, b, beta, one_token) <= 1e-12
    game = sequence_game_by_name("judge-sequences")
    a, b = policy_for(game, seed=0, head_scale=2.0), policy_for(game, seed=1, head_scale=2.0)
    for beta in (0.0, 1.0):
        assert mixture_tv(a, b, beta, game) <= 1e-12
    gap = mixture_tv(a, b, 0.5, game)
    print(f"token-level vs sequence-level mixture at beta = 0.5, L = 3: E_x TV = {gap:.4g}")
    assert gap > 1e-3  # the paper's per-token approximation is not the sequence-level mixture


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_mixture_sample_frequencies_match_its_enumerated_log_prob(beta):
    game = sequence_game_by_name("judge-sequences")
    mixture = policy_for(game, seed=0, head_scale=2.0).mixture_sampler(policy_for(game, seed=1, head_scale=2.0), beta)
    probs = mixture.enumerate(game)[0, 0].exp().numpy()  # [27], prompt 0
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-12)
    N = 20_000
    draws = mixture.sample(game.prompt_tokens(torch.zeros(1, 1, dtype=torch.long)), N, gen(11))
    freq = np.bincount(game.response_index(draws)[0].numpy(), minlength=27) / N
    # each frequency within 5 binomial standard errors of its probability (27 cells: P(any beyond) ≈ 2e-5)
    z = np.abs(freq - probs) / np.sqrt(probs * (1 - probs) / N)
    assert z.max() < 5, z.max()


# ================================================================================================ bridge
def test_ipo_loss_and_gradient_with_one_token_responses_equal_the_tables():
    game = SequenceGame.random_intransitive(vocab=4, length=1, prompts=2, seed=1)
    policy, ref = policy_for(game, seed=0, head_scale=2.0), policy_for(game, seed=1, head_scale=2.0).snapshot()
    x = torch.tensor([[0, 0, 1, 1, 0, 1, 1]])
    y, y2 = torch.tensor([[0, 1, 2, 3, 3, 0, 2]]), torch.tensor([[1, 1, 0, 2, 0, 3, 3]])
    weight = torch.tensor([[1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 1.0]], dtype=F64)
    weight = weight / weight.sum()
    pref = torch.tensor([[0.9, 0.5, 0.2, 1.0, 0.0, 0.7, 0.4]], dtype=F64)
    tokens = lambda i: Tokens(i[..., None], torch.ones_like(i))  # noqa: E731  one-token strings: id = index
    objective = contrastive(losses.ipo, 0.1)

    sequence_loss = objective(Roles(policy=policy, ref=ref),
                              Pairs(game.prompt_tokens(x), tokens(y), tokens(y2), weight, pref))  # [1]
    table = TabularLogits.from_log_probs(policy.enumerate(game).detach())
    table_loss = objective(Roles(policy=table, ref=FrozenPolicy(ref.enumerate(game))), Pairs(x, y, y2, weight, pref))
    torch.testing.assert_close(sequence_loss, table_loss, rtol=0, atol=1e-12)

    # gradient: the table gives ∂L/∂logits =: G; the chain rule says ∇θ L = Σ G(x, y) ∇θ log π_θ(y|x) (the
    # softmax's centring term vanishes because Σ_y π ∇θ log π = 0)
    table_loss.sum().backward()
    weights = list(policy.parameters())
    direct = torch.autograd.grad(sequence_loss.sum(), weights)
    chained = torch.autograd.grad((table.logits.grad * policy.enumerate(game)).sum(), weights)
    for d, c in zip(direct, chained):
        torch.testing.assert_close(d, c, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("name", ["rps-sequences", "random-sequences"])
def test_exact_duality_gap_of_the_initial_policy_matches_the_closed_form(name):
    game, tau = sequence_game_by_name(name), 0.1
    policy = policy_for(game, seed=5, head_scale=2.0)
    log_pi = policy.enumerate(game)[0].detach().numpy()  # [X, Y]
    # π = π_ref: BR_τ(π) = softmax(log π + Sπ/τ) and DualGap_τ(π) = 2τ KL(π ‖ BR_τ(π)), averaged under d0
    scores = log_pi + np.einsum("xij,xj->xi", game.tabular.S, np.exp(log_pi)) / tau
    br = scores - np.log(np.exp(scores).sum(-1, keepdims=True))
    expected = game.tabular.prompt_probs @ (2 * tau * (np.exp(log_pi) * (log_pi - br)).sum(-1))
    gap = exact_duality_gap(policy, game, policy.snapshot(), tau)
    assert gap > 0
    np.testing.assert_allclose(gap, expected, rtol=1e-9)
    direct = equilibria.duality_gap(tabular_game(game, policy), TabularPolicy(log_pi), tau)
    np.testing.assert_allclose(gap, direct, rtol=1e-12)
    np.testing.assert_allclose(tabular_game(game, policy).ref.log_probs, log_pi, atol=1e-12)
    # the solver's certificate: 2τ KL(π ‖ π*_τ) ≤ DualGap_τ(π)
    kl = kl_to_equilibrium(policy, game, policy, tau)
    assert 0 < kl <= gap / (2 * tau) * (1 + 1e-9)
    star = equilibria.regularized_nash(tabular_game(game, policy), tau).policy.log_probs
    np.testing.assert_allclose(kl, game.tabular.prompt_probs @ _kl(log_pi, star), rtol=1e-12)
