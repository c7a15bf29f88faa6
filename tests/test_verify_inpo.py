"""The INPO checks (preference_games/verify/inpo.py): verdicts on a small suite, the numbers they report, that they
can fail, and their helpers against independent computations (the engine, loops over pairs, known answers)."""

import numpy as np
import pytest
import torch
from verify_helpers import SUITE, run_check

from preference_games import bounds
from preference_games.algorithms import make
from preference_games.dynamics import simulate
from preference_games.equilibria import duality_gap, gaps_from_log_probs, regularized_nash
from preference_games.games import (
    bradley_terry,
    cyclic,
    random_intransitive,
    rps_variant,
)
from preference_games.policies import TabularPolicy, _kl
from preference_games.verify import FAILS, HOLDS, Suite, checks, inpo
from preference_games.verify.exact import Batch, population_gradient, random_policies

NAMES = ["inpo/eq-5", "inpo/eq-6", "inpo/lemma-2", "inpo/thm-3", "inpo/thm-4", "inpo/lemma-5", "inpo/prop-6",
         "inpo/nash-property", "inpo/dualgap-zero-only-at-nash"]
# games of different sizes and one contextual game, with non-uniform references
GAMES = (random_intransitive(4, seed=3), bradley_terry([0.0, 0.7, -1.2], ref=[0.5, 0.3, 0.2]),
         cyclic(5, strength=0.6), random_intransitive(3, seed=1, num_prompts=2))


@pytest.mark.parametrize("name", NAMES)
def test_every_check_holds_on_a_small_suite(name):
    outcome = run_check(name)
    assert outcome.verdict == HOLDS, outcome
    assert outcome.worst_error <= outcome.tolerance
    assert outcome.games == len(SUITE.games())


def test_every_check_of_the_module_is_registered_in_order():
    assert [c.name for c in checks(["inpo/"]) if c.run.__module__ == inpo.__name__] == NAMES


def test_identity_checks_report_round_off():
    for name in ("inpo/eq-5", "inpo/eq-6", "inpo/prop-6", "inpo/nash-property", "inpo/dualgap-zero-only-at-nash"):
        assert run_check(name).worst_error < 1e-12, name


def test_theorem_4_reports_both_readings_and_c_equal_one():
    outcome = run_check("inpo/thm-4")
    assert "(ours)" in outcome.measured and "η_0 = τ reading" in outcome.measured
    assert "(so C = 1)" in outcome.measured and 0 < outcome.worst_error < 0.1  # little of 8C²/η² is ever used


def test_theorem_3_fails_with_a_counterexample_when_the_gap_decays_too_slowly(monkeypatch):
    def slow(games, taus=inpo.TAUS, horizons=inpo.HORIZONS):
        gaps = 0.1 * np.asarray(horizons, dtype=float) ** -0.3 * np.ones((len(games), len(taus), 1))
        return gaps, (0.5, "somewhere"), 0.5

    monkeypatch.setattr(inpo, "theorem3_tuned", slow)
    outcome = run_check("inpo/thm-3")
    assert outcome.verdict == FAILS
    assert outcome.worst_error == pytest.approx(-0.3)
    assert "slope -0.300" in outcome.counterexample and SUITE.games()[0].name in outcome.counterexample


def test_eq_5_detects_a_wrong_map(monkeypatch):
    wrong = inpo._inpo_step

    def exponent_swapped(batch, log_pi, tau, eta):  # π_ref^{1−τ/η} π_t^{τ/η}: not eq. 4's argmin
        return wrong(batch, log_pi, np.asarray(eta) - np.asarray(tau), eta)

    monkeypatch.setattr(inpo, "_inpo_step", exponent_swapped)
    outcome = run_check("inpo/eq-5")
    assert outcome.verdict == FAILS and outcome.worst_error > 1e-3 and "(τ, η)" in outcome.counterexample


# ------------------------------------------------------------------------------------------------ numpy engine
def test_the_numpy_map_is_the_engine_map_on_a_padded_batch():
    """Games of 3, 4 and 5 actions in one batch (padded), constant η: 40 steps equal make("inpo") closed form."""
    games = list(GAMES[:3])
    batch = Batch.of(games, pad=True)
    tau, eta = np.array([0.1, 0.3, 1.0]), np.array([0.5, 0.3, 4.0])
    ours = [batch.log_ref] + [f for _, _, _, f in inpo._iterates(batch, tau, inpo._constant(eta), 40)]
    for c, game in enumerate(games):
        run_ = simulate(make("inpo", tau=tau[c], eta=eta[c]), game, mode="closed-form", steps=40)
        Y = game.num_actions
        np.testing.assert_allclose(np.exp(np.stack(ours)[:, c, :, :Y]), np.exp(run_.log_probs[:, 0]), atol=1e-13)
        assert np.all(np.exp(np.stack(ours)[:, c, :, Y:]) == 0)


