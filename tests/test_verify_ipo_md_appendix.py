"""The IPO-MD appendix checks (preference_games/verify/ipo_md_appendix.py: App. E, F, G): verdicts on a small suite,
the numbers they report, that they can fail, and their helpers against independent computations."""

import numpy as np
import pytest
import torch
from verify_helpers import run_check

from preference_games import fixed_points
from preference_games.algorithms import make
from preference_games.equilibria import regularized_nash
from preference_games.games import (
    PreferenceGame,
    bradley_terry,
    random_intransitive,
    rock_paper_scissors,
    rps_variant,
)
from preference_games.policies import TabularPolicy
from preference_games.verify import CORRECTED, FAILS, HOLDS, Suite, checks
from preference_games.verify import ipo_md_appendix as appendix
from preference_games.verify.exact import Batch, population_gradient, random_policies
from preference_games.verify.suite import with_unregularised_references


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


# ------------------------------------------------------------------------------------------------------ verdicts
@pytest.mark.parametrize("name", ["ipo-md/prop-E.1", "ipo-md/example-E.1", "ipo-md/lemma-G.3", "ipo-md/lemma-G.5",
                                  "ipo-md/thm-G.6", "ipo-md/remark-G.8", "ipo-md/remark-G.9", "ipo-md/app-F-figure-9"])
def test_checks_that_hold(name):
    outcome = run_check(name)
    assert outcome.verdict == HOLDS, outcome
    assert outcome.worst_error <= outcome.tolerance


def test_every_check_of_the_module_is_registered_in_order():
    names = [c.name for c in checks(["ipo-md/"]) if c.run.__module__ == appendix.__name__]
    assert names == ["ipo-md/prop-E.1", "ipo-md/example-E.1", "ipo-md/lemma-G.3", "ipo-md/lemma-G.5", "ipo-md/thm-G.6",
                     "ipo-md/thm-G.7", "ipo-md/remark-G.8", "ipo-md/remark-G.9", "ipo-md/app-F-figure-9",
                     "ipo-md/app-F-random"]


def test_prop_E_1_finds_the_condition_unnecessary():
    outcome = run_check("ipo-md/prop-E.1")
    always = float(outcome.measured.split("over ALL instances = ")[1].split(" ")[0])
    assert always < 0  # Var_c < Var_nc on every instance, eq. 14 or not


def test_example_E_1_reports_the_exact_values_inside_the_intervals():
    outcome = run_check("ipo-md/example-E.1")
    assert "E[ĝ_nc²] = 0.250" in outcome.measured and "E[ĝ_c²] = 0.12" in outcome.measured
    assert outcome.tolerance == 1.0


def test_lemma_G_5_characterises_eq_19_by_the_reference():
    outcome = run_check("ipo-md/lemma-G.5")
    assert "exactly where p(y ≻ π_ref) ≡ ½" in outcome.measured
    assert "disagree in 0" in outcome.measured


def test_thm_G_6_meets_the_three_eighths_bound():
    outcome = run_check("ipo-md/thm-G.6")
    ratio = float(outcome.measured.split("max|residual|/|p − ½| = ")[1].split(" ")[0])
    assert 0.375 <= ratio < 0.4


def test_thm_G_7_holds_for_dpo_not_for_ipo():
    outcome = run_check("ipo-md/thm-G.7")
    assert outcome.verdict == CORRECTED, outcome
    assert "offline DPO" in outcome.correction and "eq. 7" in outcome.correction
    smallest_ipo = float(outcome.measured.split("offline IPO at π_r: residual from ")[1].split(" ")[0])
    assert smallest_ipo > 1e-3  # IPO is far from stationary at π_r, not a round-off matter


def test_thm_G_7_holds_as_printed_where_rewards_tie():
    """With all rewards equal (P ≡ ½) π_r = π_ref is offline IPO's optimum eq. 7 too, so the printed statement is
    true there: the check judges it first and needs no correction."""

    class TiedSuite(Suite):
        def games(self, family=None):
            return (bradley_terry([0.0, 0.0, 0.0], ref=[0.5, 0.3, 0.2]), bradley_terry([1.0, 1.0]))

    outcome = run_check("ipo-md/thm-G.7", TiedSuite(games=0))
    assert outcome.verdict == HOLDS and not outcome.correction and outcome.worst_error <= 1e-10, outcome


def test_thm_G_7_fails_for_a_wrong_solution(monkeypatch):
    def half_temperature(game, tau):  # π ∝ π_ref exp(r/(2τ)): the closed form with a wrong temperature
        rewards = fixed_points.bradley_terry_rewards(game)
        return TabularPolicy.from_logits(game.ref.log_probs + rewards / (2 * tau))

    monkeypatch.setattr(fixed_points, "kl_regularized_reward_maximiser", half_temperature)
    outcome = run_check("ipo-md/thm-G.7")
    assert outcome.verdict == FAILS and "bradley-terry" in outcome.counterexample


def test_remark_G_9_fails_when_the_engine_names_an_offline_optimum(monkeypatch):
    monkeypatch.setattr(fixed_points, "offline_ipo", lambda game, tau, data: game.ref)
    assert run_check("ipo-md/remark-G.9").verdict == FAILS


