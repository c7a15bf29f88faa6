"""The tabular facts of every algorithm: what only an enumerable game can say about it, kept beside the recipe.

A recipe (:mod:`preference_games.algorithms`) is the same on a table, a GRU and a transformer: name, paper, params,
samplers, objective, schedule. What needs the whole probability table lives here, keyed by the algorithm's name and
read from its ``params``:

* ``gap_tau`` — the τ of the game it plays, at which duality gaps are measured (the KL coefficient τ of the
  objective for most; 0 for SPPO, iterative DPO, BPO and IOPO, which have no π_ref term);
* ``fixed_point(game, c, data)`` — where configuration c should converge on ``game`` (``data``: the data policy μ),
  a :class:`~preference_games.policies.TabularPolicy`, or None where the engine has no closed form;
  ``fixed_point_kind`` says which result that is;
* ``closed_form(roles, oracle, step) -> [C, X, Y]`` — the paper's exact map π_t ↦ π_{t+1} (OMD/INPO eq. 5,
  Nash-MD, SPPO eq. 60), for ``mode="closed-form"``;
* ``average_iterate`` — the stated fixed point is that of the uniform average of the iterates (SPPO);
* :func:`contrastive_table_gradient` — the population loss of a contrastive objective and its gradient w.r.t. log π
  in closed form, the exact dynamics' fast path.

>>> from preference_games.algorithms import make
>>> from preference_games.games import rps_variant
>>> facts(make("ipo-md", beta=0.5, tau=0.1)).fixed_point_kind
'IPO-MD eq. 13 (via Prop. 5.2)'
>>> facts(make("sppo")).gap_tau, facts(make("sppo")).average_iterate
(0.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import fixed_points
from .algorithms import Algorithm
from .algorithms.base import pick, per_config
from .algorithms.dap import Contrastive
from .algorithms.mirror_descent import inverse_step, nash_md_inverse_step
from .losses import PAIR_LOSS_DERIVATIVES, soft_label

NUMERICAL = "numerical: the exact dynamics run to stationarity"


@dataclass(frozen=True)
class TabularFacts:
    """See the module docstring."""

    gap_tau: object  # float or [C] array
    fixed_point: Callable | None = None
    fixed_point_kind: str = NUMERICAL
    closed_form: Callable | None = None
    average_iterate: bool = False


def facts(algorithm: Algorithm) -> TabularFacts:
    """The tabular facts of ``algorithm`` (by its name, from its params). An algorithm nobody registered (see
    :func:`register`) plays the game of its ``tau`` parameter (0 without one), with a numerical fixed point."""
    family = algorithm.name
    for prefix in ("bpo-ensemble-", "bpo-ema-", "bpo-", "offline-", "online-"):
        if family.startswith(prefix) and family not in _FACTS:
            family = prefix[:-1]
            break
    if family not in _FACTS:
        return TabularFacts(algorithm.params.get("tau", 0.0))
    return _FACTS[family](algorithm)


def register(name: str, tabular_facts: Callable[[Algorithm], TabularFacts]) -> None:
    """Give a new algorithm (by its ``Algorithm.name``) its tabular facts: a function of the algorithm.

    >>> register("my-ipo", lambda a: TabularFacts(a.params["tau"], **_regularised_nash(a.params["tau"])))
    >>> del _FACTS["my-ipo"]
    """
    _FACTS[name] = tabular_facts


# ============================================================================================ the closed-form maps
def _normalise(table: torch.Tensor) -> torch.Tensor:
    return table - torch.logsumexp(table, dim=-1, keepdim=True)


def omd_map(tau, eta, schedule="constant"):
    """INPO eq. 5: π_{t+1} ∝ π_ref^{τ/η} π_t^{1−τ/η} exp(p(y ≻ π_t)/η), for every configuration at once."""

    def closed_form(roles, oracle, step):
        eta_t = inverse_step(eta, schedule, tau, step)[..., None]  # [C, 1, 1] or scalar
        weight = per_config(tau)[..., None] / eta_t
        current = roles.policy.log_prob_table().detach()  # [C, X, Y]
        win = oracle.preference_against(current)  # p(y ≻ π_t)
        log_ref = roles.ref.log_prob_table()
        step = weight * log_ref + (1 - weight) * current + win / eta_t  # log of eq. 5 before normalising
        return _normalise(torch.where(torch.isfinite(current), step, -torch.inf))

    return closed_form


def nash_md_map(tau, eta, schedule="constant"):
    """Exact Nash-MD: π_mix ∝ π_t^{1−τ/η_t} π_ref^{τ/η_t}, π_{t+1} ∝ π_mix exp(p(y ≻ π_mix)/η_t)."""

    def closed_form(roles, oracle, step):
        eta_t = nash_md_inverse_step(tau, eta, schedule, step)
        mixture = roles.policy.mixture_sampler(roles.ref, per_config(tau) / eta_t).log_prob_table()  # [C, X, Y]
        return _normalise(mixture + oracle.preference_against(mixture) / eta_t[..., None])

    return closed_form


def sppo_map(eta):
    """SPPO (survey eq. 60): π_{t+1} ∝ π_t exp(p(y ≻ π_t)/η)."""
    inverse = per_config(eta)

    def closed_form(roles, oracle, step):
        current = roles.policy.log_prob_table().detach()
        return _normalise(current + oracle.preference_against(current) / inverse[..., None])

    return closed_form


# ============================================================================================= per algorithm
def _regularised_nash(tau, kind="regularised Nash equilibrium (IPO-MD eq. 12, Prop. 4.1)"):
    return dict(fixed_point=lambda game, c, data: fixed_points.regularized_equilibrium(game, pick(tau, c)),
                fixed_point_kind=kind)


def _dap(algorithm: Algorithm, offline: bool) -> TabularFacts:
    """Offline and online DPO / IPO / SLiC (and extragradient / optimistic IPO): IPO's fixed point is eq. 7 offline
    and the regularised equilibrium online; DPO's is eq. 3 on Bradley–Terry games (IPO-MD Thm. G.7, offline and
    online alike; offline only when μ covers Supp(π_ref), else the minimisers form a family, Remark G.9); SLiC's
    is numerical."""
    tau, loss = algorithm.params["tau"], algorithm.name.rsplit("-", 1)[1]
    if loss == "ipo" and offline:
        return TabularFacts(tau, lambda game, c, data: fixed_points.offline_ipo(game, pick(tau, c), data),
                            "IPO-MD eq. 7 (best response to μ)")
    if loss == "ipo":
        return TabularFacts(tau, **_regularised_nash(tau))
    if loss == "dpo":
        def dpo(game, c, data):
            if offline and not fixed_points.covers_support(game, data):
                return None
            return fixed_points.kl_regularized_reward_maximiser(game, pick(tau, c))

        return TabularFacts(tau, dpo, "IPO-MD eq. 3 on Bradley-Terry games (Thm. G.7); numerical otherwise")
    return TabularFacts(tau)


def _eq13(algorithm: Algorithm, kind: str, data: bool = False) -> TabularFacts:
    tau, beta = algorithm.params["tau"], algorithm.params["beta"]

    def fixed_point(game, c, mu):
        return fixed_points.ipo_md(game, pick(tau, c), pick(beta, c), **({"data": mu} if data else {}))

    return TabularFacts(tau, fixed_point, kind)


def _inpo(algorithm: Algorithm) -> TabularFacts:
    p = algorithm.params
    return TabularFacts(p["tau"], closed_form=omd_map(p["tau"], p["eta"], p["schedule"]),
                        **_regularised_nash(p["tau"], "regularised Nash equilibrium (INPO eq. 5 fixed point)"))


def _nash_md(algorithm: Algorithm) -> TabularFacts:
    p = algorithm.params
    tau, eta = p["tau"], p["eta"]
    closed_form = nash_md_map(tau, eta, p["schedule"])
    if p["schedule"] == "decreasing":
        return TabularFacts(tau, closed_form=closed_form, **_regularised_nash(
            tau, "regularised Nash equilibrium (last iterate, decreasing step)"))
    return TabularFacts(tau, lambda game, c, data: fixed_points.nash_md(game, pick(tau, c), pick(eta, c)),
                        "IPO-MD eq. 13 with beta = tau/eta (not the Nash equilibrium)", closed_form)


_FACTS: dict[str, Callable[[Algorithm], TabularFacts]] = {
    "offline": lambda a: _dap(a, offline=True),
    "online": lambda a: _dap(a, offline=False),
    "extragradient-ipo": lambda a: _dap(a, offline=False),
    "optimistic-ipo": lambda a: _dap(a, offline=False),
    "ipo-md": lambda a: _eq13(a, "IPO-MD eq. 13 (via Prop. 5.2)"),
    "ipo-md-data": lambda a: _eq13(a, "IPO-MD eq. 13 with μ in the mixture", data=True),
    "nash-md-pg": lambda a: _eq13(a, "IPO-MD eq. 13 (shared with IPO-MD(β))"),
    "self-play": lambda a: TabularFacts(a.params["tau"], **_regularised_nash(
        a.params["tau"], "regularised Nash equilibrium (IPO-MD eq. 12)")),
    "rlhf": lambda a: TabularFacts(
        a.params["tau"], lambda game, c, data: fixed_points.kl_regularized_reward_maximiser(
            game, pick(a.params["tau"], c)), "IPO-MD eq. 3 on Bradley-Terry games; numerical otherwise"),
    "inpo": _inpo,
    "nash-md": _nash_md,
    "sppo": lambda a: TabularFacts(
        0.0, lambda game, c, data: fixed_points.unregularized_equilibrium(game),
        "unregularised Nash equilibrium (uniform average of the iterates)", sppo_map(a.params["eta"]),
        average_iterate=True),
    # no π_ref term: these play the unregularised game, so their gaps are measured at τ = 0
    "iterative-dpo": lambda a: TabularFacts(0.0),
    "bpo": lambda a: TabularFacts(0.0),
    "bpo-ema": lambda a: TabularFacts(0.0),
    "bpo-ensemble": lambda a: TabularFacts(0.0),
    "iopo": lambda a: TabularFacts(0.0),
}


# ==================================================================================== the closed-form gradient
def contrastive_table_gradient(objective: Contrastive, roles, sampler, oracle, log_pi: torch.Tensor,
                               with_loss: bool = True):
    """(population loss [C] or None, ∂L/∂log π [C, X, Y]) of a contrastive objective at the policy whose
    log-probabilities are ``log_pi``: with r = log π − log a and W(x, y, y') = d0(x) μ1(y|x) μ2(y'|x),

        ∂L/∂r(y) = Σ_{y'} W(y, y') s'(h(y, y')) − Σ_{y'} W(y', y) s'(h(y', y)),   s'(h) = p ℓ'(h) − (1 − p) ℓ'(−h),

    about twenty tensor operations a step instead of an autograd graph over gathered pairs (benchmarks/
    bench_dynamics.py); tests/test_algorithms.py checks it against autograd on the generic path.
    """
    first, second = sampler.sources(roles)
    mu1, mu2 = first.log_prob_table().exp(), second.log_prob_table().exp()  # [C, X, Y]
    r = log_pi - objective.anchor(roles).log_prob_table()  # [C, X, Y]
    if not oracle.full_support:
        r = torch.where(oracle.support, r, 0.0)  # −inf − (−inf) off the support; those pairs weigh 0 anyway
    h = r[..., :, None] - r[..., None, :]  # [C, X, Y, Y]
    W = oracle.pair_prompt_weight * mu1[..., :, None] * mu2[..., None, :]  # d0(x) μ1(y|x) μ2(y'|x)
    k = objective.coefficient.reshape(-1, 1, 1, 1) if objective.coefficient.dim() else objective.coefficient
    p = oracle.P  # [G, X, Y, Y]
    derivative = PAIR_LOSS_DERIVATIVES[objective.pair_loss]
    G = W * (p * derivative(h, k) - (1.0 - p) * derivative(-h, k))  # ∂L/∂h per pair
    loss = (W * soft_label(objective.pair_loss, h, p, tau=k)).sum((-3, -2, -1)) if with_loss else None
    return loss, (G - G.transpose(-1, -2)).sum(-1)  # Σ_{y'} G(y, y') − Σ_{y'} G(y', y)
