"""Tests for ``preference_games.games``: validation, the stored representation, the built-in games and the
per-prompt quantities of a game.

Tolerances: stored matrices are compared bitwise where the code promises exactness (antisymmetry, the repair,
P + Pᵀ = 1, rotations); values obtained by a different floating-point route (expit, loops) are compared to 1e-15
absolute, a few ulps of ½, because P is stored as ½ + S.
"""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit

from preference_games.games import (
    CONSTANT_SUM_ATOL,
    IPO_MD_FIGURE9_PRINTED,
    PreferenceGame,
    biased_rps,
    bradley_terry,
    by_name,
    condorcet,
    cyclic,
    named_games,
    random_intransitive,
    rock_paper_scissors,
    rps_variant,
    tournament,
)
from preference_games.policies import TabularPolicy
from strategies import game_and_policy, games, seeds

ULP_TOL = 1e-15


def error_of(*args, **kwargs) -> str:
    """The message of the ValueError that PreferenceGame(*args, **kwargs) raises."""
    with pytest.raises(ValueError) as info:
        PreferenceGame(*args, **kwargs)
    return str(info.value)


def valid_3x3() -> np.ndarray:
    return np.array([[0.5, 0.75, 0.25], [0.25, 0.5, 0.625], [0.75, 0.375, 0.5]])


# ============================================================================================== validation
@pytest.mark.parametrize(
    "P",
    [np.full((2, 3), 0.5), np.full(3, 0.5), np.full((1, 2, 2, 2), 0.5), np.full((2, 2, 3), 0.5), 0.5],
    ids=["2x3", "1-D", "4-D", "stack-not-square", "scalar"],
)
def test_rejects_bad_shapes(P):
    """The message reports the shape (a 2-D input is reported with a leading prompt axis of 1)."""
    message = error_of(P)
    assert "must be square" in message and str(np.shape(P))[1:] in message