def test_padded_batch_keeps_every_game_and_masks_the_padding():
    """Batch.of(pad=True) on games of 3, 4 and 5 actions: on each game's own actions P(y ≻ π) is the game's; the
    padding gets probability 0 and normalising is idempotent; without pad it refuses."""
    games = list(GAMES[:3])
    batch = Batch.of(games, pad=True)
    assert batch.P.shape == (3, 1, 5, 5) and batch.support.sum(axis=(1, 2)).tolist() == [4, 3, 5]
    rng = np.random.default_rng(8)
    log_pi = batch.normalise(rng.normal(size=batch.log_ref.shape))
    for c, game in enumerate(games):
        Y = game.num_actions
        assert np.all(log_pi[c, :, Y:] == -np.inf)
        expected = game.preference_against(np.exp(log_pi[c, :, :Y]))
        np.testing.assert_allclose(batch.win(log_pi)[c, :, :Y], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(batch.normalise(log_pi), log_pi, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="one number of actions"):
        Batch.of(games)


def test_gap_and_kl_are_the_engines():
    game = GAMES[3]  # two prompts
    batch = Batch.of([game])
    policies = random_policies(game, 5, np.random.default_rng(0))
    for tau in (0.05, 1.0):
        gaps = inpo._gap(batch, policies[:, None], np.array([tau]))[:, 0]
        expected = [duality_gap(game, TabularPolicy(p), tau, per_prompt=True) for p in policies]
        np.testing.assert_allclose(gaps, expected, rtol=1e-12)
    kl = inpo._kl(batch, policies[:, None], game.ref.log_probs[None, None])[:, 0]
    np.testing.assert_allclose(kl, [TabularPolicy(p).kl(game.ref) for p in policies], rtol=1e-12)


def test_regret_increment_is_the_payoff_excess_plus_a_kl():
    """⟨∇ℓ_t(π_t), π_t − π*⟩ = J(π*, π_t) − ½ + τ KL(π* ‖ π_t) = τ(KL(π_t ‖ π*) + KL(π* ‖ π_t)) per prompt (the
    identity lemma_2 judges), with J from its definition (_payoff) and the gradient from _gradient."""
    for game in GAMES:
        batch = Batch.of([game])
        for tau in (0.05, 0.5):
            star = regularized_nash(game, tau).policy.log_probs
            for p in random_policies(game, 3, np.random.default_rng(1)):
                grad = inpo._gradient(batch, p[None], np.array([tau]))[0]
                lhs = (grad * (np.exp(p) - np.exp(star))).sum(-1)
                rhs = inpo._payoff(game, star, p, tau) - 0.5 + tau * inpo._kl(batch, star[None], p[None])[0]
                np.testing.assert_allclose(lhs, rhs, atol=1e-12)
                symmetric = inpo._kl(batch, p[None], star[None])[0] + inpo._kl(batch, star[None], p[None])[0]
                np.testing.assert_allclose(lhs, tau * symmetric, atol=1e-12)


def test_assumption_a_constant_times_tau_is_at_most_one_along_inpo():
    """The module docstring's derived fact Bτ ≤ 1 (so C = 1), and our B is bounds.assumption_a_constant."""
    for game in GAMES:
        for tau, eta in ((0.02, 0.02), (0.1, 3.0), (2.0, 2.5)):
            run_ = simulate(make("inpo", tau=tau, eta=eta), game, mode="closed-form", steps=200)
            batch = Batch.of([game])
            B = max(float(inpo._log_ratio_bound(batch, lp[None])[0]) for lp in run_.log_probs[:, 0])
            assert B == pytest.approx(bounds.assumption_a_constant(run_), rel=1e-12)
            assert B * tau <= 1.0


def test_theorem_3_pieces_are_the_bounds_module():
    """The average-iterate gap and the explicit bound of constant_eta_ratios' formulas, by hand, against
    bounds.average_iterate_gap / inpo_theorem3_bound at the last step (where B over the trajectory is ours)."""
    game = GAMES[0]
    tau, eta, T = 0.2, 0.6, 60
    run_ = simulate(make("inpo", tau=tau, eta=eta), game, mode="closed-form", steps=T - 1)  # π_1 … π_T
    batch = Batch.of([game])
    average = np.exp(run_.log_probs[:, 0]).mean(0)
    gap = inpo._gap(batch, np.log(average)[None], np.array([tau]))[0] @ game.prompt_probs
    assert gap == pytest.approx(bounds.average_iterate_gap(run_)[-1], rel=1e-12)
    B = bounds.assumption_a_constant(run_)
    assert 2 * (eta * inpo._reference_spread(batch)[0] + (4 * tau**2 * B**2 + 1) * T / eta) / T == \
        pytest.approx(bounds.inpo_theorem3_bound(run_)[-1], rel=1e-12)


def test_one_step_excess_is_negative_for_a_large_contraction_and_flags_a_jump():
    game = GAMES[0]
    batch = Batch.of([game])
    tau, eta = np.array([0.2]), np.array([1.0])
    star = regularized_nash(game, 0.2).policy.log_probs[None]
    start = random_policies(game, 1, np.random.default_rng(2))
    following = inpo._inpo_step(batch, start, tau, eta)
    assert inpo.one_step_excess(batch, star, tau, eta, start, following)[0] <= 1
    # a "step" to π_ref from π* would need KL(π* ‖ π_ref) ≤ 8C²/η²: with η = 100 it does not fit
    assert inpo.one_step_excess(batch, star, tau, np.array([100.0]), star, batch.log_ref)[0] > 1


def test_fitted_rates_recover_known_exponents_and_skip_the_floor():
    horizons = inpo.HORIZONS
    T = np.asarray(horizons, dtype=float)
    gaps = np.stack([3 * T**-0.5, 0.2 * T**-1.0, np.full_like(T, 1e-20)])[:, None, :]
    rates = inpo.fitted_rates(gaps, horizons)
    np.testing.assert_allclose(rates[:2, 0], [-0.5, -1.0], atol=1e-12)
    assert np.isnan(rates[2, 0])


def test_theorem_4_schedule_is_the_engines_and_the_bounds_modules():
    """Our indexing of η_t (offset 3) is make("inpo", schedule="theorem-4"), and its bound at our step s is
    bounds.inpo_theorem4_bound (C = 1 here)."""
    assert inpo.theorem4_engine_difference(list(GAMES[:3]), steps=30) < 1e-13
    game, tau = GAMES[0], 0.3
    run_ = simulate(make("inpo", tau=tau, schedule="theorem-4"), game, mode="closed-form", steps=30)
    s = np.arange(31)
    np.testing.assert_allclose(32 / (tau**2 * (s + 2)), bounds.inpo_theorem4_bound(run_), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ eqs. 7 and 8
def _h(game, log_pi, log_pi_t, tau, eta, x, y, z):
    """h_t(π, y, z) at prompt x, from its definition (INPO §3.2)."""
    return (log_pi[x, y] - log_pi[x, z]) - tau / eta * (game.ref.log_probs[x, y] - game.ref.log_probs[x, z]) \
        - (1 - tau / eta) * (log_pi_t[x, y] - log_pi_t[x, z])


def _eq7_by_loops(game, log_pi, log_pi_t, tau, eta):
    """Eq. 7 with explicit loops over prompts and pairs."""
    total = 0.0
    for x in range(game.num_prompts):
        p_t = np.exp(log_pi_t[x])
        win = game.P[x] @ p_t
        for y in range(game.num_actions):
            for z in range(game.num_actions):
                h = _h(game, log_pi, log_pi_t, tau, eta, x, y, z)
                total += game.prompt_probs[x] * p_t[y] * p_t[z] * (h - (win[y] - win[z]) / eta) ** 2
    return total


def _eq8_by_loops(game, log_pi, log_pi_t, tau, eta):
    """Eq. 8 with explicit loops: pairs from π_t, ordered by λ_p, target 1/(2η)."""
    total = 0.0
    for x in range(game.num_prompts):
        p_t = np.exp(log_pi_t[x])
        for y in range(game.num_actions):
            for z in range(game.num_actions):
                p = game.P[x, y, z]
                forward, backward = (_h(game, log_pi, log_pi_t, tau, eta, x, a, b) for a, b in ((y, z), (z, y)))
                total += game.prompt_probs[x] * p_t[y] * p_t[z] * (p * (forward - 0.5 / eta) ** 2
                                                                   + (1 - p) * (backward - 0.5 / eta) ** 2)
    return total


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
def test_eq7_and_eq8_against_loops_over_pairs(game):
    rng = np.random.default_rng(4)
    log_pi_t, log_pi = random_policies(game, 2, rng)
    tau, eta = 0.2, 0.7
    batch = Batch.of([game])
    ours = inpo.eq7_loss(batch, torch.tensor(log_pi[None]), log_pi_t[None], np.array([tau]), np.array([eta]))
    assert float(ours[0]) == pytest.approx(_eq7_by_loops(game, log_pi, log_pi_t, tau, eta), rel=1e-12)
    engine = population_gradient(make("inpo", tau=tau, eta=eta), [game], log_pi[None], anchor=log_pi_t[None])[0]
    assert float(engine[0]) == pytest.approx(_eq8_by_loops(game, log_pi, log_pi_t, tau, eta), rel=1e-12)


def test_prop_6_constant_is_the_derived_one():
    """eq. 8 − eq. 7 = (¼ − 2 Var_{π_t} P(y ≻ π_t))/η², by loops, at two different π."""
    game, tau, eta = GAMES[3], 0.1, 0.4
    log_pi_t, *others = random_policies(game, 3, np.random.default_rng(5))
    for log_pi in others:
        difference = _eq8_by_loops(game, log_pi, log_pi_t, tau, eta) - _eq7_by_loops(game, log_pi, log_pi_t, tau, eta)
        p_t = np.exp(log_pi_t)
        win = np.einsum("xyz,xz->xy", game.P, p_t)
        variance = (p_t * win**2).sum(-1) - (p_t * win).sum(-1) ** 2
        assert difference == pytest.approx(((0.25 - 2 * variance) / eta**2) @ game.prompt_probs, rel=1e-10)


def test_lemma_5_measures_see_a_zero_residual_and_positive_curvature():
    game = rps_variant(antisymmetrize=True)
    batch = Batch.of([game, game])
    configs = [(0.1, 0.3), (0.5, 0.5)]
    log_pi_t = random_policies(game, 2, np.random.default_rng(6))
    residual, gradient, identity, lowest, second, first = inpo.lemma5_measures(batch, configs, log_pi_t,
                                                                               np.random.default_rng(7))
    assert residual.max() < 1e-12 and gradient.max() < 1e-12 and identity.max() < 1e-9
    assert lowest.min() > 0 and second.min() > 0 and first.max() < 1e-12
    # the Hessian in the logits is 4 d0 (diag π_t − π_t π_tᵀ): its eigenvalue ratio, by hand
    p = np.exp(log_pi_t[0, 0])
    eig = np.linalg.eigvalsh(4 * (np.diag(p) - np.outer(p, p)))
    assert second[0] == pytest.approx(eig[1] / eig[-1], rel=1e-8)


def test_the_gradient_norm_step_of_lemma_2s_proof_is_false_in_general():
    """‖∇ℓ_t(π_t)‖²_∞ ≤ 4τ²B² + 1 (B ≥ 1) fails where an action that beats everything has log π_t/π_ref = −B: here
    |∇| ≈ 1 + τ(B − 1) = 1.49 > √(4τ²B² + 1) = √2 (τ = 0.01, B = 50). The oscillation bound 1 + 2τB of our repair
    holds."""
    game = bradley_terry([30.0, 0.0, 0.0])  # action 0 beats the others with probability 1 − 1e-13
    batch = Batch.of([game])
    log_pi_t = np.log(np.array([[np.exp(-50.0) / 3, 0.5, 0.5]]))
    log_pi_t = log_pi_t - np.logaddexp.reduce(log_pi_t, axis=-1, keepdims=True)
    tau = 0.01
    B = float(inpo._log_ratio_bound(batch, log_pi_t[None])[0])
    grad = inpo._gradient(batch, log_pi_t[None], np.array([tau]))[0, 0]
    assert B == pytest.approx(50.0, abs=1e-9)
    assert np.abs(grad).max() ** 2 > 1.05 * (4 * tau**2 * B**2 + 1)
    assert grad.max() - grad.min() <= 1 + 2 * tau * B


def test_the_certificate_check_allows_for_the_solvers_logit_residual_and_no_more():
    """On a nearly tied game the certificate 2τKL(π‖π*) ≤ DualGap(π) is almost an equality, so the solver's π*
    (logit residual r ≈ 7e-11, within its 1e-10 stopping rule) shows through: 2τKL − DualGap reaches 1.3e-10 at
    random policies. The first-order allowance 2τ‖π − π*‖₁ r of inpo/dualgap-zero-only-at-nash covers exactly that."""
    game = Suite(66, seed=2).random("bradley-terry")[65]  # "bradley-terry#65 (seed 2)"
    star = regularized_nash(game, 1.0).policy.log_probs
    best = game.ref.log_probs + np.einsum("xyz,xz->xy", game.P, np.exp(star))
    r = np.abs(star - (best - np.logaddexp.reduce(best, axis=-1, keepdims=True))).max()
    policies = random_policies(game, 200, np.random.default_rng(0))
    excess = 2 * _kl(policies, star[None]) - gaps_from_log_probs(game, policies, 1.0)
    slack = 2 * np.abs(np.exp(policies) - np.exp(star)).sum(-1) * r
    assert 1e-11 < r <= 1e-10 and excess.max() > 1e-11  # visible above round-off
    assert (excess - slack).max() <= 1e-12
