"""The IPO-MD main-text checks (preference_games/verify/ipo_md.py): verdicts on a small suite, the numbers they
report, that they can fail, and their helpers against independent computations."""

import numpy as np
import pytest
import torch
from verify_helpers import SUITE, run_check

from preference_games import fixed_points
from preference_games.equilibria import best_response, regularized_nash
from preference_games.games import bradley_terry, rock_paper_scissors
from preference_games.policies import TabularPolicy
from preference_games.verify import CORRECTED, FAILS, HOLDS, Suite, checks, ipo_md
from preference_games.verify.exact import Batch, random_policies
from preference_games.verify.worst import Worst, corrected_verdict, namer


@pytest.mark.parametrize("name", ["ipo-md/prop-4.1", "ipo-md/eq-3", "ipo-md/eq-7", "ipo-md/prop-4.2", "ipo-md/eq-13",
                                  "ipo-md/prop-5.2", "ipo-md/expanded-loss", "ipo-md/soft-label"])
def test_checks_that_hold(name):
    outcome = run_check(name)
    assert outcome.verdict == HOLDS, outcome
    assert outcome.worst_error <= outcome.tolerance
    assert outcome.games == len(SUITE.games("bradley-terry" if name == "ipo-md/eq-3" else None))


def test_every_check_of_the_module_is_registered_in_order():
    names = [c.name for c in checks(["ipo-md/"]) if c.run.__module__ == ipo_md.__name__]
    assert names == ["ipo-md/eq-3", "ipo-md/eq-7", "ipo-md/prop-4.1", "ipo-md/prop-4.2", "ipo-md/eq-13",
                     "ipo-md/prop-5.1", "ipo-md/prop-5.2", "ipo-md/expanded-loss", "ipo-md/soft-label"]


def test_prop_4_2_reports_the_factor_four_over_tau():
    outcome = run_check("ipo-md/prop-4.2")
    assert "τ·k ∈ [4.0000000000" in outcome.measured or "τ·k ∈ [3.9999999999" in outcome.measured


def test_prop_5_1_holds_only_after_the_correction_and_names_a_counterexample():
    outcome = run_check("ipo-md/prop-5.1")
    assert outcome.verdict == CORRECTED
    assert outcome.worst_error < 1e-9
    assert "4/τ" in outcome.correction and "c = E_{π_β}" in outcome.correction
    assert "(seed 0), β = " in outcome.counterexample  # a reproducible game and the β > 0 where it breaks
    printed = float(outcome.counterexample.split("off by ")[1].split(" ")[0])
    assert printed > 0.1  # the printed form is far off at β > 0, not a round-off matter


def test_eq_3_fails_for_a_wrong_maximiser(monkeypatch):
    def half_temperature(game, tau):  # π ∝ π_ref exp(r/(2τ)): the closed form with a wrong temperature
        rewards = fixed_points.bradley_terry_rewards(game)
        return TabularPolicy.from_logits(game.ref.log_probs + rewards / (2 * tau))

    monkeypatch.setattr(fixed_points, "kl_regularized_reward_maximiser", half_temperature)
    assert run_check("ipo-md/eq-3").verdict == FAILS


def test_eq_13_fails_when_the_fixed_point_ignores_beta(monkeypatch):
    monkeypatch.setattr(fixed_points, "ipo_md", lambda game, tau, beta: regularized_nash(game, tau).policy)
    assert run_check("ipo-md/eq-13", Suite(games=2, seed=0)).verdict == FAILS


def test_eq_7_fails_when_the_engine_solves_another_problem(monkeypatch):
    # the best response to π_ref instead of μ: eq. 7 with the wrong data policy
    monkeypatch.setattr(fixed_points, "offline_ipo", lambda game, tau, data: best_response(game, game.ref, tau))
    assert run_check("ipo-md/eq-7", Suite(games=2, seed=0)).verdict == FAILS


# ------------------------------------------------------------------------------------------------------ helpers
def test_newton_solver_of_eq_13_agrees_with_the_known_answers():
    game = Suite(games=4, seed=3).random()[0]
    taus, betas = np.array([0.1, 0.1, 0.05, 0.3]), np.array([0.0, 1.0, 0.5, 0.75])
    log_star, residual = ipo_md._solve_eq13(Batch.of([game] * 4), taus, betas)
    assert residual.max() < 1e-12
    # β = 0: the regularised equilibrium; β = 1: the best response to π_ref; otherwise the engine's route via Prop. 5.2
    np.testing.assert_allclose(np.exp(log_star[0]), regularized_nash(game, 0.1).policy.probs, atol=1e-9)
    np.testing.assert_allclose(np.exp(log_star[1]), best_response(game, game.ref, 0.1).probs, atol=1e-12)
    for k in (2, 3):
        np.testing.assert_allclose(np.exp(log_star[k]), fixed_points.ipo_md(game, taus[k], betas[k]).probs, atol=1e-9)


def test_score_gradient_matches_autograd():
    rng = np.random.default_rng(0)
    game = Suite(games=4, seed=0).random("contextual")[0]
    log_pi = random_policies(game, 3, rng)
    log_nu = random_policies(game, 3, rng)
    f = rng.normal(size=log_pi.shape)
    d0 = np.broadcast_to(game.prompt_probs, log_pi.shape[:2])
    theta = torch.tensor(log_pi, requires_grad=True)
    objective = (torch.tensor(d0)[..., None] * torch.tensor(np.exp(log_nu) * f) * torch.log_softmax(theta, -1)).sum()
    (expected,) = torch.autograd.grad(objective, [theta])
    np.testing.assert_allclose(ipo_md._score_gradient(log_pi, d0, log_nu, f), expected.numpy(), atol=1e-14)


