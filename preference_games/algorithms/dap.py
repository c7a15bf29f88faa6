"""Direct alignment from preferences: DPO, IPO and SLiC, offline and online, IPO-MD and its μ-variant, the
non-contrastive Nash-MD-PG and self-play, and last-iterate (extragradient, optimistic) online IPO.

All contrastive members share one objective (:func:`contrastive`): pairs from a sampler, the anchored log-ratio
difference h, and a pair loss in the soft-label form p·ℓ(h) + (1 − p)·ℓ(−h) of IPO-MD Algorithm 2. They differ only
in where the pairs come from — which is the whole point of the IPO-MD paper.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from .. import fixed_points
import torch

from ..losses import PAIR_LOSS_DERIVATIVES, PAIR_LOSSES, log_ratio_difference, policy_gradient, soft_label
from ..samplers import PairSampler
from .base import Algorithm, check_beta, check_tau, per_config, pick, weighted

IPO_MD = "Calandriello et al. 2024 (IPO-MD paper)"


class Contrastive:
    """objective(roles, pairs) = Σ w·[p ℓ(h) + (1 − p) ℓ(−h)], h anchored at ``anchor(roles)`` (π_ref by default).

    :meth:`table_gradient` is the same population loss and its gradient in closed form, for the exact dynamics of an
    enumerable policy: with r = log π − log a and W(x, y, y') = d0(x) μ1(y|x) μ2(y'|x),

        ∂L/∂r(y) = Σ_{y'} W(y, y') s'(h(y, y')) − Σ_{y'} W(y', y) s'(h(y', y)),   s'(h) = p ℓ'(h) − (1 − p) ℓ'(−h),

    about twenty tensor operations a step instead of an autograd graph over gathered pairs — the difference between
    0.15 M and the issue's 1.2 M configuration-steps per second (benchmarks/bench_dynamics.py). The test suite checks
    it against autograd on the generic path.
    """

    def __init__(self, pair_loss, tau, anchor=lambda roles: roles.ref):
        self.pair_loss, self.coefficient, self.anchor = pair_loss, per_config(tau), anchor

    def __call__(self, roles, pairs):
        reference = self.anchor(roles)
        h = log_ratio_difference(
            roles.policy.log_prob(pairs.x, pairs.y),
            roles.policy.log_prob(pairs.x, pairs.y2),
            reference.log_prob(pairs.x, pairs.y).detach(),
            reference.log_prob(pairs.x, pairs.y2).detach(),
        )  # [C, B]
        return weighted(pairs, soft_label(self.pair_loss, h, pairs.pref, tau=self.coefficient))

    def table_gradient(self, roles, sampler, oracle, log_pi: torch.Tensor, with_loss: bool = True):
        """(population loss [C] or None, ∂L/∂log π [C, X, Y]) at the policy whose log-probabilities are ``log_pi``."""
        first, second = sampler.sources(roles)
        mu1, mu2 = first.log_prob_table().exp(), second.log_prob_table().exp()  # [C, X, Y]
        r = log_pi - self.anchor(roles).log_prob_table()  # [C, X, Y]
        if not oracle.full_support:
            r = torch.where(oracle.support, r, 0.0)  # −inf − (−inf) off the support; those pairs weigh 0 anyway
        h = r[..., :, None] - r[..., None, :]  # [C, X, Y, Y]
        W = oracle.pair_prompt_weight * mu1[..., :, None] * mu2[..., None, :]  # d0(x) μ1(y|x) μ2(y'|x)
        k = self.coefficient.reshape(-1, 1, 1, 1) if self.coefficient.dim() else self.coefficient
        p = oracle.P  # [G, X, Y, Y]
        derivative = PAIR_LOSS_DERIVATIVES[self.pair_loss]
        G = W * (p * derivative(h, k) - (1.0 - p) * derivative(-h, k))  # ∂L/∂h per pair
        loss = (W * soft_label(self.pair_loss, h, p, tau=k)).sum((-3, -2, -1)) if with_loss else None
        return loss, (G - G.transpose(-1, -2)).sum(-1)  # Σ_{y'} G(y, y') − Σ_{y'} G(y', y)


def contrastive(pair_loss, tau, anchor=lambda roles: roles.ref) -> Contrastive:
    """The contrastive DAP objective (see :class:`Contrastive`)."""
    return Contrastive(pair_loss, tau, anchor)


def _fixed_point(loss: str, tau, ipo_fixed_point, offline: bool):
    """(fixed_point, kind) of a DAP loss: IPO's is given by the caller (it depends on the data); DPO's is eq. 3 on
    Bradley–Terry games (IPO-MD Thm. G.7, offline and online alike; offline only when μ covers Supp(π_ref), else
    the minimisers form a family, Remark G.9); SLiC's is numerical."""
    if loss == "ipo":
        return ipo_fixed_point

    def dpo(game, c, data):
        if offline and not fixed_points.covers_support(game, data):
            return None
        return fixed_points.kl_regularized_reward_maximiser(game, pick(tau, c))

    if loss == "dpo":
        return (
            dpo,
            "IPO-MD eq. 3 on Bradley-Terry games (Thm. G.7); numerical otherwise",
        )
    return None, "numerical: the exact dynamics run to stationarity"


