"""Mirror-descent algorithms: exact Nash-MD, OMD/INPO, SPPO and iterative DPO (DNO-style).

Each has a closed-form map π_t ↦ π_{t+1} (a tabular fact, :mod:`preference_games.tabular`, used with
``mode="closed-form"``) and a loss whose minimiser over one outer iteration is that map (used with ``mode="exact"`` or ``"sampled"``): the anchor is a snapshot of π_t refreshed
every ``inner_steps`` gradient steps (:class:`~preference_games.algorithms.base.EveryK`) — the inner problem solved
to the extent those steps allow — or, with ``inner_steps=None``, whenever the inner problem is solved (an update
moves no probability by more than 1e-12; :class:`~preference_games.algorithms.base.UntilConverged`).

Notation: ``eta`` is the OMD regulariser, the *inverse* step size (INPO's η). The survey writes Nash-MD with a step
size α = 1/eta, and SPPO with exp(P/β): its β is our eta. INPO's mixing exponent 1 − τ/η must be ≥ 0, so η ≥ τ.

Loss-based OMD as one anchored IPO regression (INPO eq. 8): with anchor a and pairs from ν,

    E_{y,y'~ν, λ_p}[(h_a(y⁺, y⁻) − 1/(2η))²],   h_a = log π(y)/a(y) − log π(y')/a(y'),

has the minimiser π ∝ a·exp(p(y ≻ ν)/η) (INPO Lemma 5 / Prop. 6). INPO takes ν = π_t and a = π_t^{1−τ/η} π_ref^{τ/η};
Nash-MD takes ν = a = π_t^{1−τ/η} π_ref^{τ/η}. So the two differ only in whom the policy is compared against.
"""

from __future__ import annotations

import numpy as np

from ..losses import PAIR_LOSSES, squared_regression
from ..protocols import GeometricAnchor
from ..samplers import PairSampler
from .base import Algorithm, anchor_schedule, check_range, check_tau, per_config, values, weighted
from .dap import contrastive

INPO = "Zhang et al. (INPO)"
SURVEY = "the survey of LLM alignment techniques"
ETA_SCHEDULES = ("constant", "theorem-4")
NASH_MD_SCHEDULES = ("constant", "decreasing")


def _check_eta(eta, tau) -> None:
    check_range("eta", eta, 0.0, open_low=True)
    etas, taus = np.broadcast_arrays(np.asarray(values(eta)), np.asarray(values(tau)))
    for e, t in zip(etas, taus):
        if e < t:
            raise ValueError(
                f"eta must be >= tau (the mixing exponent 1 - tau/eta would be negative); got eta={e:g} < tau={t:g}"
            )


def inverse_step(eta, schedule: str, tau, iteration: int):
    """INPO's η for outer iteration t (0-based here; INPO's t = iteration + 1): constant, or Thm. 4's η_t = τ(t + 2)/2."""
    if schedule == "constant":
        return per_config(eta)
    return per_config(tau) * (iteration + 3) / 2.0


def nash_md_inverse_step(tau, eta, schedule: str, t: int):
    """Nash-MD's η for update t (the closed-form step, or the outer iteration of the loss form): constant, or Munos
    et al.'s decreasing step η_t = τ(t + 2)/2."""
    return per_config(eta) if schedule == "constant" else per_config(tau) * (t + 2) / 2.0


def inpo(tau=0.1, eta=0.5, inner_steps=100, schedule="constant") -> Algorithm:
    """INPO (Zhang et al., Algorithm 1): each outer iteration minimises eq. 8 on pairs from π_t (frozen), whose
    minimiser is the OMD step of eq. 5; the closed-form map is eq. 5 itself. ``schedule="theorem-4"`` uses
    η_t = τ(t + 2)/2 (Theorem 4; INPO's t starts at 1 with π_1 = π_ref, so the first update uses η = 1.5τ);
    ``"constant"`` uses ``eta`` throughout. Fixed point (constant η ≥ τ): the regularised Nash equilibrium."""
    check_tau(tau)
    if schedule not in ETA_SCHEDULES:
        raise ValueError(f"schedule must be one of {ETA_SCHEDULES}; got {schedule!r}")
    if schedule == "constant":  # Theorem 4's η_t ≥ 1.5τ by construction and ignores ``eta``
        _check_eta(eta, tau)

    def anchor(roles):  # π_t^{1−τ/η} π_ref^{τ/η}, unnormalised: its log Z cancels in h_t of INPO eq. 8
        eta_t = inverse_step(eta, schedule, tau, roles.iteration)
        return GeometricAnchor(roles.anchor, roles.ref, per_config(tau) / eta_t)

    def objective(roles, pairs):
        eta_t = inverse_step(eta, schedule, tau, roles.iteration)
        return contrastive(PAIR_LOSSES["ipo"], eta_t, anchor)(roles, pairs)

    return Algorithm(
        name="inpo",
        paper=f"{INPO}, Algorithm 1 and eq. 8 (loss); eq. 5 (closed form); Thm. 4 (η schedule)",
        params={"tau": tau, "eta": eta, "inner_steps": inner_steps, "schedule": schedule},
        samplers=(PairSampler("anchor"),),
        objective=objective,
        schedule=anchor_schedule(inner_steps),
    )


