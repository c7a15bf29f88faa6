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
* :class:`ExactContrastiveGradient` — the population loss of a contrastive objective and its gradient w.r.t. log π
  (and w.r.t. the logits of a lookup table) in closed form: the exact dynamics' fused step.

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
from .losses import dpo, ipo, slic, soft_label

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
def _ipo_slope(p, k):
    """IPO: d/dh [p (h − 1/2τ)² + (1 − p)(−h − 1/2τ)²] = 2h + (1 − 2p)/τ (linear: one operation a step)."""
    offset = (1.0 - 2.0 * p) / k
    return lambda h: torch.add(offset, h, alpha=2.0)


def _dpo_slope(p, k):
    """DPO: d/dh [−p log σ(τh) − (1 − p) log σ(−τh)] = τ(σ(τh) − p), using σ(τh) + σ(−τh) = 1."""
    return lambda h: k * (torch.sigmoid(k * h) - p)


def _slic_slope(p, k):
    """SLiC: d/dh [p max(0, 1 − τh) + (1 − p) max(0, 1 + τh)] = τ(1 − p)·[τh > −1] − τp·[τh < 1], with the
    derivative 0 at a kink (torch's convention for relu, which the autograd path follows)."""
    up, down = k * (1.0 - p), k * p
    return lambda h: up * (k * h > -1.0) - down * (k * h < 1.0)


#: For each pair loss ℓ of :data:`~preference_games.losses.PAIR_LOSSES`, ``slope(p, τ)`` gives h ↦ s(h), the
#: derivative of the soft-label loss p ℓ(h) + (1 − p) ℓ(−h) (IPO-MD Algorithm 2) in closed form, its constants
#: computed once. tests/test_fused_step.py checks each against autograd.
SOFT_LABEL_SLOPES = {ipo: _ipo_slope, dpo: _dpo_slope, slic: _slic_slope}


def _actions_first(table: torch.Tensor) -> torch.Tensor:
    """[C, X, Y] → [Y, C, X] (a view)."""
    return table.permute(2, 0, 1)


