"""INPO's convergence bounds, evaluated with the paper's explicit constants on a recorded trajectory.

Indexing: INPO (Zhang et al.) starts at π_1 = π_ref; our trajectories start at step 0 = π_ref. So INPO's π_T is our
recorded step T − 1, and its uniform average π̄_T = (1/T) Σ_{t=1}^T π_t averages our steps 0 … T − 1.

* Theorem 4 (time-varying η_t = τ(t + 2)/2): KL(π* ‖ π_T) ≤ 32 C² / (τ² (T + 1)), C = max(Bτ, 1), with B the
  Assumption A constant max |log π_t(y)/π_ref(y)| over the iterates and Supp(π_ref) — measured here on the trajectory
  itself (the smallest B for which the assumption holds on it).
* Theorem 3 with Lemma 2's explicit regret (its proof): DualGap(π̄_T) ≤ 2 Reg_T / T,
  Reg_T = η D + (4τ²B² + 1) T / η, D = max_π KL(π ‖ π_1) = log(1/min π_ref) for π_1 = π_ref.

>>> from preference_games.algorithms import make
>>> from preference_games.dynamics import simulate
>>> from preference_games.games import rps_variant
>>> run = simulate(make("inpo", schedule="theorem-4"), rps_variant(antisymmetrize=True), mode="closed-form", steps=200)
>>> bool(np.all(run.kl_from_fixed_point[:, 0] <= inpo_theorem4_bound(run)))   # KL(π* ‖ π_t)
True
"""

from __future__ import annotations

import numpy as np

from .algorithms.base import pick


def assumption_a_constant(run, c: int = 0) -> float:
    """B = max over the recorded iterates, prompts and Supp(π_ref) of |log π_t(y)/π_ref(y)| (INPO Assumption A)."""
    game = run.games[c]
    ratio = np.where(game.support, run.log_probs[:, c] - np.where(game.support, game.ref.log_probs, 0.0), 0.0)
    return float(np.abs(ratio).max())


def inpo_theorem4_bound(run, c: int = 0) -> np.ndarray:
    """INPO Thm. 4's bound on KL(π* ‖ π) at every recorded step: [T]."""
    tau = pick(run.facts.gap_tau, c)
    C = max(assumption_a_constant(run, c) * tau, 1.0)
    big_t = run.steps + 1.0  # our step s is INPO's iterate T = s + 1
    return 32.0 * C**2 / (tau**2 * (big_t + 1.0))


def inpo_theorem3_bound(run, c: int = 0, eta: float | None = None) -> np.ndarray:
    """INPO Thm. 3's bound (Lemma 2's constants) on the duality gap of the average of the iterates up to each
    recorded step: [T]. ``eta``: the constant OMD regulariser (default: the algorithm's ``eta``)."""
    tau = pick(run.facts.gap_tau, c)
    if run.algorithm.params.get("schedule") == "theorem-4":
        raise ValueError("Theorem 3 assumes a constant eta; this run used Theorem 4's schedule")
    eta = pick(run.algorithm.params["eta"], c) if eta is None else eta
    B = assumption_a_constant(run, c)
    D = float(-np.log(run.games[c].ref.probs[run.games[c].support].min()))
    big_t = run.steps + 1.0
    regret = eta * D + (4.0 * tau**2 * B**2 + 1.0) * big_t / eta
    return 2.0 * regret / big_t


def average_iterate_gap(run, c: int = 0) -> np.ndarray:
    """DualGap at the algorithm's τ of the running uniform average of the recorded iterates: [T]. It is INPO's
    π̄_T only when every step was recorded (``record_every=1``)."""
    from .equilibria import gaps_from_log_probs

    game = run.games[c]
    probs = np.exp(run.log_probs[:, c])  # [T, X, Y]
    average = np.cumsum(probs, axis=0) / np.arange(1, len(probs) + 1)[:, None, None]
    with np.errstate(divide="ignore"):
        log_average = np.log(average)
    return gaps_from_log_probs(game, log_average, pick(run.facts.gap_tau, c)) @ game.prompt_probs
