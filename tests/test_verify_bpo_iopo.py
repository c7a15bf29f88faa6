"""The BPO and IOPO checks (preference_games/verify/bpo_iopo.py): their verdicts on a small suite, and the numpy
gradients and runs they rest on against the engine (autograd population gradients, simulate, the engine's Q)."""

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from verify_helpers import random_log_probs, run_check, two_prompt_games

from preference_games.algorithms import make
from preference_games.algorithms.iopo import clipped_weight
from preference_games.algorithms.iopo import q_value as engine_q_value
from preference_games.dynamics import simulate
from preference_games.models import FrozenPolicy
from preference_games.samplers import PairSampler, Roles, TabularOracle
from preference_games.verify import FAILS, HOLDS
from preference_games.verify.bpo_iopo import (
    clipped,
    increments,
    iopo_run,
    ipo_gradient,
    last_turn,
    on_policy_bpo,
    q_value,
)
from preference_games.verify.exact import Batch, population_gradient


# ----------------------------------------------------------------------------------------------------- verdicts
def test_bpo_loses_the_anchor():
    outcome = run_check("bpo/fixed-point")
    assert outcome.verdict == HOLDS and outcome.worst_error < 1e-12
    assert "(0 exceptions" in outcome.measured


def test_iopo_theorem_1_fails_and_q_leaves_the_unit_interval():
    outcome = run_check("iopo/thm-1")
    assert outcome.verdict == FAILS
    assert "Q diverges" in outcome.counterexample and "(seed 0)" in outcome.counterexample
    top = float(outcome.measured.split("(max ")[1].split(",")[0])
    assert top > 1.0


def test_iopo_theorem_2_fails():
    outcome = run_check("iopo/thm-2")
    assert outcome.verdict == FAILS and outcome.worst_error > 1.0
    assert "> 1" in outcome.counterexample


def test_iopo_theorem_3_premise_fails():
    outcome = run_check("iopo/thm-3")
    assert outcome.verdict == FAILS
    assert outcome.worst_error == pytest.approx(1.3)  # the clip 1 + ε binds: r > 1, against the proof's r < 1


# --------------------------------------------------------------------------------------------- helper functions
def test_ipo_gradient_is_the_engines_autograd_gradient():
    """ipo_gradient against population_gradient (autograd through the engine's loss) for BPO (pairs from and h
    against the anchor) and BPO-EMA (pairs from the policy, h against the EMA anchor), random policies."""
    games = two_prompt_games(1, 2)
    batch = Batch.of(games)
    pi = np.stack([random_log_probs(3), random_log_probs(4)])
    anchor = np.stack([random_log_probs(5), random_log_probs(6)])
    for name, params, source in (("bpo", {"total_steps": 1, "annotations": 1}, anchor), ("bpo-ema", {}, pi)):
        _, grad = population_gradient(make(name, tau=0.3, **params), games, pi, anchor=anchor)
        np.testing.assert_allclose(ipo_gradient(batch, pi, anchor, source, 0.3), grad, rtol=0, atol=1e-13)


def test_on_policy_bpo_is_the_engines_run():
    games = two_prompt_games(1, 2)
    path = on_policy_bpo(Batch.of(games), 30, 0.2, 0.1)
    run = simulate(make("bpo", tau=0.1, total_steps=30, annotations=30), games, steps=30, lr=0.2)
    np.testing.assert_allclose(path, run.log_probs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 3])
def test_iopo_run_is_the_engines_run(steps):
    """Phases of 1 and 3 steps (the weight frozen at the phase start): the protagonist's path equals simulate's."""
    games = two_prompt_games(1, 2)
    run = iopo_run(Batch.of(games), 4, 2.0, steps)
    engine = simulate(make("iopo", protagonist_steps=steps, adversary_steps=steps), games, steps=8 * steps, lr=2.0)
    np.testing.assert_allclose(run["path"], engine.log_probs, rtol=0, atol=1e-13)
    assert run["Q"][0] == pytest.approx(0.5, abs=1e-15)  # equal agents: σ(0)/1
    assert np.all(run["r"][0] == 1.0)


def test_iopo_weight_recomputed_every_step_differs_from_the_frozen_one():
    games = two_prompt_games(1, 2)
    frozen, recomputed = (iopo_run(Batch.of(games), 4, 2.0, 3, frozen) for frozen in (True, False))
    assert np.abs(frozen["path"] - recomputed["path"]).max() > 1e-6


def test_q_value_and_clip_are_the_engines():
    games = two_prompt_games(1, 2)
    batch = Batch.of(games)
    pi = np.stack([random_log_probs(7), random_log_probs(8)]) * 3.0
    pi = log_softmax(pi, axis=-1)  # sharp enough that some weights clip at 1.3 and some fall below 1
    nu = np.stack([random_log_probs(9), random_log_probs(10)])
    mu = np.exp(batch.log_ref)
    pairs = batch.d0[..., None, None] * mu[..., :, None] * mu[..., None, :]
    oracle = TabularOracle(games)
    exhaustive = PairSampler("data").exhaustive(Roles(policy=oracle.ref, ref=oracle.ref, data=oracle.ref), oracle)
    expected = engine_q_value(FrozenPolicy(pi), FrozenPolicy(nu), exhaustive, 0.1, 0.3).numpy()
    np.testing.assert_allclose(q_value(batch, pairs, pi, nu, 0.1, 0.3), expected, rtol=1e-13)
    ratios = np.array([0.0, np.log(0.5), np.log(2.0), 1e4, -1e4])
    np.testing.assert_allclose(clipped(ratios, 0.3), clipped_weight(torch.tensor(ratios), 0.3).numpy(), rtol=0)


def test_increments_and_last_turn():
    Q = np.array([[0.5], [0.6], [0.6 + 1e-14], [0.7], [0.65], [0.65], [0.8]])
    np.testing.assert_allclose(increments(Q)[:, 0], [0.1, 0.0, 0.1, -0.05, 0.0, 0.15], atol=1e-12)
    assert last_turn(np.array([0.1, 0.0, 0.1, -0.05, 0.0, 0.15]), 10) == 15  # + → − at index 3, − → + at 5
    assert last_turn(np.array([0.1, 0.0, 0.2]), 0) == -1
