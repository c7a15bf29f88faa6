"""nash_lp and regularized_nash on every kind of valid game, each answer checked by code that shares nothing with it.

The families are the ones a user meets (and that broke the solver before): random games, Bradley–Terry, nearly tied
games (|P − ½| from 1e-14 to 1e-4), nearly deterministic ones, blocks of exact ties, duplicated actions, references
with tiny entries and exact zeros, and contextual games stacking several of them. Independent checks:

* the certificate, max_y (Sπ)(y) on the game's exact skew part;
* scale invariance: for S on a 2^−12 grid, ½ + 2^−j S is exactly the game scaled by 2^−j (j ≤ 41, max|S| down
  to 2e-13); its answer must be the same;
* uniqueness: for up to 5 actions, every vertex of the equilibrium set E = {x ≥ 0, 1ᵀx = 1, Sx ≤ 0} is enumerated in
  exact rational arithmetic (E is a point iff it has one vertex); above, HiGHS's range of random linear functions
  over E on S scaled to max |S| = 1;
* the maximum-entropy selection: first-order optimality against vertices of E found by HiGHS with random
  objectives (KL is convex, so x* minimises it over E = conv(vertices) iff ⟨∇KL(x*), v − x*⟩ ≥ 0 for every vertex
  v), and equal mass on duplicated actions with equal reference mass;
* the restricted solve of large games (the τ-path route) against HiGHS on the whole LP.

Tolerances: certificates are relative to max |S| (the solver's ``tol``, 1e-9); HiGHS-based checks carry HiGHS's
1e-7 feasibility tolerance, so they use 1e-6 on S scaled to max |S| = 1.
"""

import functools
import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from strategies import seeds

from preference_games import equilibria
from preference_games.equilibria import SolverError, nash_lp, regularized_nash, tau_path
from preference_games.games import PreferenceGame, bradley_terry, condorcet, random_intransitive

FAMILIES = ("random", "bradley-terry", "nearly-tied", "nearly-deterministic", "tie-blocks", "duplicates")


# ------------------------------------------------------------------------------------------------ the families
def skew(rng: np.random.Generator, n: int) -> np.ndarray:
    upper = np.triu(rng.uniform(-0.5, 0.5, size=(n, n)), k=1)
    return upper - upper.T