def offline(loss: str, tau=0.1) -> Algorithm:
    """Offline DPO / IPO / SLiC: pairs from the data policy μ, reference π_ref (IPO-MD eqs. 4, 5, 8).

    Offline IPO converges to eq. 7, π* ∝ π_ref exp(p(y ≻ μ)/τ). Offline DPO on a Bradley–Terry game converges to
    eq. 3 (the RLHF solution) for any μ with full support (IPO-MD Thm. G.7); elsewhere the fixed point is numerical.
    """
    check_tau(tau)
    ipo_fixed_point = (
        lambda game, c, data: fixed_points.offline_ipo(game, pick(tau, c), data),
        "IPO-MD eq. 7 (best response to μ)",
    )
    fixed, kind = _fixed_point(loss, tau, ipo_fixed_point, offline=True)
    return Algorithm(
        name=f"offline-{loss}",
        paper=f"{IPO_MD}, eq. {dict(dpo=4, slic=5, ipo=8)[loss]}; pairs from μ with λ_p labels",
        params={"tau": tau},
        tau=tau,
        samplers=(PairSampler("data"),),
        objective=contrastive(PAIR_LOSSES[loss], tau),
        fixed_point=fixed,
        fixed_point_kind=kind,
        uses_data=True,
    )


def online(loss: str, tau=0.1, update: str = "gradient") -> Algorithm:
    """Online DPO / IPO / SLiC: pairs from the current policy under a stop-gradient, soft labels (IPO-MD eq. 11,
    Algorithm 2). Online IPO's minimiser is the regularised Nash equilibrium (IPO-MD Prop. 4.1); online DPO's
    stationary points coincide with RLHF's on Bradley–Terry games (Thm. G.7), and are numerical elsewhere.

    ``update="extragradient"`` or ``"optimistic"`` keeps the objective and changes the optimiser's update rule —
    last-iterate methods for the monotone game (Korpelevich's extragradient; Popov/optimistic gradient).
    """
    check_tau(tau)
    ipo_fixed_point = (
        lambda game, c, data: fixed_points.regularized_equilibrium(game, pick(tau, c)),
        "regularised Nash equilibrium (IPO-MD eq. 12, Prop. 4.1)",
    )
    fixed, kind = _fixed_point(loss, tau, ipo_fixed_point, offline=False)
    prefix = "online" if update == "gradient" else update
    return Algorithm(
        name=f"{prefix}-{loss}",
        paper=f"{IPO_MD}, eq. 11 and Algorithm 2 (soft labels); pairs from SG[π]",
        params={"tau": tau},
        tau=tau,
        samplers=(PairSampler("policy"),),
        objective=contrastive(PAIR_LOSSES[loss], tau),
        fixed_point=fixed,
        fixed_point_kind=kind,
        update=update,
    )