def nash_md(tau=0.1, eta=0.5, inner_steps=100, schedule="constant") -> Algorithm:
    """Exact Nash-MD (Munos et al. 2023; survey eqs. 58–59 read with the unregularised payoff):
    π_mix ∝ π_t^{1−τ/η} π_ref^{τ/η},  π_{t+1} ∝ π_mix exp(p(y ≻ π_mix)/η).

    The survey's eq. 59 regularises toward π_ref twice (in the mixture and in its payoff P_τ); we follow Munos et
    al.'s form. With a constant η its fixed point is IPO-MD's eq. 13 with β = τ/η — close to, but *not*, the Nash
    equilibrium (the distance shrinks with τ/η). ``schedule="decreasing"`` uses Munos et al.'s step α_t = 2/(τ(t + 2)),
    i.e. η_t = τ(t + 2)/2 for the update π_t → π_{t+1}, t = 0, 1, … (so τ/η_0 = 1: the first update is the best
    response to π_ref), and ignores ``eta``; its last iterate converges to the regularised Nash equilibrium
    (``preference-games verify --only nash-md/``). The loss form regresses on pairs from π_mix anchored at π_mix."""
    check_tau(tau)
    if schedule not in NASH_MD_SCHEDULES:
        raise ValueError(f"schedule must be one of {NASH_MD_SCHEDULES}; got {schedule!r}")
    if schedule == "constant":  # the decreasing schedule's η_t ≥ τ by construction and ignores ``eta``
        _check_eta(eta, tau)

    def eta_at(t: int):
        return nash_md_inverse_step(tau, eta, schedule, t)

    def beta_at(t: int):
        return per_config(tau) / eta_at(t)  # the mixture weight τ/η_t, [C, 1] or a scalar

    def anchor(roles):  # π_mix of the current outer iteration, unnormalised (log Z cancels in h)
        return GeometricAnchor(roles.anchor, roles.ref, beta_at(roles.iteration))

    def objective(roles, pairs):
        return contrastive(PAIR_LOSSES["ipo"], eta_at(roles.iteration), anchor)(roles, pairs)

    return Algorithm(
        name="nash-md",
        paper=f"Munos et al. 2023 via {SURVEY}, eqs. 57–59",
        params={"tau": tau, "eta": eta, "inner_steps": inner_steps, "schedule": schedule},
        samplers=(PairSampler("anchor-mixture", beta=lambda roles: beta_at(roles.iteration)),),
        objective=objective,
        schedule=anchor_schedule(inner_steps),
    )


def sppo(eta=5.0, inner_steps=100) -> Algorithm:
    """SPPO (survey eqs. 60–61): π_{t+1} ∝ π_t exp(p(y ≻ π_t)/η) — no reference policy (τ = 0); the survey's β is
    our η. Loss (eq. 61): E_{y~π_t}[(log π(y)/π_t(y) − (p(y ≻ π_t) − ½)/η)²], with p(y ≻ π_t) estimated by the label
    of a pair (y, y' ~ π_t) (unbiased for the gradient) and log Z_t replaced by ½/η (the SPPO paper's
    approximation as recalled in docs/paper_notes.md — that paper is not among our sources, so this is unverified);
    so the loss-based iterate is the closed-form one only up to that normalisation. Its iterates cycle around the
    unregularised equilibrium, which their uniform average approaches."""
    check_range("eta", eta, 0.0, open_low=True)
    inverse = per_config(eta)

    def objective(roles, pairs):
        log_ratio = roles.policy.log_prob(pairs.x, pairs.y) - roles.anchor.log_prob(pairs.x, pairs.y).detach()
        return weighted(pairs, squared_regression(log_ratio, (pairs.pref - 0.5) / inverse))

    return Algorithm(
        name="sppo",
        paper=f"Wu et al. 2024 (SPPO) via {SURVEY}, eqs. 60–61",
        params={"eta": eta, "inner_steps": inner_steps},
        samplers=(PairSampler("anchor"),),
        objective=objective,
        schedule=anchor_schedule(inner_steps),
    )


def iterative_dpo(eta=0.5, inner_steps=100) -> Algorithm:
    """Iterative / online DPO against the previous iterate (DNO-style; survey eq. 62): DPO with coefficient η on pairs
    from π_t, with π_t itself as the reference; π_t refreshes every ``inner_steps``. No π_ref term. Its fixed
    points are computed numerically (on a Bradley–Terry game it drifts toward the Condorcet winner)."""
    check_range("eta", eta, 0.0, open_low=True)
    return Algorithm(
        name="iterative-dpo",
        paper=f"Rosset et al. 2024 (DNO) via {SURVEY}, eq. 62",
        params={"eta": eta, "inner_steps": inner_steps},
        samplers=(PairSampler("anchor"),),
        objective=contrastive(PAIR_LOSSES["dpo"], eta, lambda roles: roles.anchor),
        schedule=anchor_schedule(inner_steps),
    )


FACTORIES = {"inpo": inpo, "nash-md": nash_md, "sppo": sppo, "iterative-dpo": iterative_dpo}