@pytest.mark.parametrize("shape", [(0, 0), (0, 2, 2), (3, 0, 0)])
def test_rejects_empty_matrix(shape):
    assert "empty" in error_of(np.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_entry_message_gives_its_index(bad):
    P = valid_3x3()
    P[1, 2] = bad
    message = error_of(P)
    assert "non-finite" in message and "1, 2)" in message


def test_non_finite_entry_of_a_stack_gives_the_prompt():
    P = np.stack([valid_3x3(), valid_3x3()])
    P[1, 2, 0] = np.nan
    assert "(1, 2, 0)" in error_of(P)


def test_entry_outside_unit_interval_is_named():
    message = error_of([[0.5, 1.2], [-0.2, 0.5]])
    assert "must lie in [0, 1]" in message
    assert "P[0, 1] = 1.2" in message and "P[1, 0] = -0.2" in message


def test_outside_unit_interval_is_checked_even_with_antisymmetrize():
    """The repair fixes P + Pᵀ ≠ 1 only; probabilities outside [0, 1] are still an error."""
    assert "P[0, 1] = 1.2" in error_of([[0.5, 1.2], [0.3, 0.5]], antisymmetrize=True)


def test_constant_sum_violation_names_the_pair_and_the_repair():
    message = error_of([[0.5, 0.7], [0.2, 0.5]])
    assert "not constant-sum" in message
    assert "P[0, 1] + P[1, 0] = 0.9" in message
    assert "antisymmetrize" in message
    assert "P[1, 0] + P[0, 1]" not in message  # each pair is reported once


def test_wrong_diagonal_is_named():
    P = valid_3x3()
    P[2, 2] = 0.4
    assert "P[2, 2] = 0.4 (must be 0.5)" in error_of(P)


def test_violations_listed_worst_first_then_counted():
    """Five violations with distinct sizes: the worst three in order, then "and 2 more"."""
    P = np.full((4, 4), 0.5)
    P[0, 1], P[1, 0] = 0.5, 0.4  # |sum − 1| = 0.1
    P[0, 2], P[2, 0] = 0.4, 0.3  # 0.3
    P[1, 3], P[3, 1] = 0.5, 0.46  # 0.04
    P[2, 3], P[3, 2] = 0.6, 0.6  # 0.2
    P[3, 3] = 0.47  # diagonal: |2·0.47 − 1| = 0.06
    message = error_of(P)
    listed = re.findall(r"P\[\d, \d\](?: \+ P\[\d, \d\])? = [-\d.]+", message)
    assert listed == ["P[0, 2] + P[2, 0] = 0.7", "P[2, 3] + P[3, 2] = 1.2", "P[0, 1] + P[1, 0] = 0.9"]
    assert "and 2 more" in message


def test_three_violations_are_listed_without_a_count():
    P = np.full((3, 3), 0.5)
    P[0, 1] = P[0, 2] = P[1, 2] = 0.6
    message = error_of(P)
    assert message.count("] + P[") == 3 and "more" not in message


def test_contextual_messages_name_the_prompt():
    good = valid_3x3()
    bad_sum, bad_range = good.copy(), good.copy()
    bad_sum[0, 1] = 0.65
    bad_range[2, 0] = 1.5
    assert "P[1][0, 1] + P[1][1, 0] = 0.9" in error_of(np.stack([good, bad_sum]))
    assert "P[2][2, 0] = 1.5" in error_of(np.stack([good, good, bad_range]))


def test_constant_sum_tolerance():
    """|P + Pᵀ − 1| ≤ CONSTANT_SUM_ATOL = 1e-9 is accepted; 1.01e-9 and 1e-8 are rejected."""
    assert CONSTANT_SUM_ATOL == 1e-9

    def matrix(excess):
        return [[0.5, 0.75 + excess], [0.25, 0.5]]

    game = PreferenceGame(matrix(0.99e-9))
    assert game.P[0, 0, 1] + game.P[0, 1, 0] == 1.0
    assert np.max(np.abs(game.P[0] - np.array(matrix(0.99e-9)))) <= CONSTANT_SUM_ATOL / 2 + 1e-16
    for excess in (1.01e-9, 1e-8, -1e-8):
        assert "not constant-sum" in error_of(matrix(excess))


@pytest.mark.parametrize(
    "P",
    [[[0.5, 0.5], [0.5]], [["a", "b"], ["c", "d"]], "abc", [[0.5, {}], [0.5, 0.5]]],
    ids=["ragged", "strings", "text", "object"],
)
def test_rejects_non_numeric_or_ragged_input(P):
    assert "not a rectangular numeric array" in error_of(P)


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ([0.5, 0.5], "reference policy must have shape (1, 3)"),
        ([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]], "reference policy must have shape (1, 3)"),
        (TabularPolicy.uniform(2, 3), "reference policy must have shape (1, 3)"),
        ([0.6, 0.6, -0.2], "finite and non-negative"),
        ([0.5, np.nan, 0.5], "finite and non-negative"),
        ([0.5, 0.3, 0.1], "must sum to 1 (row 0 sums to 0.9)"),
        ([0.0, 0.0, 0.0], "must sum to 1"),
    ],
)
def test_rejects_bad_reference(ref, fragment):
    assert fragment in error_of(valid_3x3(), ref)


@pytest.mark.parametrize(
    "prompt_probs, fragment",
    [
        ([1.0], "prompt distribution must have shape (2,)"),
        ([[0.5, 0.5]], "prompt distribution must have shape (2,)"),
        ([1.5, -0.5], "finite and non-negative"),
        ([np.inf, 0.0], "finite and non-negative"),
        ([0.5, 0.4], "must sum to 1"),
    ],
)
def test_rejects_bad_prompt_distribution(prompt_probs, fragment):
    assert fragment in error_of(np.stack([valid_3x3()] * 2), None, prompt_probs)


def test_rejects_wrong_number_of_action_names():
    assert "expected 3 action names; got 2" in error_of(valid_3x3(), actions=["a", "b"])


def test_reference_and_prompt_sums_within_1e_9_are_renormalised():
    game = PreferenceGame(np.stack([valid_3x3()] * 2), [0.5, 0.5 + 5e-10, 0.0], [0.25, 0.75 + 5e-10])
    np.testing.assert_allclose(game.ref.probs.sum(-1), 1.0, rtol=0, atol=ULP_TOL)
    np.testing.assert_allclose(game.prompt_probs.sum(), 1.0, rtol=0, atol=ULP_TOL)
    assert np.array_equal(game.support, [[True, True, False]] * 2)


# ============================================================================= stored representation
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)).map(lambda s: (s[0], s[1], s[1])),
                  elements=st.floats(0.0, 1.0)))
def test_antisymmetrize_is_exactly_the_repair_formula(P):
    """Any matrix in [0, 1]: antisymmetrize=True stores exactly (P − Pᵀ + 1)/2, which is exactly constant-sum."""
    game = PreferenceGame(P, antisymmetrize=True)
    Pt = np.swapaxes(P, 1, 2)
    assert np.array_equal(game.P, (P - Pt + 1) / 2)
    assert np.all(game.P + np.swapaxes(game.P, 1, 2) == 1.0)


