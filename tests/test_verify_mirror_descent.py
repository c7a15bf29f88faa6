"""The Nash-MD and SPPO checks (preference_games/verify/mirror_descent.py): their verdicts on a small suite, and the
numpy tools they rest on against independent computations (the engine's maps, the engine's gap and KL, a generic
optimiser, hand-worked values)."""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_softmax
from verify_helpers import run_check, two_prompt_games, with_random_ref

from preference_games.algorithms import make
from preference_games.dynamics import simulate
from preference_games.equilibria import best_response, duality_gap
from preference_games.games import PreferenceGame, random_intransitive
from preference_games.policies import TabularPolicy
from preference_games.verify import CORRECTED, HOLDS
from preference_games.verify.exact import Batch
from preference_games.verify.mirror_descent import (
    munos_eta,
    nash_md_map,
    regression_minimiser,
    sppo_map,
)


# ----------------------------------------------------------------------------------------------------- verdicts
def test_nash_md_constant_step_converges_to_the_eq_13_point_not_to_the_equilibrium():
    outcome = run_check("nash-md/last-iterate")
    assert outcome.verdict == CORRECTED
    assert outcome.worst_error < 1e-10
    assert "(seed 0)" in outcome.counterexample and "KL(π*_τ ‖ π_T)" in outcome.counterexample
    printed = float(outcome.counterexample.split("KL(π*_τ ‖ π_T) = ")[1].split()[0])
    assert printed > 1e-3  # the printed claim misses by far more than the tolerance


def test_nash_md_decreasing_step_meets_the_one_over_t_bound():
    outcome = run_check("nash-md/decreasing-step")
    assert outcome.verdict == HOLDS
    assert 0 < outcome.worst_error < 1e-3
    exponent = float(outcome.measured.split("fitted exponent of KL in t max ")[1].split()[0])
    assert exponent <= -0.99  # at least the O(1/T) rate


def test_sppo_update_is_eq_60_and_minimises_eq_61():
    outcome = run_check("sppo/multiplicative-update")
    assert outcome.verdict == HOLDS and outcome.worst_error < 1e-12
    offset = float(outcome.measured.split("by up to ")[1].split()[0])
    assert 1e-6 < offset < 0.1  # the 1/(2η) approximation moves the loss-based minimiser, but not much


def test_sppo_average_iterate_obeys_the_hedge_bound():
    outcome = run_check("sppo/average-iterate")
    assert outcome.verdict == HOLDS
    assert 0.5 < outcome.worst_error <= 1.0  # the bound is nearly tight on a Bradley–Terry game


# --------------------------------------------------------------------------------------------- helper functions
def test_batch_gap_and_kl_agree_with_the_engine():
    """Batch.gap0 against equilibria.duality_gap(τ = 0) and Batch.kl against TabularPolicy.kl, on two games of one
    shape with their own references and a non-uniform prompt distribution."""
    games = two_prompt_games(1, 2)
    batch = Batch.of(games)
    rng = np.random.default_rng(3)
    pi, q = (log_softmax(rng.normal(size=(2, 2, 3)), axis=-1) for _ in range(2))
    for g, game in enumerate(games):
        assert batch.gap0(pi)[g] == pytest.approx(duality_gap(game, TabularPolicy(pi[g]), 0.0), abs=1e-15)
        kl = TabularPolicy(pi[g]).kl(TabularPolicy(q[g])) @ game.prompt_probs
        assert batch.kl(pi, q)[g] == pytest.approx(kl, abs=1e-15)


@pytest.mark.parametrize("eta", [0.2, 1.0])
def test_numpy_nash_md_map_is_the_engines(eta):
    """Constant η: 30 maps of nash_md_map equal the engine's closed-form Nash-MD (make("nash-md")) to round-off."""
    games = two_prompt_games(4, 5)
    batch = Batch.of(games)
    run = simulate(make("nash-md", tau=0.1, eta=eta), games, mode="closed-form", steps=30)
    log_pi = batch.log_ref
    for t in range(30):
        log_pi = nash_md_map(batch, log_pi, 0.1, eta)
        np.testing.assert_allclose(log_pi, run.log_probs[t + 1], rtol=0, atol=1e-13)


def test_first_decreasing_step_is_the_best_response_to_the_reference():
    """η_0 = τ: the mixture is π_ref itself, so π_1 = π_ref exp(p(y ≻ π_ref)/τ)/Z = BR_τ(π_ref)."""
    assert munos_eta(0.3, 0) == pytest.approx(0.3) and munos_eta(0.3, 2) == pytest.approx(0.6)
    game = with_random_ref(random_intransitive(4, seed=2), 6)
    batch = Batch.of([game])
    first = nash_md_map(batch, batch.log_ref, 0.3, munos_eta(0.3, 0))
    np.testing.assert_allclose(first[0], best_response(game, game.ref, 0.3).log_probs, rtol=0, atol=1e-14)


def test_sppo_map_by_hand():
    """Two actions, p(0 ≻ 1) = 0.8, π_t = (½, ½): p(y ≻ π_t) = (0.65, 0.35), so π_{t+1} ∝ (e^{0.65/η}, e^{0.35/η})."""
    game = PreferenceGame([[0.5, 0.8], [0.2, 0.5]])
    batch = Batch.of([game])
    out = np.exp(sppo_map(batch, batch.log_ref, 0.5))[0, 0]
    expected = np.exp([0.65 / 0.5, 0.35 / 0.5])
    np.testing.assert_allclose(out, expected / expected.sum(), rtol=1e-14)


def test_regression_minimiser_against_a_generic_optimiser():
    """The Lambert-W minimiser of Σ_y π_t(y)(log π(y)/π_t(y) − g(y))² over the simplex equals BFGS on the logits (g
    with Σ π_t e^g > 1, as SPPO's); when Σ π_t e^g = 1 the target is attainable, so the minimiser is π_t e^g itself;
    and Σ π_t e^g < 1 (outside what the function solves) is refused."""
    rng = np.random.default_rng(7)
    log_t = log_softmax(rng.normal(size=(1, 4)), axis=-1)
    g = rng.normal(scale=0.5, size=(1, 4))
    g += 0.2 - np.log(np.sum(np.exp(log_t + g)))  # Σ π_t e^g = e^0.2
    support = np.ones((1, 4), dtype=bool)
    ours = regression_minimiser(log_t, g, support)

    def loss(theta):
        return float(np.sum(np.exp(log_t[0]) * (log_softmax(theta) - log_t[0] - g[0]) ** 2))

    generic = minimize(loss, np.zeros(4), method="BFGS", options={"gtol": 1e-12}).x
    np.testing.assert_allclose(np.exp(ours[0]), np.exp(log_softmax(generic)), atol=1e-7)
    attainable = g - np.log(np.sum(np.exp(log_t + g)))  # shifts g so that Σ π_t e^g = 1
    np.testing.assert_allclose(regression_minimiser(log_t, attainable, support), log_t + attainable, atol=1e-12)
    with pytest.raises(ValueError, match="needs"):
        regression_minimiser(log_t, attainable - 0.1, support)