class ExactContrastiveGradient:
    """The population loss of a contrastive objective and its exact gradient, in closed form, on an enumerable
    policy: what autograd through every pair (:meth:`~preference_games.samplers.PairSampler.exhaustive`) computes,
    in a dozen tensor operations (benchmarks/bench_dynamics.py).

    With r = log π − log a (a: the objective's anchor, π_ref by default), h(y, y') = r(y) − r(y'), the pair weight
    W(x, y, y') = d0(x) μ1(y|x) μ2(y'|x) of the sampler's two sources and the soft-label loss
    L = Σ W [p ℓ(h) + (1 − p) ℓ(−h)] with p = P(y ≻ y'|x):

        ∂L/∂log π(y) = Σ_{y'} G(y, y') − Σ_{y'} G(y', y),   G = W·s(h),   s(h) = p ℓ'(h) − (1 − p) ℓ'(−h),

    with s in closed form per loss (:data:`SOFT_LABEL_SLOPES`). The pairs' weights are held fixed: the sampler's
    sources sit under a stop-gradient (IPO-MD Algorithm 2 and eq. 11), so only log π inside h carries gradient.

    For the free logits θ of a :class:`~preference_games.models.TabularLogits` (π = softmax θ on the support) the
    chain rule through the softmax gives ∂L/∂θ = g − π Σ_y g for g = ∂L/∂log π; Σ_y g(y) is Σ_{y,y'} G(y, y') −
    Σ_{y,y'} G(y', y) = 0 identically, so ∂L/∂θ = g (:meth:`logit_gradient`): no backward pass at all.

    Built once per run (P, the pair weights and the slope's constants are prepared here). Internally every table is
    held actions first, [Y, C, X] (pairs [Y, Y', C, X]): each reduction over actions then runs along the outermost
    axis, vectorised across configurations and prompts, where a reduction over a last axis of 3 actions costs 3–5×
    as much at C = 256 (measured: log-softmax, sums).
    """

    def __init__(self, objective: Contrastive, sampler, oracle, dtype=torch.float64, device=None):
        if objective.pair_loss not in SOFT_LABEL_SLOPES:
            raise ValueError(f"no closed-form slope for the pair loss {objective.pair_loss.__name__!r}")
        self.objective, self.sampler = objective, sampler
        to = dict(dtype=dtype, device=device)
        k = objective.coefficient.to(**to)  # a scalar or [C, 1]
        self.k = k.reshape(1, 1, -1, 1) if k.dim() else k  # against [Y, Y', C, X]
        self.P = oracle.P.to(**to).permute(2, 3, 0, 1).contiguous()  # [Y, Y', G, X]
        self.slope = SOFT_LABEL_SLOPES[objective.pair_loss](self.P, self.k)
        # The pair weight d0(x)·[y, y' ∈ Supp(π_ref)]: a grid [Y, Y', G, X] only when the support is partial; with a
        # full one, W = (d0 μ1) μ2 (the same products in the same order), and d0 ≡ 1 (one prompt) is left out.
        self.weight = self.d0 = self.support = None
        if oracle.full_support:
            d0 = oracle.prompt_probs.to(**to)  # [X] or [G, X]
            self.d0 = None if bool((d0 == 1).all()) else d0.reshape(1, -1, d0.shape[-1])  # against [Y, C, X]
        else:
            weight = oracle.pair_prompt_weight.to(**to)  # [X, Y, Y] or [G, X, Y, Y]
            self.weight = (weight if weight.dim() == 4 else weight[None]).permute(2, 3, 0, 1).contiguous()
            # off Supp(π_ref) r is −inf − (−inf): set to 0 there; those pairs weigh 0 anyway
            self.support = _actions_first(oracle.support[None].to(device))  # [Y, 1, X]
        beta = sampler.beta  # a constant mixture weight is prepared once; a schedule (a callable) every step
        self.beta = None if beta is None or callable(beta) else self._per_config(beta.to(**to))
        self.keep = None if self.beta is None else 1 - self.beta  # the current policy's weight 1 − β
        self._other = None  # (the mixture's other table, β·it, whether it is finite), while that table is current

    @staticmethod
    def _per_config(value: torch.Tensor) -> torch.Tensor:
        """A float or [C] mixture weight against [Y, C, X] (as :func:`~preference_games.models.geometric_mixture`)."""
        return value.reshape(()) if value.numel() == 1 else value.reshape(1, -1, 1)

    def _source(self, roles, name: str, log_pi: torch.Tensor, finite: bool) -> torch.Tensor:
        """The log-table [Y, C, X] of a pair source. The policy and its geometric mixtures (IPO-MD §5.1) are built
        from ``log_pi`` (``finite``: it has no −inf), as :class:`~preference_games.samplers.PairSampler` builds
        them from the policy's table; every other source is a frozen table the sampler already holds."""
        if name not in ("policy", "mixture", "data-mixture"):
            return _actions_first(self.sampler.source(roles, name).log_prob_table())
        if name == "policy":
            return log_pi
        if roles.data is None and name == "data-mixture":
            self.sampler.source(roles, name)  # raises the sampler's own error
        table = (roles.ref if name == "mixture" else roles.data).log_prob_table()
        if self.beta is None:  # a schedule: β changes from step to step
            beta = self._per_config(torch.as_tensor(self.sampler.beta(roles), dtype=log_pi.dtype,
                                                    device=log_pi.device))
            mixed, finite = (1 - beta) * log_pi + beta * _actions_first(table), False
        else:
            if self._other is None or self._other[0] is not table:
                other = _actions_first(table)
                self._other = (table, self.beta * other, bool(torch.isfinite(other).all()))
            mixed = torch.addcmul(self._other[1], self.keep, log_pi)  # β·other + (1 − β)·log π
            finite = finite and self._other[2]
        if not finite:
            # as models.geometric_mixture: (1 − β)·(−inf) + β·(−inf) is NaN where a weight is 0, and −inf either
            # way means outside one of the supports, so NaN → −inf gives the intersection of the supports
            mixed = torch.nan_to_num(mixed, nan=-torch.inf)
        return torch.log_softmax(mixed, dim=0)

    def _gradient(self, roles, log_pi: torch.Tensor, finite: bool, with_loss: bool):
        """(loss [C] or None, ∂L/∂log π [Y, C, X]) at ``log_pi`` [Y, C, X] (detached; ``finite``: no −inf)."""
        sampler = self.sampler
        mu1 = self._source(roles, sampler.first, log_pi, finite).exp()  # [Y, C, X]
        mu2 = mu1 if sampler.second == sampler.first else self._source(roles, sampler.second, log_pi, finite).exp()
        r = log_pi - _actions_first(self.objective.anchor(roles).log_prob_table())  # [Y, C, X]
        if self.support is not None:
            r = torch.where(self.support, r, 0.0)
        h = r[:, None] - r[None, :]  # [Y, Y', C, X]
        if self.weight is None:
            W = (mu1 if self.d0 is None else self.d0 * mu1)[:, None] * mu2[None, :]  # d0(x) μ1(y|x) μ2(y'|x)
        else:
            W = self.weight * mu1[:, None] * mu2[None, :]
        G = W * self.slope(h)  # ∂L/∂h per pair
        loss = None
        if with_loss:
            loss = (W * soft_label(self.objective.pair_loss, h, self.P, tau=self.k)).sum((0, 1, 3))
        return loss, (G - G.transpose(0, 1)).sum(1)  # Σ_{y'} G(y, y') − Σ_{y'} G(y', y)

    def table_gradient(self, roles, log_pi: torch.Tensor, with_loss: bool = True):
        """(population loss [C] or None, ∂L/∂log π [C, X, Y]) at log-probabilities ``log_pi`` [C, X, Y], for any
        enumerable policy (the caller backpropagates it through its own parameterisation)."""
        loss, grad = self._gradient(roles, _actions_first(log_pi.detach()), False, with_loss)
        return loss, grad.permute(1, 2, 0)

    def logit_gradient(self, roles, policy, with_loss: bool = True):
        """(population loss [C] or None, ∂L/∂θ [C, X, Y]) for a
        :class:`~preference_games.models.TabularLogits` policy's logits θ: equal to ∂L/∂log π (class docstring)."""
        logits, finite = _actions_first(policy.logits.detach()), policy._full_support  # [Y, C, X]
        if not finite:  # as TabularLogits.log_prob_table: −inf outside the policy's support
            logits = torch.where(_actions_first(policy.support), logits, -torch.inf)
        loss, grad = self._gradient(roles, torch.log_softmax(logits, dim=0), finite, with_loss)
        return loss, grad.permute(1, 2, 0)


def contrastive_table_gradient(objective: Contrastive, roles, sampler, oracle, log_pi: torch.Tensor,
                               with_loss: bool = True):
    """(population loss [C] or None, ∂L/∂log π [C, X, Y]) of a contrastive objective at the policy whose
    log-probabilities are ``log_pi``: :meth:`ExactContrastiveGradient.table_gradient`, built for one call.
    tests/test_algorithms.py and tests/test_fused_step.py check it against autograd on the generic path.
    """
    exact = ExactContrastiveGradient(objective, sampler, oracle, log_pi.dtype, log_pi.device)
    return exact.table_gradient(roles, log_pi, with_loss)