def test_antisymmetrize_known_answer():
    game = PreferenceGame([[0.5, 0.7], [0.2, 0.5]], antisymmetrize=True)
    np.testing.assert_allclose(game.P[0], [[0.5, 0.75], [0.25, 0.5]], rtol=0, atol=ULP_TOL)


def test_dyadic_valid_matrix_is_stored_unchanged():
    for flag in (False, True):
        assert np.array_equal(PreferenceGame(valid_3x3(), antisymmetrize=flag).P[0], valid_3x3())


@given(games(max_prompts=3))
def test_stored_form_is_exact_and_revalidation_is_a_no_op(game):
    """S = −Sᵀ and P = ½ + S bitwise; P + Pᵀ = 1 exactly; rebuilding from game.P, repaired or not, changes no bit."""
    S, P = game.S, game.P
    assert np.array_equal(S, -np.swapaxes(S, 1, 2))
    assert np.array_equal(P, 0.5 + S)
    assert np.all(P + np.swapaxes(P, 1, 2) == 1.0)
    for flag in (False, True):
        again = PreferenceGame(P, game.ref, game.prompt_probs, antisymmetrize=flag)
        assert np.array_equal(again.P, P) and np.array_equal(again.S, S)


def test_stored_arrays_are_read_only_and_not_aliased():
    source = valid_3x3()
    game = PreferenceGame(source)
    for array in (game.P, game.S, game.ref.log_probs):
        with pytest.raises(ValueError, match="read-only"):
            array[(0,) * array.ndim] = 0.0
    source[0, 1] = 0.0  # the caller's array is copied, not kept
    assert game.P[0, 0, 1] == 0.75


# ============================================================================================ constructors
def test_rock_paper_scissors_entries():
    game = rock_paper_scissors()
    assert game.actions == ("rock", "paper", "scissors")
    assert np.array_equal(game.P[0], [[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])
    assert game.P[0, 0, 2] == 1.0 and game.P[0, 1, 0] == 1.0 and game.P[0, 2, 1] == 1.0
    np.testing.assert_array_equal(game.ref.probs, [[1 / 3] * 3])


def test_rps_variant_needs_the_repair():
    with pytest.raises(ValueError) as info:
        rps_variant()
    assert "P[0, 1] + P[1, 0] = 0.9" in str(info.value) and "P[1, 2] + P[2, 1] = 0.9" in str(info.value)
    game = rps_variant(antisymmetrize=True)
    expected = [[0.5, 0.85, 0.1], [0.15, 0.5, 0.85], [0.9, 0.15, 0.5]]
    np.testing.assert_allclose(game.P[0], expected, rtol=0, atol=ULP_TOL)
    printed = np.array(IPO_MD_FIGURE9_PRINTED)
    assert np.array_equal(game.P[0], (printed - printed.T + 1) / 2)


def test_biased_rps_known_entries():
    P = biased_rps(1.0, 2.0, 3.0).P[0]
    expected = 0.5 + np.array([[0, -3, 2], [3, 0, -1], [-2, 1, 0]]) / 6
    np.testing.assert_allclose(P, expected, rtol=0, atol=ULP_TOL)


@given(st.tuples(*[st.floats(1e-3, 1e3)] * 3))
def test_biased_rps_weights_are_an_equalising_policy(weights):
    """S·(a, b, c) = 0: every action earns exactly ½ against the policy ∝ (a, b, c)."""
    game = biased_rps(*weights)
    pi = np.array(weights) / sum(weights)
    np.testing.assert_allclose(game.S[0] @ pi, 0.0, rtol=0, atol=ULP_TOL)
    np.testing.assert_allclose(game.preference_against(pi), 0.5, rtol=0, atol=ULP_TOL)


@pytest.mark.parametrize("weights", [(0, 1, 1), (1, -1, 1), (1, 1, np.nan), (1, np.inf, 1)])
def test_biased_rps_rejects_bad_weights(weights):
    with pytest.raises(ValueError, match="positive weights"):
        biased_rps(*weights)


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 7)), elements=st.floats(-20, 20)))
def test_bradley_terry_matches_expit(rewards):
    """P[x, i, j] = σ(r_i − r_j) per prompt, against scipy's expit."""
    game = bradley_terry(rewards)
    assert game.num_prompts == rewards.shape[0]
    expected = expit(rewards[:, :, None] - rewards[:, None, :])
    np.testing.assert_allclose(game.P, expected, rtol=0, atol=ULP_TOL)