def family_matrix(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A valid preference matrix [n, n] of the family."""
    if family == "random":
        return 0.5 + skew(rng, n)
    if family == "bradley-terry":
        return bradley_terry(rng.normal(scale=rng.choice([0.1, 1.0, 5.0]), size=n)).P[0]
    if family == "nearly-tied":
        return 0.5 + 10.0 ** rng.uniform(-14, -4) * skew(rng, n)
    if family == "nearly-deterministic":
        logits = 40.0 * skew(rng, n)
        return 1.0 / (1.0 + np.exp(-logits))  # many entries round to exactly 0 or 1
    if family == "tie-blocks":
        blocks = rng.integers(0, max(1, n // 2), size=n)
        S = np.where(blocks[:, None] == blocks[None, :], 0.0, skew(rng, n))
        return 0.5 + S
    if family == "duplicates":
        base = 0.5 + skew(rng, max(2, n - rng.integers(1, max(2, n // 2) + 1)))
        copies = np.r_[np.arange(len(base)), rng.integers(0, len(base), size=n - len(base))]
        return base[np.ix_(copies, copies)]
    raise ValueError(family)


def reference(rng: np.random.Generator, n: int, kind: str) -> np.ndarray | None:
    """uniform (None), random, or random with tiny entries and exact zeros (at least one action kept)."""
    if kind == "uniform":
        return None
    ref = rng.dirichlet(np.ones(n))
    if kind == "tiny-and-zeros":
        ref = np.where(rng.random(n) < 0.3, 10.0 ** rng.uniform(-300, -20, size=n), ref)
        ref = np.where(rng.random(n) < 0.25, 0.0, ref)
        if not ref.any():
            ref[rng.integers(n)] = 1.0
    return ref / ref.sum()


@st.composite
def family_games(draw, min_actions=2, max_actions=8, max_prompts=1, families=FAMILIES):
    rng = np.random.default_rng(draw(seeds))
    n = draw(st.integers(min_actions, max_actions))
    X = draw(st.integers(1, max_prompts))
    ref_kind = draw(st.sampled_from(["uniform", "random", "tiny-and-zeros"]))
    P = np.stack([family_matrix(draw(st.sampled_from(families)), n, rng) for _ in range(X)])
    refs = None if ref_kind == "uniform" else np.stack([reference(rng, n, ref_kind) for _ in range(X)])
    return PreferenceGame(P, refs, rng.dirichlet(np.ones(X)) if X > 1 else None)


# ------------------------------------------------------------------------------------------ independent checks
def exploitability_from_definition(game: PreferenceGame, pi: np.ndarray) -> np.ndarray:
    """max over Supp π_ref of (Pπ)(y) − ½ = (Sπ)(y) per prompt, written out here.

    On S, not on the stored P = ½ + S: that sum is rounded to 2^−54, which is a relative change of 1e-8 to a nearly
    tied game with |S| ~ 1e-9, and (Pπ)(y) − ½ cannot resolve an exploitability below 1e-16."""
    values = np.einsum("xij,xj->xi", game.S, pi)
    return np.where(game.support, values, -np.inf).max(-1)


def restricted_skew(game: PreferenceGame, x: int) -> np.ndarray:
    support = game.support[x]
    return game.S[x][np.ix_(support, support)]


def exact_vertices(S: np.ndarray) -> set[tuple[Fraction, ...]]:
    """Every vertex of E = {x ≥ 0, 1ᵀx = 1, Sx ≤ 0}, in exact rational arithmetic (floats are exact rationals).

    A vertex is a feasible point where n linearly independent constraints are tight: 1ᵀx = 1 and n − 1 of the 2n
    inequalities x_i ≥ 0, (Sx)_j ≤ 0."""
    n = len(S)
    F = [[Fraction(float(v)) for v in row] for row in S]
    rows = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)] + F  # x_i = 0, then (Sx)_j = 0
    found = set()
    for chosen in itertools.combinations(range(2 * n), n - 1):
        A = [list(rows[c]) + [Fraction(0)] for c in chosen] + [[Fraction(1)] * n + [Fraction(1)]]
        x = _solve_exact(A, n)
        if x is None or min(x) < 0 or any(sum(f * v for f, v in zip(row, x)) > 0 for row in F):
            continue
        found.add(tuple(x))
    return found


def _solve_exact(A: list[list[Fraction]], n: int) -> list[Fraction] | None:
    """Gauss–Jordan on the augmented n × (n + 1) system; None if singular."""
    A = [row[:] for row in A]
    for col in range(n):
        pivot = next((r for r in range(col, n) if A[r][col] != 0), None)
        if pivot is None:
            return None
        A[col], A[pivot] = A[pivot], A[col]
        for r in range(n):
            if r != col and A[r][col] != 0:
                factor = A[r][col] / A[col][col]
                A[r] = [a - factor * b for a, b in zip(A[r], A[col])]
    return [A[i][n] / A[i][i] for i in range(n)]


def highs_vertex(S: np.ndarray, c: np.ndarray) -> np.ndarray:
    """argmin cᵀx over E by HiGHS on S scaled to max|S| = 1 (HiGHS's tolerances are absolute)."""
    n = len(S)
    scaled = S / np.abs(S).max() if S.any() else S
    result = linprog(c, A_ub=scaled, b_ub=np.zeros(n), A_eq=np.ones((1, n)), b_eq=[1.0], bounds=(0, None),
                     method="highs")
    assert result.status == 0, result.message
    return np.clip(result.x, 0, None) / np.clip(result.x, 0, None).sum()


def unique_by_highs(S: np.ndarray, rng: np.random.Generator, trials: int = 4) -> bool:
    """E is a point iff every linear function is constant on it; random ones decide with probability one."""
    for _ in range(trials):
        c = rng.normal(size=len(S))
        if c @ highs_vertex(S, -c) - c @ highs_vertex(S, c) > 1e-6:
            return False
    return True


def on_a_grid(game: PreferenceGame, bits: int = 12) -> PreferenceGame:
    """The game with S rounded to multiples of 2^−bits: then ½ + 2^−j S is exact for every j ≤ 53 − bits (above ½
    the spacing of floats is 2^−53)."""
    return PreferenceGame(0.5 + np.round(np.ldexp(game.S, bits)) / 2.0**bits, game.ref, game.prompt_probs)


def scaled(game: PreferenceGame, j: int) -> PreferenceGame:
    return PreferenceGame(0.5 + np.ldexp(game.S, -j), game.ref, game.prompt_probs)


# ------------------------------------------------------------------------------------------------------ tests
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family_games(max_actions=12, max_prompts=3), st.sampled_from(equilibria.SELECTIONS))
def test_nash_lp_is_certified_on_every_family(game, selection):
    eq = nash_lp(game, selection=selection)
    pi = eq.policy.probs
    assert not np.any(pi[~game.support])  # exact zeros off Supp π_ref
    scale = np.abs(game.S).max(axis=(1, 2))
    assert np.all(exploitability_from_definition(game, pi) <= equilibria.LP_GAP_TOL * scale + 1e-17)
    assert len(eq.method) == game.num_prompts and eq.fallback.shape == (game.num_prompts,)


@settings(max_examples=60, deadline=None)
@given(family_games(max_actions=10, max_prompts=2), st.integers(1, 41), st.sampled_from(equilibria.SELECTIONS))
def test_nash_lp_is_invariant_to_the_scale_of_S(game, j, selection):
    """On a 2^−12 grid, ½ + 2^−j S is exactly the game S scaled by 2^−j (max|S| down to 2e-13 at j = 41): every answer
    must be the same (the equilibrium set of c·S is that of S)."""
    game = on_a_grid(game)
    small = scaled(game, j)
    np.testing.assert_array_equal(small.S, np.ldexp(game.S, -j))  # the scaled game really is exact
    eq, small_eq = nash_lp(game, selection=selection), nash_lp(small, selection=selection)
    np.testing.assert_array_equal(eq.unique, small_eq.unique)
    np.testing.assert_allclose(eq.policy.probs, small_eq.policy.probs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-12, 1e-9, 1e-6, 1e-3, 0.3, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_nash_lp_of_a_scaled_random_game_keeps_its_unique_equilibrium(scale, seed):
    """P = ½ + c·S rounds S to about 1e-16/c relative, so the answer moves by that much and no more."""
    S = skew(np.random.default_rng(seed), 7)
    reference_eq = nash_lp(PreferenceGame(0.5 + S))
    eq = nash_lp(PreferenceGame(0.5 + scale * S))
    assert eq.unique.all() and reference_eq.unique.all()
    np.testing.assert_allclose(eq.policy.probs, reference_eq.policy.probs, rtol=0, atol=1e-9 / scale)


@settings(max_examples=80, deadline=None)
@given(family_games(max_actions=5), st.sampled_from(equilibria.SELECTIONS))
def test_unique_agrees_with_exact_vertex_enumeration(game, selection):
    eq = nash_lp(game, selection=selection)
    vertices = exact_vertices(restricted_skew(game, 0))
    assert len(vertices) >= 1
    assert bool(eq.unique[0]) == (len(vertices) == 1)
    if len(vertices) == 1:
        np.testing.assert_allclose(eq.policy.probs[0, game.support[0]], [float(v) for v in next(iter(vertices))],
                                   rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(family_games(min_actions=6, max_actions=14), seeds)
def test_unique_agrees_with_highs_on_larger_games(game, seed):
    eq = nash_lp(game)
    assert bool(eq.unique[0]) == unique_by_highs(restricted_skew(game, 0), np.random.default_rng(seed))


@settings(max_examples=60, deadline=None)
@given(family_games(max_actions=10, families=("duplicates", "tie-blocks", "random", "nearly-tied")), seeds)
def test_max_entropy_selection_is_first_order_optimal_against_vertices_of_E(game, seed):
    eq = nash_lp(game)
    support = game.support[0]
    S, x, ref = restricted_skew(game, 0), eq.policy.probs[0, support], game.ref.probs[0, support]
    if eq.unique[0]:
        return
    rng = np.random.default_rng(seed)
    played = x > 0
    gradient = np.log(np.where(played, x, 1.0) / ref)
    for _ in range(8):
        vertex = highs_vertex(S, rng.normal(size=len(S)))
        assert vertex[~played].sum() <= 1e-6  # x has the largest support in E, as the KL minimiser must
        assert gradient[played] @ (vertex[played] - x[played]) >= -1e-6 * max(1.0, np.abs(gradient).max())


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(2, 7), st.integers(1, 3), st.sampled_from(["uniform", "random"]))
def test_duplicated_actions_with_equal_reference_mass_get_equal_probability(seed, n, copies, ref_kind):
    rng = np.random.default_rng(seed)
    base = family_matrix(rng.choice(["random", "tie-blocks", "nearly-tied"]), n, rng)
    index = np.r_[np.arange(n), rng.integers(0, n, size=copies)]
    ref = reference(rng, n, ref_kind)
    ref = None if ref is None else ref[index] / ref[index].sum()  # copies of an action share its mass equally
    game = PreferenceGame(base[np.ix_(index, index)], ref)
    pi = nash_lp(game).policy.probs[0]
    for a, b in itertools.combinations(range(len(index)), 2):
        if index[a] == index[b]:
            assert pi[a] == pytest.approx(pi[b], abs=1e-12)


def test_the_issue_duplicates_example():
    """dup.csv of issue 14: actions 1 and 4 (and 3 and 5) are copies under a uniform reference.

    E = Δ({1, 2, 4}) cut by row 0: x₂ ≤ (x₁ + x₄)/12, binding at the maximum-entropy point: x₁ = x₄ = 6/13."""
    P = np.array([
        [0.50, 0.48, 0.74, 0.32, 0.48, 0.32],
        [0.52, 0.50, 0.50, 0.96, 0.50, 0.96],
        [0.26, 0.50, 0.50, 0.64, 0.50, 0.64],
        [0.68, 0.04, 0.36, 0.50, 0.04, 0.50],
        [0.52, 0.50, 0.50, 0.96, 0.50, 0.96],
        [0.68, 0.04, 0.36, 0.50, 0.04, 0.50],
    ])  # fmt: skip
    eq = nash_lp(PreferenceGame(P))
    np.testing.assert_allclose(eq.policy.probs[0], [0, 6 / 13, 1 / 13, 0, 6 / 13, 0], rtol=0, atol=1e-12)
    assert not eq.unique[0] and not eq.fallback[0]


def test_max_entropy_matches_the_small_tau_limit_when_a_constraint_binds():
    """The regularised equilibrium tends to the maximum-entropy one: an independent route on the dup.csv game,
    where the selection's active set is not empty."""
    P = 0.5 + np.array([[0, -2, 24, -18], [2, 0, 0, 46], [-24, 0, 0, 14], [18, -46, -14, 0]]) / 100
    game = PreferenceGame(P)
    small_tau = tau_path(game, np.geomspace(1.0, 1e-6, 13))[-1].policy.probs
    np.testing.assert_allclose(small_tau, nash_lp(game).policy.probs, rtol=0, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(family_games(min_actions=2, max_actions=10, max_prompts=2), st.sampled_from([1e-3, 3e-4, 1e-4]))
def test_regularised_solver_certifies_small_tau_from_a_cold_start(game, tau):
    eq = regularized_nash(game, tau)
    assert eq.duality_gap <= 1e-12


def test_cold_start_failure_turns_into_a_tau_path():
    """τ = 1e-4 on a random 100-action game: Newton from π_ref did not converge in 200 steps before."""
    game = random_intransitive(100, seed=0)
    eq = regularized_nash(game, 1e-4)
    assert eq.duality_gap <= 1e-12 and eq.method.startswith("tau-path")
    reference_eq = tau_path(game, np.geomspace(0.5, 1e-4, 8))[-1]
    np.testing.assert_allclose(eq.policy.probs, reference_eq.policy.probs, rtol=0, atol=2 * np.sqrt(1e-12 / 1e-4))


def test_a_failing_tau_path_still_raises(monkeypatch):
    """A path too coarse for Newton (one jump from 0.5 to 1e-4) fails, and the error says where."""
    monkeypatch.setattr(equilibria, "AUTO_PATH_RATIO", 1e6)
    with pytest.raises(SolverError, match="did not converge.*automatic tau-path"):
        regularized_nash(random_intransitive(50, seed=0), 1e-4, max_iter=equilibria.COLD_START_ITER + 1)


# ----------------------------------------------------------------------------- the restricted solve (large games)
def highs_whole(S: np.ndarray) -> np.ndarray:
    return equilibria._lp_on(S / np.abs(S).max(), method="highs-ipm")


@pytest.mark.parametrize("seed", range(2))
def test_restricted_solve_matches_highs_on_the_whole_lp(seed):
    game = random_intransitive(240, seed=seed)
    assert game.num_actions > equilibria.LP_DIRECT_MAX_ACTIONS
    eq = nash_lp(game)
    assert eq.unique.all() and not eq.fallback.any() and "tau-path" in eq.method[0]
    assert exploitability_from_definition(game, eq.policy.probs)[0] <= 1e-14
    np.testing.assert_allclose(eq.policy.probs[0], highs_whole(game.S[0]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [1e-10, 1e-6])
def test_restricted_solve_of_a_nearly_tied_large_game(scale):
    S = random_intransitive(230, seed=7).S[0]
    game = PreferenceGame(0.5 + scale * S)
    eq = nash_lp(game)
    assert eq.unique.all()
    np.testing.assert_allclose(eq.policy.probs[0], highs_whole(game.S[0]), rtol=0, atol=1e-6)


def test_restricted_solve_of_a_large_game_with_a_condorcet_winner():
    game = condorcet(260, seed=1)
    eq = nash_lp(game)
    np.testing.assert_array_equal(eq.policy.probs[0], np.eye(260)[0])
    assert eq.unique.all()


def test_large_game_with_several_equilibria_falls_back_and_says_so():
    """Duplicated actions make the support's system singular: the τ-path route cannot certify, HiGHS answers."""
    base = random_intransitive(150, seed=2).P[0]
    index = np.r_[np.arange(150), np.arange(60)]
    game = PreferenceGame(base[np.ix_(index, index)])
    eq = nash_lp(game)
    assert not eq.unique[0]
    whole = highs_whole(game.S[0])
    assert exploitability_from_definition(game, eq.policy.probs)[0] <= 1e-14
    # the two copies of each action share its mass equally, and the sum over copies is HiGHS's answer
    pi = eq.policy.probs[0]
    np.testing.assert_allclose(pi[:60], pi[150:], rtol=0, atol=1e-12)
    merged, highs_merged = pi[:150].copy(), whole[:150].copy()
    merged[:60] += pi[150:]
    highs_merged[:60] += whole[150:]
    np.testing.assert_allclose(merged, highs_merged, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------- the LP over a τ-path point's undecided actions
_AMBIGUOUS_N = 300


@functools.lru_cache(maxsize=None)
def equilibrium_of_random(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(S normalised as nash_lp does, HiGHS's equilibrium) of random_intransitive(_AMBIGUOUS_N, seed)."""
    S = equilibria._normalised_skew(random_intransitive(_AMBIGUOUS_N, seed=seed).S[0])
    return S, highs_whole(S)


def split(played: np.ndarray, rng: np.random.Generator, undecided: float) -> np.ndarray:
    """A log(π_τ/π_ref) that puts ``played`` above the upper bound and the rest below the lower one, except a fraction
    ``undecided`` of the actions, drawn at random, put between the bounds."""
    low, high = equilibria.AMBIGUOUS_LOG_RATIO
    log_ratio = np.where(played, high + 1.0, low - 10.0)
    between = rng.random(len(played)) < undecided
    log_ratio[between] = rng.uniform(low, high, size=between.sum())
    return log_ratio


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 3), draw=seeds, undecided=st.sampled_from([0.05, 0.2, 0.5]))
def test_ambiguous_lp_with_a_right_split_finds_the_equilibrium(seed, draw, undecided):
    """Every played action above the bounds or between them, every beaten one below or between: the LP over the
    undecided actions returns HiGHS's equilibrium, with its support, certified."""
    S, x_star = equilibrium_of_random(seed)
    played = x_star > 1e-9
    (found, count) = equilibria._ambiguous_lp(S, split(played, np.random.default_rng(draw), undecided))
    assert found is not None and 0 < count <= equilibria.MAX_AMBIGUOUS
    x, T, face = found
    np.testing.assert_array_equal(T, played)
    np.testing.assert_allclose(x, x_star, rtol=0, atol=1e-6)
    assert (S @ x).max() <= 1e-15 and face.dim == 0


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 3), draw=seeds, wrong=st.integers(1, 4), side=st.sampled_from(["played", "beaten"]))
def test_ambiguous_lp_with_a_wrong_split_never_returns_a_wrong_answer(seed, draw, wrong, side):
    """Played actions taken as beaten, or beaten ones as played: the LP fails (None) or still finds the equilibrium
    (a wrongly 'played' action can come out of the LP at zero mass); it never returns anything else."""
    S, x_star = equilibrium_of_random(seed)
    played = x_star > 1e-9
    rng = np.random.default_rng(draw)
    log_ratio = split(played, rng, 0.1)
    candidates = np.flatnonzero(played if side == "played" else ~played)
    flipped = rng.choice(candidates, size=wrong, replace=False)
    log_ratio[flipped] = equilibria.AMBIGUOUS_LOG_RATIO[0] - 10.0 if side == "played" else 0.0
    found, _ = equilibria._ambiguous_lp(S, log_ratio)
    if side == "played":
        assert found is None  # a played action forced to zero mass: no equilibrium is left (it is unique)
    elif found is not None:
        np.testing.assert_array_equal(found[1], played)
        np.testing.assert_allclose(found[0], x_star, rtol=0, atol=1e-6)


def test_nash_lp_at_n_1000_reports_the_route_that_found_the_support():
    eq = nash_lp(random_intransitive(1000, seed=0))
    assert "an LP over its" in eq.method[0] and "undecided actions at tau" in eq.method[0]
    assert eq.duality_gap <= 1e-12


@pytest.mark.slow
def test_restricted_solve_at_n_1000_matches_highs_and_certifies_below_1e_12():
    """The benchmark's size: the τ-path route, its certificate, and HiGHS's interior point on the whole LP."""
    game = random_intransitive(1000, seed=0)
    eq = nash_lp(game)
    assert eq.unique.all() and not eq.fallback.any() and "tau-path" in eq.method[0]
    assert eq.duality_gap <= 1e-12
    np.testing.assert_allclose(eq.policy.probs[0], highs_whole(game.S[0]), rtol=0, atol=1e-6)