def ipo_md(beta=0.5, tau=0.1) -> Algorithm:
    """IPO-MD(β): the IPO loss on pairs from SG[π^{1−β} π_ref^β] (IPO-MD §5.1, Algorithm 3). β = 0 is online IPO,
    β = 1 offline IPO with μ = π_ref. Fixed point: eq. 13, π*_β = BR_τ(NE_{τ/(1−β)}) by Prop. 5.2."""
    check_beta(beta)
    check_tau(tau)
    return Algorithm(
        name="ipo-md",
        paper=f"{IPO_MD}, §5.1 and Algorithm 3; fixed point eq. 13",
        params={"beta": beta, "tau": tau},
        tau=tau,
        samplers=(PairSampler("mixture", beta=beta),),
        objective=contrastive(PAIR_LOSSES["ipo"], tau),
        fixed_point=lambda game, c, data: fixed_points.ipo_md(game, pick(tau, c), pick(beta, c)),
        fixed_point_kind="IPO-MD eq. 13 (via Prop. 5.2)",
    )


def ipo_md_data(beta=0.5, tau=0.1) -> Algorithm:
    """IPO with pairs from SG[π^{1−β} μ^β] (IPO-MD §5.1, last paragraph): interpolates online IPO (β = 0) and
    offline IPO against μ (β = 1). Fixed point: eq. 13 with μ in place of π_ref inside the mixture, solved as the
    equilibrium at τ/(1 − β) of the game with reference π_ref^{1−β} μ^β (see :mod:`preference_games.fixed_points`)."""
    check_beta(beta)
    check_tau(tau)
    return Algorithm(
        name="ipo-md-data",
        paper=f"{IPO_MD}, §5.1 (the π^(1-β) μ^β variant)",
        params={"beta": beta, "tau": tau},
        tau=tau,
        samplers=(PairSampler("data-mixture", beta=beta),),
        objective=contrastive(PAIR_LOSSES["ipo"], tau),
        fixed_point=lambda game, c, data: fixed_points.ipo_md(game, pick(tau, c), pick(beta, c), data=data),
        fixed_point_kind="IPO-MD eq. 13 with μ in the mixture",
        uses_data=True,
    )


def nash_md_pg(beta=0.5, tau=0.1, name="nash-md-pg") -> Algorithm:
    """Nash-MD-PG(β) (IPO-MD §2.6): the non-contrastive policy gradient ∇log π(y)·(p(y ≻ y') − ½ − τ log π(y)/π_ref(y))
    with y ~ π and y' ~ π^{1−β} π_ref^β, both under a stop-gradient. Only y's probability moves. β = 0 is self-play.
    Its stationary points are eq. 13's, shared with IPO-MD(β)."""
    check_beta(beta)
    check_tau(tau)
    coefficient = per_config(tau)

    def objective(roles, pairs):
        logp_y = roles.policy.log_prob(pairs.x, pairs.y)  # [C, B]
        log_ratio = logp_y.detach() - roles.ref.log_prob(pairs.x, pairs.y)
        return weighted(pairs, policy_gradient(logp_y, pairs.pref - 0.5 - coefficient * log_ratio))

    return Algorithm(
        name=name,
        paper=f"{IPO_MD}, §2.6 (Munos et al. 2023's Nash-MD-PG); fixed point eq. 13",
        params={"beta": beta, "tau": tau},
        tau=tau,
        samplers=(PairSampler("policy", "mixture", beta=beta),),
        objective=objective,
        fixed_point=lambda game, c, data: fixed_points.ipo_md(game, pick(tau, c), pick(beta, c)),
        fixed_point_kind="IPO-MD eq. 13 (shared with IPO-MD(β))",
    )


def self_play(tau=0.1) -> Algorithm:
    """Self-play: Nash-MD-PG with β = 0 (IPO-MD §4.2), whose fixed point is the regularised equilibrium."""
    algorithm = nash_md_pg(beta=0.0, tau=tau, name="self-play")
    return replace(algorithm, params={"tau": tau}, fixed_point_kind="regularised Nash equilibrium (IPO-MD eq. 12)")


FACTORIES = {
    "offline-dpo": partial(offline, "dpo"),
    "offline-ipo": partial(offline, "ipo"),
    "offline-slic": partial(offline, "slic"),
    "online-dpo": partial(online, "dpo"),
    "online-ipo": partial(online, "ipo"),
    "online-slic": partial(online, "slic"),
    "ipo-md": ipo_md,
    "ipo-md-data": ipo_md_data,
    "nash-md-pg": nash_md_pg,
    "self-play": self_play,
    "extragradient-ipo": partial(online, "ipo", update="extragradient"),
    "optimistic-ipo": partial(online, "ipo", update="optimistic"),
}