def test_bradley_terry_one_prompt_and_reference():
    game = bradley_terry([0.0, np.log(3.0)], ref=[0.25, 0.75])
    np.testing.assert_allclose(game.P[0], [[0.5, 0.25], [0.75, 0.5]], rtol=0, atol=ULP_TOL)
    np.testing.assert_allclose(game.ref.probs, [[0.25, 0.75]], rtol=0, atol=ULP_TOL)


@pytest.mark.parametrize("rewards", [np.zeros((1, 2, 2)), [0.0, np.nan], [np.inf, 0.0], 1.0])
def test_bradley_terry_rejects_bad_rewards(rewards):
    with pytest.raises(ValueError, match="rewards must be"):
        bradley_terry(rewards)


def test_tournament_from_beats():
    beats = [[False, True, False], [False, False, False], [False, True, False]]  # 0 ≻ 1, 2 ≻ 1, 0 ~ 2
    assert np.array_equal(tournament(beats).P[0], [[0.5, 1.0, 0.5], [0.0, 0.5, 0.0], [0.5, 1.0, 0.5]])


def test_tournament_rejects_contradictions_and_bad_shapes():
    with pytest.raises(ValueError, match="both 1 ≻ 2 and 2 ≻ 1"):
        tournament([[False, False, False], [False, False, True], [False, True, False]])
    with pytest.raises(ValueError, match="square"):
        tournament([[True, False]])


