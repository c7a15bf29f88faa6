"""Direct alignment from preferences: DPO, IPO and SLiC, offline and online, IPO-MD and its μ-variant, the
non-contrastive Nash-MD-PG and self-play, and last-iterate (extragradient, optimistic) online IPO.

All contrastive members share one objective (:func:`contrastive`): pairs from a sampler, the anchored log-ratio
difference h, and a pair loss in the soft-label form p·ℓ(h) + (1 − p)·ℓ(−h) of IPO-MD Algorithm 2. They differ only
in where the pairs come from — which is the whole point of the IPO-MD paper.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from ..losses import PAIR_LOSSES, log_ratio_difference, policy_gradient, soft_label
from ..samplers import PairSampler
from .base import Algorithm, check_beta, check_tau, per_config, weighted

IPO_MD = "Calandriello et al. 2024 (IPO-MD paper)"


class Contrastive:
    """objective(roles, pairs) = Σ w·[p ℓ(h) + (1 − p) ℓ(−h)], h anchored at ``anchor(roles)`` (π_ref by default).

    Its population loss and gradient on an enumerable policy also have a closed form
    (:func:`preference_games.tabular.contrastive_table_gradient`), which the exact dynamics use.
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


def contrastive(pair_loss, tau, anchor=lambda roles: roles.ref) -> Contrastive:
    """The contrastive DAP objective (see :class:`Contrastive`)."""
    return Contrastive(pair_loss, tau, anchor)


def offline(loss: str, tau=0.1) -> Algorithm:
    """Offline DPO / IPO / SLiC: pairs from the data policy μ, reference π_ref (IPO-MD eqs. 4, 5, 8).

    Offline IPO converges to eq. 7, π* ∝ π_ref exp(p(y ≻ μ)/τ). Offline DPO on a Bradley–Terry game converges to
    eq. 3 (the RLHF solution) for any μ with full support (IPO-MD Thm. G.7); elsewhere the fixed point is numerical.
    """
    check_tau(tau)
    return Algorithm(
        name=f"offline-{loss}",
        paper=f"{IPO_MD}, eq. {dict(dpo=4, slic=5, ipo=8)[loss]}; pairs from μ with λ_p labels",
        params={"tau": tau},
        samplers=(PairSampler("data"),),
        objective=contrastive(PAIR_LOSSES[loss], tau),
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
    prefix = "online" if update == "gradient" else update
    return Algorithm(
        name=f"{prefix}-{loss}",
        paper=f"{IPO_MD}, eq. 11 and Algorithm 2 (soft labels); pairs from SG[π]",
        params={"tau": tau},
        samplers=(PairSampler("policy"),),
        objective=contrastive(PAIR_LOSSES[loss], tau),
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
        samplers=(PairSampler("mixture", beta=beta),),
        objective=contrastive(PAIR_LOSSES["ipo"], tau),
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
        samplers=(PairSampler("data-mixture", beta=beta),),
        objective=contrastive(PAIR_LOSSES["ipo"], tau),
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
        samplers=(PairSampler("policy", "mixture", beta=beta),),
        objective=objective,
    )


def self_play(tau=0.1) -> Algorithm:
    """Self-play: Nash-MD-PG with β = 0 (IPO-MD §4.2), whose fixed point is the regularised equilibrium."""
    algorithm = nash_md_pg(beta=0.0, tau=tau, name="self-play")
    return replace(algorithm, params={"tau": tau})


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