def test_batch_mixture_matches_the_policy_method():
    """Batch.mixture against TabularPolicy.geometric_mixture, with a scalar β and with one β per entry."""
    rng = np.random.default_rng(1)
    game = Suite(games=4, seed=0).random("intransitive")[1]
    log_pi = random_policies(game, 2, rng)
    batch = Batch.of([game, game])
    for betas in (0.3, np.array([0.3, 0.8])):
        mixture = batch.mixture(log_pi, betas)
        for c, beta in enumerate(np.broadcast_to(betas, 2)):
            expected = TabularPolicy(log_pi[c]).geometric_mixture(game.ref, float(beta)).log_probs
            np.testing.assert_allclose(mixture[c], expected, atol=1e-14)


def test_bradley_terry_rewards_are_recovered_and_other_games_are_flagged():
    rewards = np.array([0.3, -1.2, 2.0, 0.0])
    r, fit = ipo_md._bradley_terry_rewards(bradley_terry(rewards))
    np.testing.assert_allclose(r[0], rewards - rewards[0], atol=1e-12)
    assert fit < 1e-15
    assert ipo_md._bradley_terry_rewards(rock_paper_scissors())[1] == np.inf  # P has 0 and 1: no finite reward
    cyclic_fit = ipo_md._bradley_terry_rewards(Suite(games=4, seed=0).random("cyclic")[0])[1]
    assert cyclic_fit > 1e-2  # a cycle is not transitive


def test_label_enumeration_by_hand_on_two_actions():
    game = bradley_terry([0.0, 1.0])  # p(1 ≻ 0) = σ(1)
    log_pi = np.log(np.array([[[0.25, 0.75]]]))
    h = np.log(0.75 / 0.5) - np.log(0.25 / 0.5)  # h(1, 0) with a uniform π_ref
    p = 1.0 / (1.0 + np.exp(-1.0))
    tau = 0.5
    def ipo(x):
        return (x - 1.0) ** 2  # 1/(2τ) = 1
    # pairs (1, 0) and (0, 1) each with weight 0.75·0.25; (y, y) pairs have h = 0 and p = ½
    expected = (2 * 0.75 * 0.25 * (p * ipo(h) + (1 - p) * ipo(-h))
                + (0.25 ** 2 + 0.75 ** 2) * ipo(0.0))
    got = ipo_md._label_enumeration(Batch.of([game]), log_pi, log_pi, [tau], "ipo")[0]
    assert got == pytest.approx(expected, rel=1e-14)


def test_code_loss_constant_is_what_the_expansion_drops():
    # one pair distribution, a policy equal to π_ref: h = 0, so ℓ_code = −log(π_ref(y)/π_ref(y')) = c + 1/(4τ)
    game = Suite(games=4, seed=0).random("intransitive")[0]
    log_ref = game.ref.log_probs[None]
    loss, _, constant = ipo_md._code_ipo_loss(Batch.of([game]), log_ref, np.array([0.2]), log_ref)
    assert loss[0] == pytest.approx(constant[0] + 0.25 / 0.2, abs=1e-12)


def test_configurations_is_the_product_in_order():
    games, taus, counts = ipo_md._configurations(["a", "b"], (0.1, 1.0), range(2))
    assert games == ["a"] * 4 + ["b"] * 4
    assert list(taus) == [0.1, 0.1, 1.0, 1.0] * 2 and list(counts) == [0, 1, 0, 1] * 2


def test_worst_tracker_keeps_the_first_largest_and_treats_nan_as_a_failure():
    worst = Worst("a", "b", "c")
    worst.update("a", np.array([1e-12, 3e-12, 3e-12]), lambda i: f"config {i}")
    worst.update("a", 3e-12, lambda i: "as large, later")
    worst.update("b", np.array([np.nan, 1.0]), lambda i: f"config {i}", mask=np.array([True, False]))
    worst.update("c", -1.0, lambda i: "negative")  # below the start 0: not recorded
    assert worst["a"] == (3e-12, "config 1")
    assert worst.overall() == (np.inf, "config 0") and worst.largest() == "b"
    assert worst.overall(["a"]) == (3e-12, "config 1")
    assert worst["c"] == (0.0, "")
    signed = Worst("x", start=-np.inf)
    signed.update("x", [-3.0, -2.0], lambda i: f"config {i}")
    assert signed["x"] == (-2.0, "config 1")


def test_namer_prints_numbers_strings_and_a_suffix():
    games = [rock_paper_scissors(), bradley_terry([0.0, 1.0])]
    where = namer(games, suffix="online", β=np.array([0.5, 1.0]), τ=[0.05, 0.2], schedule=["ours", "proof"])
    assert where(0) == "rps, β = 0.5, τ = 0.05, schedule: ours, online"
    assert where(1) == f"{games[1].name}, β = 1, τ = 0.2, schedule: proof, online"


def test_corrected_verdict():
    assert corrected_verdict(True, True) == HOLDS
    assert corrected_verdict(False, True) == CORRECTED
    assert corrected_verdict(True, False) == FAILS and corrected_verdict(False, False) == FAILS