@given(st.integers(1, 16), st.floats(1e-3, 1.0))
def test_cyclic_structure(n, strength):
    """Rows are rotations of row 0; S·1 = 0; each action beats exactly ⌈n/2⌉ − 1 others, ties the opposite one."""
    P = cyclic(n, strength).P[0]
    for i in range(n):
        assert np.array_equal(P[i], np.roll(P[0], i))
    np.testing.assert_allclose(cyclic(n, strength).S[0].sum(axis=1), 0.0, rtol=0, atol=ULP_TOL)
    assert np.all((P > 0.5).sum(axis=1) == (n + 1) // 2 - 1)
    np.testing.assert_allclose(P[0, 1 : (n + 1) // 2], 0.5 + strength / 2, rtol=0, atol=ULP_TOL)
    if n % 2 == 0:
        assert P[0, n // 2] == 0.5


def test_cyclic_three_is_rock_paper_scissors_relabelled():
    """cyclic(3) has 0 ≻ 1 ≻ 2 ≻ 0; RPS with paper and scissors swapped is the same matrix."""
    rps, cyc = rock_paper_scissors().P[0], cyclic(3).P[0]
    assert not np.array_equal(rps, cyc)
    perm = [0, 2, 1]
    assert np.array_equal(rps[np.ix_(perm, perm)], cyc)


@pytest.mark.parametrize("n, strength", [(0, 1.0), (-2, 1.0), (2.5, 1.0), (3, 0.0), (3, 1.5), (3, -0.2), (3, np.nan)])
def test_cyclic_rejects_bad_arguments(n, strength):
    with pytest.raises(ValueError, match="cyclic"):
        cyclic(n, strength)


def has_condorcet_winner(P: np.ndarray) -> bool:
    """Some action beats every other action strictly (checked by loops)."""
    n = len(P)
    return any(all(P[i, j] > 0.5 for j in range(n) if j != i) for i in range(n))


@given(st.integers(3, 12), seeds, st.integers(1, 3))
def test_random_intransitive_has_no_condorcet_winner(n, seed, num_prompts):
    game = random_intransitive(n, seed=seed, num_prompts=num_prompts)
    assert game.P.shape == (num_prompts, n, n)
    assert not any(has_condorcet_winner(P) for P in game.P)


def test_random_intransitive_is_reproducible_by_seed():
    a, b, c = (random_intransitive(6, seed=s, num_prompts=2) for s in (7, 7, 8))
    assert np.array_equal(a.P, b.P)
    assert not np.array_equal(a.P, c.P)
    assert not np.array_equal(a.P[0], a.P[1])  # prompts are distinct draws


@pytest.mark.parametrize("n", [2, 1, 0, 3.5])
def test_random_intransitive_needs_three_actions(n):
    with pytest.raises(ValueError, match="at least 3"):
        random_intransitive(n)


@given(st.integers(2, 12), seeds)
def test_condorcet_action_zero_beats_all(n, seed):
    P = condorcet(n, seed=seed).P[0]
    assert np.all(P[0, 1:] > 0.5)
    assert np.array_equal(condorcet(n, seed=seed).P, condorcet(n, seed=seed).P)


def test_condorcet_needs_two_actions():
    with pytest.raises(ValueError, match="at least 2"):
        condorcet(1)


BY_NAME = {
    "rps": rock_paper_scissors,
    "rps-variant": lambda: rps_variant(antisymmetrize=True),
    "biased-rps": lambda: biased_rps(1.0, 2.0, 3.0),
    "bradley-terry": lambda: bradley_terry([0.0, 0.5, 1.0, 1.5, 2.0]),
    "cyclic": lambda: cyclic(5),
    "random": lambda: random_intransitive(10, seed=0),
    "condorcet": lambda: condorcet(5, seed=0),
}
SIZED = ["bradley-terry", "cyclic", "random", "condorcet"]


def test_registry_lists_exactly_the_known_games():
    assert set(named_games()) == set(BY_NAME)


@pytest.mark.parametrize("name", list(BY_NAME))
def test_by_name_builds_the_described_game(name):
    game = by_name(name, antisymmetrize=True)
    assert np.array_equal(game.P, BY_NAME[name]().P)


@pytest.mark.parametrize("name", SIZED)
def test_by_name_respects_actions_and_seed(name):
    assert by_name(name, actions=7).num_actions == 7
    if name == "random":
        assert np.array_equal(by_name(name, seed=3).P, random_intransitive(10, seed=3).P)
    if name == "condorcet":
        assert np.array_equal(by_name(name, seed=3).P, condorcet(5, seed=3).P)


@pytest.mark.parametrize("name", SIZED)
def test_by_name_rejects_zero_actions(name):
    """actions=0 is a bad size, not "use the default"."""
    with pytest.raises(ValueError):
        by_name(name, actions=0)


def test_by_name_errors():
    with pytest.raises(ValueError, match="unknown game 'nope'; choose one of: rps, "):
        by_name("nope")
    with pytest.raises(ValueError, match="not constant-sum"):
        by_name("rps-variant")
    for name in ("rps", "rps-variant", "biased-rps"):
        with pytest.raises(ValueError, match="exactly 3 actions"):
            by_name(name, actions=4, antisymmetrize=True)
        assert by_name(name, actions=3, antisymmetrize=True).num_actions == 3


# =========================================================================================== contextual
def test_stack_builds_a_contextual_game():
    rps, cyc = rock_paper_scissors(), cyclic(3)
    game = PreferenceGame.stack([rps, cyc, rps.with_ref([0.5, 0.5, 0.0])], prompt_probs=[0.2, 0.3, 0.5])
    assert game.P.shape == (3, 3, 3) and game.actions == rps.actions
    assert np.array_equal(game.P, np.concatenate([rps.P, cyc.P, rps.P]))
    assert np.array_equal(game.prompt_probs, [0.2, 0.3, 0.5])
    assert np.array_equal(game.support, [[True] * 3, [True] * 3, [True, True, False]])
    np.testing.assert_array_equal(PreferenceGame.stack([rps, cyc]).prompt_probs, [0.5, 0.5])


def test_stack_errors():
    with pytest.raises(ValueError, match="at least one game"):
        PreferenceGame.stack([])
    with pytest.raises(ValueError, match=r"same number of actions; got \[3, 4\]"):
        PreferenceGame.stack([cyclic(3), cyclic(4)])


def test_expected_is_the_prompt_weighted_mean():
    game = PreferenceGame.stack([cyclic(3), cyclic(3)], prompt_probs=[0.25, 0.75])
    assert game.expected(np.array([1.0, 3.0])) == 2.5


@given(games(max_prompts=3))
def test_expected_matches_a_loop(game):
    values = np.linspace(-1.0, 2.0, game.num_prompts)
    naive = sum(game.prompt_probs[x] * values[x] for x in range(game.num_prompts))
    assert abs(game.expected(values) - naive) <= ULP_TOL


def test_preference_against_known_answers():
    game = rock_paper_scissors()
    np.testing.assert_allclose(game.preference_against([1 / 3] * 3), [[0.5] * 3], rtol=0, atol=ULP_TOL)
    assert np.array_equal(game.preference_against([1.0, 0.0, 0.0]), [[0.5, 1.0, 0.0]])  # vs pure rock
    assert game.win_rate([0.0, 1.0, 0.0], [1.0, 0.0, 0.0])[0] == 1.0  # paper beats rock


@given(game_and_policy(max_prompts=3, ref="zeros"))
def test_preference_against_and_win_rate_match_loops(game_and_pi):
    game, pi = game_and_pi
    X, Y = game.num_prompts, game.num_actions
    p = pi.probs
    q = game.ref.probs  # a second policy on the same support
    against = game.preference_against(pi)
    win = game.win_rate(pi, q)
    for x in range(X):
        for i in range(Y):
            assert abs(against[x, i] - sum(game.P[x, i, j] * p[x, j] for j in range(Y))) <= ULP_TOL
        naive = sum(p[x, i] * game.P[x, i, j] * q[x, j] for i in range(Y) for j in range(Y))
        assert abs(win[x] - naive) <= ULP_TOL


@given(game_and_policy(max_prompts=3, ref="zeros"))
def test_win_rate_against_itself_is_one_half(game_and_pi):
    """πᵀPπ = ½ on every prompt (antisymmetry of S); float round-off only, a few ulps."""
    game, pi = game_and_pi
    np.testing.assert_allclose(game.win_rate(pi, pi), 0.5, rtol=0, atol=ULP_TOL)


@given(game_and_policy(max_prompts=3))
def test_win_rates_of_the_two_players_sum_to_one(game_and_pi):
    game, pi = game_and_pi
    ref = game.ref
    np.testing.assert_allclose(game.win_rate(pi, ref) + game.win_rate(ref, pi), 1.0, rtol=0, atol=ULP_TOL)


def test_with_ref_replaces_only_the_reference():
    game = PreferenceGame.stack([rock_paper_scissors(), cyclic(3)], prompt_probs=[0.25, 0.75])
    other = game.with_ref([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    assert np.array_equal(other.P, game.P)
    assert np.array_equal(other.prompt_probs, game.prompt_probs)
    assert other.actions == game.actions and other.name == game.name
    assert np.array_equal(other.support, [[True, True, False], [False, True, True]])
    assert game.support.all()  # the original is untouched
    with pytest.raises(ValueError, match="reference policy must have shape"):
        game.with_ref([0.5, 0.5])


def test_policy_coercion():
    single = rock_paper_scissors()
    pi = single.policy([0.25, 0.25, 0.5])
    assert isinstance(pi, TabularPolicy) and pi.shape == (1, 3)
    np.testing.assert_allclose(pi.probs, [[0.25, 0.25, 0.5]], rtol=1e-15, atol=0)
    contextual = PreferenceGame.stack([single, single])
    np.testing.assert_allclose(contextual.policy([[1, 0, 0], [0, 0.5, 0.5]]).probs, [[1, 0, 0], [0, 0.5, 0.5]],
                               rtol=1e-15, atol=0)
    given_policy = TabularPolicy.uniform(2, 3)
    assert contextual.policy(given_policy) is given_policy


@pytest.mark.parametrize(
    "policy, fragment",
    [
        ([0.5, 0.5, 0.0], "policy must have shape (2, 3)"),  # one row for a two-prompt game
        ([[0.5, 0.5], [0.5, 0.5]], "policy must have shape (2, 3)"),
        (TabularPolicy.uniform(1, 3), "policy has shape (1, 3); this game needs (2, 3)"),
        ([[0.5, 0.6, 0.0], [0.5, 0.5, 0.0]], "policy must sum to 1"),
        ([[1.5, -0.5, 0.0], [0.5, 0.5, 0.0]], "finite and non-negative"),
        ([[0.5, 0.5, 0.0], [0.5, 0.25, 0.25]], "mass on action 2 (prompt 1) outside the support of π_ref"),
        ([[0.5, 0.5, 1e-300], [0.5, 0.5, 0.0]], "mass on action 2 (prompt 0) outside the support of π_ref"),
        (TabularPolicy.uniform(2, 3), "mass on action 2 (prompt 0) outside the support"),
    ],
)
def test_policy_validation(policy, fragment):
    game = PreferenceGame(np.stack([valid_3x3()] * 2), [0.5, 0.5, 0.0])
    with pytest.raises(ValueError) as info:
        game.policy(policy)
    assert fragment in str(info.value)
    with pytest.raises(ValueError):  # every quantity goes through the same check
        game.win_rate(policy, game.ref)


def test_policy_inside_a_partial_support_is_accepted():
    game = PreferenceGame(valid_3x3(), [0.5, 0.5, 0.0])
    pi = game.policy([0.0, 1.0, 0.0])
    assert np.array_equal(pi.probs, [[0.0, 1.0, 0.0]])
    assert np.array_equal(game.preference_against(pi), [[0.75, 0.5, 0.375]])