def test_app_F_reports_figure_9():
    outcome = run_check("ipo-md/app-F-figure-9")
    assert "TV(limit, NE_τ) = [0.0, 0.0075, 0.0188, 0.0319, 0.0592]" in outcome.measured
    assert "turns per e-fold = [0.336, 0.252, 0.168, 0.084, 0.0]" in outcome.measured


def test_app_F_fails_beyond_figure_9_with_a_named_counterexample():
    outcome = run_check("ipo-md/app-F-random", Suite(games=7, seed=0))
    assert outcome.verdict == FAILS
    assert outcome.counterexample.startswith("intransitive-3#6 (seed 0): TV(π*_β, NE_τ)")
    assert "intransitive-3#4 (seed 0): turns per e-fold" in outcome.counterexample
    # The counterexample, rebuilt from its name and recomputed from the engine's eq. 13 fixed points: the limit
    # moves away from NE_τ when β goes from 0.75 to 0.5, by the reported worst error.
    game = Suite(games=7, seed=0).random("intransitive", actions=3)[6]
    nash = regularized_nash(game, 0.1).policy.probs
    tv = [0.5 * np.abs(fixed_points.ipo_md(game, 0.1, beta).probs - nash).sum() for beta in (0.75, 0.5)]
    assert tv[1] - tv[0] == pytest.approx(outcome.worst_error, abs=1e-9) and outcome.worst_error > 0.04
    assert "closed-form field vs engine" in outcome.measured


# ------------------------------------------------------------------------------------------------------- helpers
def test_eq19_residual_is_the_proofs_closed_form_for_any_two_action_policy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, alpha = rng.uniform(), rng.uniform()
        game = PreferenceGame([[0.5, p], [1 - p, 0.5]])
        q = 1 - p  # the paper's matrix has P[1, 0] = q
        bracket = 1 - q - sigmoid(0.5 - q)
        residual = appendix.eq19_residual(game, [alpha, 1 - alpha])[0]
        assert np.allclose(residual, [(1 - alpha) * bracket, -alpha * bracket], atol=1e-14)


def test_eq19_holds_exactly_when_the_reference_is_an_unregularised_equilibrium():
    game = rps_variant(antisymmetrize=True)
    star = regularized_nash(game, 0.3).policy
    assert np.abs(appendix.eq19_residual(game, star)).max() > 1e-3
    ne = fixed_points.unregularized_equilibrium(game)
    moved = game.with_ref(ne)
    assert np.abs(appendix.eq19_residual(moved, regularized_nash(moved, 0.3).policy)).max() < 1e-12


def test_eq15_matches_finite_differences_of_J():
    game = random_intransitive(4, seed=2).with_ref([0.1, 0.2, 0.3, 0.4])
    rng = np.random.default_rng(1)
    mu = rng.dirichlet(np.ones(4))[None]
    pi = rng.dirichlet(np.ones(4))
    tau = 0.7

    def J(v):  # the paper's objective with π as free positive coordinates
        r = np.log(v) - game.ref.log_probs[0]
        s = tau * (r[:, None] - r[None, :])
        P = game.P[0]
        return (mu[0][:, None] * mu[0][None, :] * (P * np.log(sigmoid(s)) + (1 - P) * np.log(sigmoid(-s)))).sum()

    eps = 1e-6
    numeric = [(J(pi + eps * e) - J(pi - eps * e)) / (2 * eps) for e in np.eye(4)]
    assert np.allclose(appendix.eq15(game, np.log(pi)[None], mu, tau)[0], numeric, atol=1e-8)


def test_kkt_residual_divides_out_the_pair_weights():
    game = rock_paper_scissors()
    grad = np.array([[0.2, -0.1, -0.1]])
    weights = np.array([[0.5, 0.25, 0.25]])
    assert appendix.kkt_residual(grad, game, weights, 1.0) == pytest.approx(0.4)
    assert appendix.kkt_residual(grad, game, np.array([[0.0, 0.5, 0.5]]), 1.0) == pytest.approx(0.2)


def test_dpo_minimiser_recovers_bradley_terry_rewards_and_refuses_rps():
    rewards = np.array([0.0, 1.3, -0.4, 2.0])
    mu = np.array([0.1, 0.2, 0.3, 0.4])
    scores = appendix._dpo_minimiser_on(bradley_terry(rewards).P[0], mu)
    assert np.allclose(scores, rewards - rewards[0], atol=1e-12)  # Thm. G.7: τ log π/π_ref = r + const
    assert appendix._dpo_minimiser_on(rock_paper_scissors().P[0][:2, :2], np.array([0.5, 0.5])) is None


