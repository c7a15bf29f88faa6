"""Best responses, duality gaps and equilibria, each checked against a computation that does not share its code.

Tolerances: a certified regularised solve has DualGap_τ ≤ 1e-12, so its distance to the true fixed point is
O(√(gap/τ)) in total variation; probabilities are compared at 1e-9 unless a sharper bound is derived in the test.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.special import expit, logsumexp
from strategies import game_and_policy, games

from preference_games import equilibria
from preference_games.equilibria import (
    SolverError,
    best_response,
    duality_gap,
    exploitability,
    nash_lp,
    regularized_nash,
    tau_path,
)
from preference_games.games import (
    PreferenceGame,
    biased_rps,
    bradley_terry,
    condorcet,
    cyclic,
    random_intransitive,
    rock_paper_scissors,
    rps_variant,
)
from preference_games.policies import TabularPolicy

taus = st.sampled_from([10.0, 1.0, 0.1, 0.01, 1e-3])


# ------------------------------------------------------------------------------------------- independent references
def gap_from_definition(game: PreferenceGame, pi: np.ndarray, tau: float) -> np.ndarray:
    """max_{π1} J(π1, π) − min_{π2} J(π, π2) per prompt, by the Gibbs variational formula on each side.

    max_{π1} π1ᵀa − τKL(π1‖ref) = τ log Σ ref·exp(a/τ), so with a = Pπ and b = Pᵀπ
    DualGap = τ log Σ ref e^{a/τ} + τ log Σ ref e^{−b/τ} + 2τ KL(π‖ref). Uses P itself, not its skew part.
    """
    a = np.einsum("xij,xj->xi", game.P, pi)
    b = np.einsum("xji,xj->xi", game.P, pi)
    ref = game.ref.probs
    if tau == 0:
        return np.where(ref > 0, a, -np.inf).max(-1) - np.where(ref > 0, b, np.inf).min(-1)
    kl = np.sum(np.where(pi > 0, pi * np.log(np.where(pi > 0, pi, 1.0) / np.where(ref > 0, ref, 1.0)), 0.0), -1)
    return tau * logsumexp(a / tau, b=ref, axis=-1) + tau * logsumexp(-b / tau, b=ref, axis=-1) + 2 * tau * kl


def J(game: PreferenceGame, pi1: np.ndarray, pi2: np.ndarray, tau: float) -> np.ndarray:
    """J(π1, π2) per prompt, written out (IPO-MD eq. 9)."""
    ref = game.ref.log_probs

    def kl(p):
        return np.sum(np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.where(p > 0, ref, 0.0)), 0.0), -1)

    return np.einsum("xi,xij,xj->x", pi1, game.P, pi2) - tau * kl(pi1) + tau * kl(pi2)


def equilibria_by_support_enumeration(S: np.ndarray) -> list[np.ndarray]:
    """Every equilibrium that is a basic solution: for each support T, solve S_TT x = v·1, 1ᵀx = 1 and keep
    x ≥ 0 with Sx ≤ 0. No LP solver involved."""
    n = len(S)
    found = []
    for k in range(1, n + 1):
        for T in itertools.combinations(range(n), k):
            T = list(T)
            A = np.block([[S[np.ix_(T, T)], -np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
            rhs = np.r_[np.zeros(k), 1.0]
            if abs(np.linalg.det(A)) < 1e-12:
                continue
            solution = np.linalg.solve(A, rhs)
            x = np.zeros(n)
            x[T] = solution[:k]
            if x.min() >= -1e-12 and (S @ x).max() <= 1e-10:
                found.append(np.clip(x, 0, None) / np.clip(x, 0, None).sum())
    return found


def two_action_game(p: float, ref1: float) -> PreferenceGame:
    return PreferenceGame([[0.5, p], [1 - p, 0.5]], [ref1, 1 - ref1])


# ---------------------------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("tau", [10.0, 1.0, 0.1, 0.01, 1e-3])
def test_rps_with_uniform_reference_is_uniform_at_every_tau(tau):
    eq = regularized_nash(rock_paper_scissors(), tau)
    np.testing.assert_allclose(eq.policy.probs, 1 / 3, rtol=0, atol=1e-15)
    assert eq.duality_gap <= 1e-12


@given(p=st.floats(0, 1), ref1=st.floats(0.01, 0.99), tau=taus)
def test_two_action_closed_form(p, ref1, tau):
    """(Pπ)(1) − (Pπ)(2) = p − ½ for every π, so logit π*(1) = logit π_ref(1) + (p − ½)/τ.

    Log-probabilities are compared at the solver's logit precision LOGIT_TOL·max(1, max|log π|), i.e. each
    probability, however small (down to e^{−500} here), to ~1e-10 relative error when log π = O(1)."""
    eq = regularized_nash(two_action_game(p, ref1), tau)
    logit = np.log(ref1 / (1 - ref1)) + (p - 0.5) / tau
    expected = np.log(expit([logit, -logit]))
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(eq.policy.log_probs[0], expected, rtol=0, atol=10 * equilibria.LOGIT_TOL * scale)


def test_bradley_terry_equilibrium_tends_to_the_condorcet_winner():
    game = bradley_terry([0.0, 0.5, 1.0, 3.0])
    path = tau_path(game, np.geomspace(1.0, 1e-3, 7))
    others = [eq.policy.probs[0, :3].sum() for eq in path]  # 1 − π(winner), without the cancellation
    assert all(b < a for a, b in zip(others, others[1:]))
    assert others[-1] < 1e-100  # the winner's margin σ(2) − ½ ≈ 0.38 over every other action: mass ~ e^{−380}
    np.testing.assert_array_equal(nash_lp(game).policy.probs, [[0, 0, 0, 1]])


@pytest.mark.parametrize("weights", [(1, 2, 3), (1, 1, 1), (5, 1, 1), (0.2, 7, 3)])
def test_biased_rps_has_its_known_unique_lp_equilibrium(weights):
    eq = nash_lp(biased_rps(*weights))
    np.testing.assert_allclose(eq.policy.probs[0], np.array(weights) / sum(weights), rtol=0, atol=1e-12)
    assert eq.unique.all() and eq.duality_gap <= 1e-12
    np.testing.assert_array_equal(eq.value, [0.5])


@pytest.mark.parametrize("seed", range(3))
def test_condorcet_winner_is_the_lp_equilibrium(seed):
    eq = nash_lp(condorcet(6, seed))
    np.testing.assert_array_equal(eq.policy.probs[0], np.eye(6)[0])
    assert eq.unique.all() and eq.duality_gap == 0.0


def test_rps_variant_repaired_equilibrium_is_a_certified_fixed_point():
    game = rps_variant(antisymmetrize=True)
    eq = regularized_nash(game, 0.1)
    assert eq.duality_gap <= 1e-12
    np.testing.assert_allclose(best_response(game, eq.policy, 0.1).probs, eq.policy.probs, rtol=1e-10)


# ------------------------------------------------------------------------------------- best response and the gap
@given(game_and_policy(max_prompts=3, ref="zeros"), st.sampled_from([0.0, 1.0, 0.1, 0.01]))
def test_closed_form_gap_equals_the_definition(case, tau):
    game, policy = case
    pi = policy.probs
    np.testing.assert_allclose(
        duality_gap(game, policy, tau, per_prompt=True), gap_from_definition(game, pi, tau), rtol=1e-9, atol=1e-12
    )


@given(game_and_policy(max_prompts=3, ref="zeros"), st.sampled_from([0.0, 1.0, 0.01]))
def test_gap_is_non_negative_and_its_expectation_is_prompt_weighted(case, tau):
    game, policy = case
    per_prompt = duality_gap(game, policy, tau, per_prompt=True)
    assert np.all(per_prompt >= 0)
    assert duality_gap(game, policy, tau) == pytest.approx(float(game.prompt_probs @ per_prompt), rel=1e-12)


@given(game_and_policy(max_prompts=2, ref="zeros"), st.sampled_from([0.0, 1.0, 0.01]), st.integers(0, 2**32 - 1))
def test_best_response_is_at_least_as_good_as_any_other_policy(case, tau, seed):
    game, policy = case
    pi = policy.probs
    br = best_response(game, policy, tau).probs
    rng = np.random.default_rng(seed)
    others = rng.dirichlet(np.ones(game.num_actions), size=(32, game.num_prompts)) * game.support
    others /= others.sum(-1, keepdims=True)
    best = J(game, br, pi, tau)
    for other in others:
        assert np.all(J(game, other, pi, tau) <= best + 1e-12)
    assert np.all(J(game, pi, pi, tau) <= best + 1e-12)
    # the improvement is exactly half the gap: max J(·, π) − J(π, π) = DualGap_τ(π)/2 (the game is symmetric)
    np.testing.assert_allclose(
        best - J(game, pi, pi, tau), duality_gap(game, policy, tau, per_prompt=True) / 2, rtol=1e-8, atol=1e-12
    )


def test_pure_best_response_ignores_actions_outside_the_reference_support():
    game = rock_paper_scissors().with_ref([0.5, 0.0, 0.5])  # paper, the true best response to rock, is excluded
    np.testing.assert_array_equal(best_response(game, [1.0, 0.0, 0.0], 0.0).probs, [[1.0, 0.0, 0.0]])


def test_exploitability_is_half_the_unregularised_gap():
    game = random_intransitive(6, seed=2)
    pi = np.random.default_rng(0).dirichlet(np.ones(6))
    assert exploitability(game, pi) == pytest.approx(duality_gap(game, pi, 0.0) / 2, rel=1e-15)
    assert exploitability(game, pi) == pytest.approx((game.P[0] @ pi).max() - 0.5, rel=1e-12)


@pytest.mark.parametrize("tau", [-1.0, float("nan"), float("inf")])
def test_bad_tau_is_rejected(tau):
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        duality_gap(rock_paper_scissors(), [1 / 3] * 3, tau)


def test_policy_with_mass_outside_the_reference_support_is_rejected():
    game = rock_paper_scissors().with_ref([0.5, 0.5, 0.0])
    with pytest.raises(ValueError):
        duality_gap(game, [1 / 3] * 3, 0.1)


# ------------------------------------------------------------------------------------------ regularised equilibrium
@given(games(max_actions=12, max_prompts=3, ref="zeros"), taus)
def test_regularised_equilibrium_is_certified_and_a_fixed_point(game, tau):
    eq = regularized_nash(game, tau)
    assert eq.duality_gap <= 1e-12 and np.all(eq.gaps <= 1e-12)
    np.testing.assert_allclose(eq.gaps, duality_gap(game, eq.policy, tau, per_prompt=True), rtol=0, atol=0)
    assert not np.any(eq.policy.support & ~game.support)  # exact zeros off Supp(π_ref)
    # π = softmax(log π_ref + Pπ/τ): KL(π‖BR(π)) = gap/2τ ≤ 1e-12/2τ bounds the total variation by Pinsker
    tv = 0.5 * np.abs(best_response(game, eq.policy, tau).probs - eq.policy.probs).sum(-1)
    assert np.all(tv <= np.sqrt(1e-12 / tau) + 1e-15)


@given(game_and_policy(max_prompts=2, ref="zeros"), st.sampled_from([1.0, 0.1, 0.01]))
def test_duality_gap_bounds_the_kl_to_the_equilibrium(case, tau):
    """DualGap_τ(π) ≥ J(π*, π) − J(π, π*) = 2τ KL(π‖π*): the certificate of any policy bounds its distance."""
    game, policy = case
    star = regularized_nash(game, tau).policy
    kl = policy.kl(star)
    assert np.all(duality_gap(game, policy, tau, per_prompt=True) >= 2 * tau * kl * (1 - 1e-9) - 1e-15)


@given(games(max_actions=6, ref="random"), st.sampled_from([1.0, 0.1]), st.integers(0, 2**32 - 1))
def test_regularised_equilibrium_is_a_nash_equilibrium(game, tau, seed):
    """J(π*, π) ≥ J(π*, π*) = ½ ≥ J(π, π*) for every π (INPO §2.2)."""
    star = regularized_nash(game, tau).policy.probs
    assert J(game, star, star, tau)[0] == pytest.approx(0.5, abs=1e-15)
    for pi in np.random.default_rng(seed).dirichlet(np.ones(game.num_actions), size=16)[:, None, :]:
        assert J(game, star, pi, tau)[0] >= 0.5 - 1e-12
        assert J(game, pi, star, tau)[0] <= 0.5 + 1e-12


def test_zero_reference_entries_give_the_restricted_game_solution():
    game = random_intransitive(7, seed=4)
    ref = np.array([0.2, 0.0, 0.3, 0.1, 0.0, 0.25, 0.15])
    keep = ref > 0
    full = regularized_nash(game.with_ref(ref), 0.05).policy.probs[0]
    restricted = regularized_nash(PreferenceGame(game.P[0][np.ix_(keep, keep)], ref[keep]), 0.05).policy.probs[0]
    np.testing.assert_array_equal(full[~keep], 0.0)
    np.testing.assert_allclose(full[keep], restricted, rtol=1e-9)


def test_contextual_game_is_solved_per_prompt():
    parts = [random_intransitive(5, seed=s) for s in range(3)]
    game = PreferenceGame.stack(parts, prompt_probs=[0.5, 0.3, 0.2])
    eq = regularized_nash(game, 0.1)
    for x, part in enumerate(parts):
        np.testing.assert_allclose(eq.policy.probs[x], regularized_nash(part, 0.1).policy.probs[0], rtol=1e-9)
    assert eq.duality_gap == pytest.approx(float(np.dot([0.5, 0.3, 0.2], eq.gaps)), rel=1e-12)


@pytest.mark.parametrize("tau", [1.0, 0.01, 1e-3])
def test_large_game_matrix_free_path_matches_the_dense_path(tau, monkeypatch):
    """n = 300 goes through GMRES (with its dense fallback at small τ); forcing the dense solver must agree."""
    game = random_intransitive(300, seed=5)
    assert game.num_actions > equilibria.DENSE_NEWTON_MAX_ACTIONS
    iterative = regularized_nash(game, tau)
    monkeypatch.setattr(equilibria, "DENSE_NEWTON_MAX_ACTIONS", 10_000)
    dense = regularized_nash(game, tau)
    assert iterative.duality_gap <= 1e-12 and dense.duality_gap <= 1e-12
    np.testing.assert_allclose(iterative.policy.probs, dense.policy.probs, rtol=0, atol=2 * np.sqrt(1e-12 / tau))


def test_large_game_with_zero_reference_entries():
    game = random_intransitive(300, seed=6)
    ref = np.random.default_rng(0).dirichlet(np.ones(300)) * (np.arange(300) % 3 != 0)
    eq = regularized_nash(game.with_ref(ref / ref.sum()), 0.01)
    assert eq.duality_gap <= 1e-12
    np.testing.assert_array_equal(eq.policy.probs[0, ::3], 0.0)


def test_warm_start_reaches_the_same_equilibrium_faster():
    game = random_intransitive(40, seed=7)
    cold = regularized_nash(game, 0.01)
    warm = regularized_nash(game, 0.01, init=regularized_nash(game, 0.012).policy)
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.policy.probs, cold.policy.probs, rtol=0, atol=2e-5)


def test_failed_solve_raises_instead_of_returning():
    with pytest.raises(SolverError, match="did not converge"):
        regularized_nash(random_intransitive(20, seed=0), 0.01, max_iter=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tau": 0.0}, "needs tau > 0"),
        ({"tau": -0.1}, "tau must be a finite number"),
        ({"tau": 0.1, "tol": 0.0}, "tol must be positive"),
        ({"tau": 0.1, "init": [1.0, 0.0, 0.0]}, "init must put positive mass"),
    ],
)
def test_regularized_nash_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        regularized_nash(rock_paper_scissors(), **kwargs)


# --------------------------------------------------------------------------------------------------- the τ-path
def test_tau_path_equals_cold_solves():
    game = random_intransitive(8, seed=8)
    grid = [1.0, 0.3, 0.1, 0.03]
    for tau, eq in zip(grid, tau_path(game, grid)):
        assert eq.tau == tau and eq.duality_gap <= 1e-12
        np.testing.assert_allclose(eq.policy.probs, regularized_nash(game, tau).policy.probs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("grid", [[], [0.1, 0.2], [0.1, 0.1], [0.1, 0.0], [1.0, -1.0]])
def test_tau_path_rejects_grids_that_are_not_strictly_decreasing_and_positive(grid):
    with pytest.raises(ValueError):
        tau_path(rock_paper_scissors(), grid)


@given(games(min_actions=3, max_actions=8, ref="random"))
def test_regularised_equilibrium_approaches_the_lp_equilibrium_as_tau_falls(game):
    """Against any pure y, y'ᵀPπ_τ ≤ ½ + τ(KL(y‖π_ref) − KL(π_τ‖π_ref)) (π_τ is a Nash equilibrium of J), so
    DualGap_0(π_τ) ≤ 2τ max_y log(1/π_ref(y))."""
    grid = np.geomspace(1.0, 1e-4, 9)
    bound = 2 * grid * np.log(1 / game.ref.probs.min())
    for tau, limit, eq in zip(grid, bound, tau_path(game, grid)):
        assert duality_gap(game, eq.policy, 0.0) <= limit + 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_regularised_equilibrium_converges_to_the_unique_lp_equilibrium(seed):
    game = random_intransitive(9, seed=seed)
    lp = nash_lp(game)
    assert lp.unique.all()
    distances = [np.abs(eq.policy.probs - lp.policy.probs).sum() for eq in tau_path(game, [1e-1, 1e-3, 1e-5, 1e-7])]
    assert all(b < a for a, b in zip(distances, distances[1:]))
    assert distances[-1] < 1e-4


# --------------------------------------------------------------------------------------- unregularised equilibrium
@given(games(min_actions=2, max_actions=7, max_prompts=2, ref="zeros"))
def test_lp_equilibrium_matches_support_enumeration(game):
    """Random games are generic: the equilibrium is unique and found by enumerating supports without any LP."""
    eq = nash_lp(game)
    assert eq.duality_gap <= 1e-9
    for x in range(game.num_prompts):
        support = game.support[x]
        found = equilibria_by_support_enumeration(game.S[x][np.ix_(support, support)])
        assert len(found) == 1 and eq.unique[x]
        np.testing.assert_allclose(eq.policy.probs[x, support], found[0], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(eq.policy.probs[x, ~support], 0.0)


def test_lp_equilibrium_of_a_large_game_matches_highs_on_the_whole_game():
    """n = 250 takes the τ-path route; HiGHS on the whole LP is the independent answer."""
    game = random_intransitive(250, seed=3)
    assert game.num_actions > equilibria.LP_DIRECT_MAX_ACTIONS
    eq = nash_lp(game)
    S = game.S[0]
    n = len(S)
    whole = linprog(
        np.r_[np.zeros(n), 1.0], A_ub=np.c_[S, -np.ones(n)], b_ub=np.zeros(n),
        A_eq=np.r_[np.ones(n), 0.0][None], b_eq=[1.0], bounds=[(0, None)] * n + [(None, None)], method="highs",
    )  # fmt: skip
    assert eq.unique.all() and eq.duality_gap <= 1e-12
    np.testing.assert_allclose(eq.policy.probs[0], whole.x[:n], rtol=0, atol=1e-7)  # HiGHS's own accuracy


def duplicated_rock() -> PreferenceGame:
    P = rock_paper_scissors().P[0]
    keep = [0, 0, 1, 2]
    return PreferenceGame(P[np.ix_(keep, keep)])


@pytest.mark.parametrize(
    "game, max_entropy",
    [
        (cyclic(4), [0.25] * 4),  # equilibria (a, b, a, b), 2a + 2b = 1
        (PreferenceGame(np.full((3, 3), 0.5), [0.2, 0.3, 0.5]), [0.2, 0.3, 0.5]),  # every policy; KL-min is π_ref
        (duplicated_rock(), [1 / 6, 1 / 6, 1 / 3, 1 / 3]),  # rock's third split anyhow between its two copies
    ],
)
def test_non_unique_equilibrium_sets_are_reported_and_selected(game, max_entropy):
    eq = nash_lp(game)
    assert not eq.unique.any() and eq.selection == "max-entropy"
    np.testing.assert_allclose(eq.policy.probs[0], max_entropy, rtol=0, atol=1e-7)
    vertex = nash_lp(game, selection="vertex")
    assert not vertex.unique.any() and vertex.duality_gap <= 1e-9


def test_max_entropy_selection_is_the_limit_of_the_regularised_equilibrium():
    game = duplicated_rock()
    small_tau = tau_path(game, np.geomspace(1.0, 1e-5, 6))[-1]
    np.testing.assert_allclose(small_tau.policy.probs, nash_lp(game).policy.probs, rtol=0, atol=1e-4)


def test_lp_respects_the_reference_support():
    game = biased_rps(1, 2, 3).with_ref([0.5, 0.5, 0.0])  # without scissors, paper beats rock: pure paper
    np.testing.assert_array_equal(nash_lp(game).policy.probs, [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize("kwargs, message", [({"selection": "best"}, "selection must be one of"), ({"tol": 0}, "tol")])
def test_nash_lp_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nash_lp(rock_paper_scissors(), **kwargs)


def test_policies_are_accepted_as_arrays_or_tabular_policies():
    game = rock_paper_scissors()
    as_array = duality_gap(game, [0.2, 0.3, 0.5], 0.1)
    assert as_array == duality_gap(game, TabularPolicy.from_probs([0.2, 0.3, 0.5]), 0.1)