def test_estimator_variances_against_a_direct_enumeration():
    game = random_intransitive(3, seed=4).with_ref([0.2, 0.5, 0.3])
    tau = 0.4
    features = np.random.default_rng(2).normal(size=(1, 3, 2))
    theta = np.array([0.3, -1.1])
    logits = features[0] @ theta
    pi = np.exp(logits - np.logaddexp.reduce(logits))
    score = features[0] - pi @ features[0]
    h = np.log(pi / game.ref.probs[0])
    samples, weights = {"nc": [], "c": [], "sp": []}, []
    for y in range(3):
        for z in range(3):
            f = game.P[0, y, z] - 0.5 - tau * (h[y] - h[z])
            samples["nc"].append(-score[y] * f)
            samples["c"].append(-0.5 * (score[y] - score[z]) * f)
            samples["sp"].append(-score[y] * (game.P[0, y, z] - 0.5 - tau * h[y]))
            weights.append(pi[y] * pi[z])
    w = np.array(weights)

    def variance(xs):
        xs = np.array(xs)
        return float(w @ (xs ** 2).sum(-1) - ((w @ xs) ** 2).sum())

    m = appendix.estimator_variances(game, np.log(pi)[None, None], features, tau)
    assert m["var_nc"][0] == pytest.approx(variance(samples["nc"]), abs=1e-14)
    assert m["var_c"][0] == pytest.approx(variance(samples["c"]), abs=1e-14)
    assert m["var_sp"][0] == pytest.approx(variance(samples["sp"]), abs=1e-14)
    assert m["var_c"][0] <= m["var_nc"][0]


def test_ipo_md_field_is_the_engines_gradient():
    games = [rps_variant(antisymmetrize=True).with_ref([0.2, 0.3, 0.5])] * 3
    betas = np.array([0.0, 0.4, 1.0])
    log_pi = random_policies(games[0], 3, np.random.default_rng(3))
    _, grad = population_gradient(make("ipo-md", tau=0.2, beta=betas), games, log_pi)
    mine = appendix.ipo_md_field(torch.as_tensor(log_pi), Batch.of(games), betas, 0.2).numpy()
    assert np.abs(grad - mine).max() < 1e-12


def test_rotation_numbers_match_finite_differences_of_the_engine():
    game = rps_variant(antisymmetrize=True)
    games, betas, tau = [game] * 3, np.array([0.0, 0.5, 1.0]), 0.1
    stars = np.stack([fixed_points.ipo_md(game, tau, beta).log_probs for beta in betas])
    turns, eigenvalues, error = appendix.rotation_numbers(games, betas, tau, stars)
    assert error < 1e-12 and turns[2] < 1e-6  # β = 1: offline IPO is a true gradient, no rotation
    for c, beta in enumerate(betas):  # the engine's gradient, differentiated by central differences
        star = stars[c, 0]
        columns = []
        for e in np.eye(3) * 1e-5:
            plus = population_gradient(make("ipo-md", tau=tau, beta=beta), [game], (star + e)[None, None])[1]
            minus = population_gradient(make("ipo-md", tau=tau, beta=beta), [game], (star - e)[None, None])[1]
            columns.append((plus - minus)[0, 0] / 2e-5)
        M = appendix.PLANE.T @ np.array(columns).T @ appendix.PLANE
        assert np.allclose(np.sort_complex(np.linalg.eigvals(M)), np.sort_complex(eigenvalues[c]), atol=1e-6)


def test_winding_counts_the_turns_of_a_spiral():
    t = np.linspace(0.0, 1.0, 2001)
    radius, angle = 0.1 * np.exp(-12 * t), 2 * np.pi * 3.25 * t  # 3¼ turns while shrinking by e^-12
    fixed = np.array([0.3, 0.3, 0.4])
    probs = fixed + (np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1) @ appendix.PLANE.T)
    turns = appendix.winding(probs[:, None], fixed[None], fraction=1e-4)  # e^-9.21: at t = 0.7675
    assert turns[0] == pytest.approx(3.25 * np.log(1e4) / 12, abs=0.01)
    assert np.isnan(appendix.winding(probs[:, None], fixed[None], fraction=1e-9)[0])


def test_random_game_families_are_reproducible():
    first = Suite(games=5, seed=3).random("intransitive", actions=3)
    again = Suite(5, 3).random("intransitive", actions=3)
    assert [g.name for g in first][:2] == ["intransitive-3#0 (seed 3)", "intransitive-3#1 (seed 3)"]
    assert all(g.num_actions == 3 for g in first)
    assert all(np.array_equal(a.P, b.P) and np.array_equal(a.ref.probs, b.ref.probs) for a, b in zip(first, again))
    cases = Suite(games=2, seed=0).two_action_games()
    assert len(cases) == 403 and any(g.P[0, 0, 1] == 0.5 for g, _ in cases)
    assert cases[-1][0].name == "2-action#1 (seed 0)" and 0.01 <= cases[-1][1] <= 10


def test_unregularised_references_are_equilibria_of_their_games():
    games = Suite(games=4, seed=0).games()
    moved = with_unregularised_references(games)
    assert moved and all(g.name.endswith(" with π_ref = NE_0") for g in moved)
    for game in moved:  # π_ref = NE_0: nothing beats the reference, so p(y ≻ π_ref) = ½ on its support
        assert np.abs(np.where(game.support, game.preference_against(game.ref) - 0.5, 0.0)).max() < 1e-9
