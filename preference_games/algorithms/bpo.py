"""BPO — online preference optimisation in proximity to the behaviour LLM (Xu et al.), with its EMA-reference
variant and its weight-averaged ensemble.

**Update rule (BPO eq. 5, Algorithm 1).** A DAP loss ℓ ∈ {DPO, IPO, SLiC} (BPO eqs. 2–4, identical to IPO-MD eqs. 4,
8, 5) whose reference slot is the *behaviour* policy π_b that generated the pair, instead of π_ref:

    L_BPO(θ) = E_{x, y, y' ~ SG[π_b]} [ p ℓ(h) + (1 − p) ℓ(−h) ],   h = log π_θ(y)/π_b(y) − log π_θ(y')/π_b(y'),

θ_{t+1} = θ_t − lr ∇L_BPO. π_b ← π_θt (a frozen snapshot) whenever t % K = 0, K = T/F. So the pairs are always drawn
from the anchor and the anchor is the reference: ``PairSampler("anchor")`` + ``contrastive(ℓ, tau, anchor)`` +
:class:`~preference_games.algorithms.base.EveryK` (K). There is no π_ref term anywhere.

**Symbols.** Paper β (KL coefficient, 0.1) = our ``tau``; paper π_β (the *behaviour LLM*; β is a label there) = our
anchor, written π_b here to avoid the letter; paper γ = ``lr``; paper T = ``total_steps``, F = ``annotations``,
K = T/F the annotation interval; paper τ of eq. 6 (an EMA rate, *not* a KL coefficient) = ``ema_rate``; the paper's
"ensemble of 5 LoRA weights" = ``members``.

**Readings chosen where the paper is ambiguous.**

* Algorithm 1 loops ``for t := 0 to T`` (T + 1 steps); we read it as T steps. ``total_steps`` only fixes K = T/F: a
  simulation may run any number of steps, and the anchor keeps refreshing every K of them. F must divide T (the paper
  only uses such pairs: T = 600, F ∈ {1, 2, 6, 15, 600}); otherwise a ValueError rather than silent rounding.
* Algorithm 1 collects M = N/F pairs per phase and removes each batch once used, so every step sees fresh pairs drawn
  i.i.d. from π_b: exactly the anchor sampler (the exhaustive sampler gives their population loss). Labels: the paper
  annotates hard labels with a reward model; we use the framework's soft/Bernoulli labels (the same expectation).
* F = T (K = 1, "on-policy BPO", the paper's Table 1 setting and our default): at each step the reference equals the
  current policy, so h ≡ 0 and the step is a pure push along ∇(log π(y_w) − log π(y_l)) with no trust region: on a
  tabular policy the logit gradient is −c π(z)(2 p(z ≻ π) − 1) with c = 2/tau (IPO), tau (DPO), 2 tau (SLiC)
  (checked in ``tests/test_bpo_iopo.py``). F = 1 is offline DPO/IPO/SLiC with μ = π_ref = the initial policy.
* The code's length-averaging of IPO log-probs (TRL convention) has no counterpart for one-token responses.

**EMA variant (BPO eq. 6, §5.4)**, ``bpo-ema``: pairs from the current policy (on-policy, F = T), reference = the
policy whose weights are the EMA θ' ← ema_rate·θ + (1 − ema_rate)·θ', updated every step from θ'_0 = θ_0
(:class:`~preference_games.algorithms.base.EMA`). ema_rate = 0 is on-policy DPO/IPO/SLiC against the initial policy;
ema_rate = 1 is on-policy BPO. ``ema_rate`` is one float for all configurations (the EMA schedule is shared).

**Ensemble (BPO §4 end, §5.4, Fig. 6)**, ``bpo-ensemble``: "optimize an ensemble of 5 LoRA weights and merge them
linearly" — weight averaging. The paper does not say how members are trained; following the released code (see
``docs/paper_notes.md`` §4) each member is trained *independently* on its own DAP loss, on the same pairs,
against the same reference, and the reference/behaviour policy is the merged model. Tabular analogue: ``members``
deep copies of the policy whose parameters get seeded Gaussian perturbations of scale ``init_scale`` (the only
source of diversity, like the K different SFT LoRAs), *centred* so that their average is the initial policy. The
trained policy *is* the merge: its parameters are the members' mean (for :class:`TabularLogits`, π ∝ exp(mean of the
member logits), a normalised geometric mean). Pairs come from the anchor = snapshot of the merged policy, refreshed
every K = T/F steps, and h is taken against it. See :func:`ensemble_objective` and :class:`MergeEveryK` (the merge runs in the
schedule's ``after_step`` hook).

**Findings (measured on exact dynamics, uniform π_ref, tau = 0.1, plain gradient steps; asserted in
``tests/test_bpo_iopo.py`` unless marked exploratory).** BPO has no π_ref term, so nothing ties it to π_ref: the
rest points of on-policy BPO are the policies with p(z ≻ π) = ½ on their own support (the h ≡ 0 gradient above
vanishes there) — the interior one is the *unregularised* equilibrium — and no variant goes to the regularised
equilibrium at tau.

* Bradley–Terry r = (0, ½, 1), on-policy BPO(IPO), lr 0.2, 1000 steps: π(best) increases at every recorded step to
  0.9995 (unregularised gap 0.236 → 1.7e-4, KL(π‖π_ref) = 1.09 and rising): it runs to the Condorcet winner (the
  unregularised equilibrium), past the regularised equilibrium (π(best) = 0.718) and past the RLHF solution
  π_ref e^{r/tau} (π(best) = 0.9933), which is a fixed point of neither. Offline (F = 1) it stops exactly (1e-12) at
  IPO-MD eq. 7 with μ = π_ref, BR_tau(π_ref).
* RPS variant (``rps_variant(antisymmetrize=True)``, equilibrium (7, 8, 7)/22), on-policy BPO(IPO), lr 0.2: the
  equilibrium is a rest point (one step from it moves < 1e-12) but a repelling one. From uniform (unregularised
  gap 0.033) the iterates spiral out to the boundary and cycle among near-pure strategies: after 600 steps
  π = (0.004, 0.971, 0.025), gap 0.66 (per step it swings between about 0.22 and 0.79), KL(π*_tau‖π) = 1.9 from the
  regularised equilibrium π*_tau. Annotating every 50 steps (F = T/50; [derived] each phase, solved exactly, would
  be the SPPO/MWU step π ∝ π_b exp(p(y ≻ π_b)/tau)) does the same, faster: π(paper) = 0.999 after 600 steps.
  So on-policy BPO does "lose the anchor": on intransitive games it is replicator-like dynamics, cycling outward.
* EMA reference (``bpo-ema``, ema_rate 0.01, lr 0.2) on the same game: last-iterate convergence to the
  unregularised equilibrium — the gap falls monotonically from 0.033 to < 1e-5 in 1000 steps. The paper reports
  that the EMA does *not* stabilise single-LoRA training (§5.4, Fig. 7); in the exact tabular game it does (the
  lagging reference acts as a proximal term). ema_rate 0 is online IPO (→ the regularised equilibrium), ema_rate 1
  on-policy BPO (→ cycles).
* The tabular ensemble cannot stabilise BPO(IPO): IPO's gradient is affine in h and h is linear in the logits, so
  the mean of the members' gradients is the gradient at their mean — the merged policy follows the single-model
  trajectory to 1e-12 whatever the member perturbations. For DPO (nonlinear in h) the merge deviates, but
  negligibly (≤ 6e-5 in probability over 30 steps with init_scale 2, lr 5). Whatever the ensemble does for BPO's
  LoRA runs comes from the nonlinearity of the network, not from the averaging itself.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

from ..losses import PAIR_LOSSES
from ..samplers import PairSampler
from .base import EMA, Algorithm, EveryK, check_range, check_tau
from .dap import contrastive

BPO = "Xu et al. (BPO: online alignment in proximity to the behaviour LLM)"
LOSSES = tuple(sorted(PAIR_LOSSES))


def _check_loss(loss: str) -> None:
    if loss not in PAIR_LOSSES:
        raise ValueError(f"unknown DAP loss {loss!r}; choose one of {LOSSES}")


def annotation_interval(total_steps, annotations) -> int:
    """K = T/F (BPO Algorithm 1, line 1): the number of steps between two annotation phases.

    T and F must be positive integers with F dividing T; F = 1 is offline, F = T on-policy.

    >>> annotation_interval(600, 15)
    40
    """
    for name, value in (("total_steps", total_steps), ("annotations", annotations)):
        whole = isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer()
        if isinstance(value, bool) or not (whole and value >= 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    total_steps, annotations = int(total_steps), int(annotations)
    if annotations > total_steps or total_steps % annotations:
        raise ValueError(
            f"annotations (F = {annotations}) must divide total_steps (T = {total_steps}): the annotation interval "
            f"K = T/F must be a whole number of steps"
        )
    return total_steps // annotations


def behaviour(roles):
    """The reference slot of BPO: the anchor its schedule keeps (behaviour snapshot or EMA policy)."""
    return roles.anchor


def bpo(loss="ipo", tau=0.1, total_steps=600, annotations=600) -> Algorithm:
    """BPO (Xu et al., eq. 5 and Algorithm 1): the DAP ``loss`` ("dpo", "ipo" or "slic") with coefficient ``tau``
    (paper β) on pairs from the behaviour snapshot π_b, with π_b itself as the reference; π_b ← π every
    K = total_steps/annotations steps. annotations = total_steps (default) is on-policy BPO, annotations = 1 offline
    DAP against the initial policy. Fixed point: numerical (the paper gives none; see the module docstring's findings).
    """
    _check_loss(loss)
    check_tau(tau)
    interval = annotation_interval(total_steps, annotations)
    return Algorithm(
        name=f"bpo-{loss}",
        paper=f"{BPO}, eq. 5 (loss, with eq. {dict(dpo=2, ipo=3, slic=4)[loss]}) and Algorithm 1 (K = T/F)",
        params={"tau": tau, "total_steps": total_steps, "annotations": annotations},
        samplers=(PairSampler("anchor"),),
        objective=contrastive(PAIR_LOSSES[loss], tau, behaviour),
        schedule=EveryK(interval),
    )


def bpo_ema(loss="ipo", tau=0.1, ema_rate=0.01) -> Algorithm:
    """BPO with an EMA reference (Xu et al., eq. 6, §5.4): pairs from the current policy under a stop-gradient,
    reference = the policy with EMA weights θ' ← ema_rate·θ + (1 − ema_rate)·θ' (θ'_0 = θ_0), updated every step.
    ema_rate = 0 is on-policy DAP against the initial policy; ema_rate = 1 is on-policy BPO. The paper's EMA rate
    is called τ there; it is not the KL coefficient ``tau``."""
    _check_loss(loss)
    check_tau(tau)
    check_range("ema_rate", ema_rate, 0.0, 1.0)
    return Algorithm(
        name=f"bpo-ema-{loss}",
        paper=f"{BPO}, eq. 6 (EMA reference, §5.4) with eq. 5",
        params={"tau": tau, "ema_rate": ema_rate},
        samplers=(PairSampler("policy"),),
        objective=contrastive(PAIR_LOSSES[loss], tau, behaviour),
        schedule=EMA(float(ema_rate)),
    )


# ------------------------------------------------------------------------------------------------------ ensemble
def member_names(members: int) -> tuple[str, ...]:
    return tuple(f"member{k}" for k in range(members))


def ensemble_members(members: int, init_scale: float, seed: int):
    """``auxiliary`` for the ensemble: ``members`` deep copies of the policy, each parameter perturbed by seeded
    N(0, init_scale²) noise centred across members (so the members' average is exactly the policy). Works for any
    torch policy module (lookup table or network): only ``copy.deepcopy`` and ``parameters()`` are used."""

    def auxiliary(policy) -> dict:
        generator = torch.Generator().manual_seed(int(seed))
        copies = [copy.deepcopy(policy) for _ in range(members)]
        with torch.no_grad():
            for group in zip(*(member.parameters() for member in copies)):
                # drawn on the CPU generator, so a seeded ensemble is the same on every device
                noise = torch.stack([torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in group])
                noise = noise.to(group[0].device)
                noise -= noise.mean(0)  # centred: Σ_k noise_k = 0 (up to rounding)
                for parameter, offset in zip(group, noise):
                    parameter.add_(init_scale * offset)
        return dict(zip(member_names(members), copies))

    return auxiliary


@torch.no_grad()
def merge(roles, names) -> None:
    """Write the members' parameter average into the policy (the "linear" merge of BPO's LoRA ensemble)."""
    members = [roles.aux[name] for name in names]
    for target, *group in zip(roles.policy.parameters(), *(member.parameters() for member in members)):
        target.copy_(torch.stack(group).mean(0))


class MergeEveryK(EveryK):
    """:class:`EveryK` for a merged ensemble: the policy's parameters are the members' average — written at the
    start and after every update (the ``after_step`` hook) — and the behaviour snapshot is refreshed every k steps
    from the merged policy. Exact for any optimiser, stateful ones included: the policy itself is never stepped."""

    def __init__(self, k: int, names):
        super().__init__(k)
        self.names = tuple(names)

    def start(self, roles) -> None:
        merge(roles, self.names)
        super().start(roles)

    def after_step(self, step: int, roles) -> None:
        merge(roles, self.names)

    def __repr__(self) -> str:
        return f"policy = average of {len(self.names)} members; {super().__repr__()}"


def ensemble_objective(member_objective, names):
    """objective(roles, *pairs) for an independently trained, weight-averaged ensemble: member k is trained on
    ``member_objective`` with the member in the policy slot (same pairs, same reference), so its gradient is ∇L_k,
    exactly as if trained alone; the policy is not in the loss (:class:`MergeEveryK` sets it to the members' mean
    after each step). The value reported is the members' mean loss [C]; the gradient is each member's own."""

    def objective(roles, *pairs):
        members = [roles.aux[name] for name in names]
        losses = [member_objective(replace(roles, policy=member), *pairs) for member in members]  # K × [C]
        total = torch.stack(losses).sum(0)  # [C]; member k's parameters appear only in losses[k]
        return total + (total / len(members) - total).detach()

    return objective


def bpo_ensemble(loss="ipo", tau=0.1, total_steps=600, annotations=600, members=5, init_scale=0.1, seed=0) -> Algorithm:
    """BPO with BPO's stabiliser (§4 end, §5.4, Fig. 6): ``members`` independently trained copies, merged by weight
    averaging; the merged policy is the trained policy, the behaviour policy and the reference. Members start from
    the policy plus centred, seeded N(0, init_scale²) perturbations (``seed``). members = 1 (or init_scale = 0) is
    plain :func:`bpo`."""
    _check_loss(loss)
    check_tau(tau)
    interval = annotation_interval(total_steps, annotations)
    if isinstance(members, bool) or not (float(members).is_integer() and members >= 1):
        raise ValueError(f"members must be a positive integer; got {members!r}")
    check_range("init_scale", init_scale, 0.0)
    members = int(members)
    names = member_names(members)
    return Algorithm(
        name=f"bpo-ensemble-{loss}",
        paper=f"{BPO}, eq. 5 and Algorithm 1 with the merged LoRA ensemble of §5.4 (weight averaging)",
        params={"tau": tau, "total_steps": total_steps, "annotations": annotations, "members": members,
                "init_scale": init_scale, "seed": seed},
        samplers=(PairSampler("anchor"),),
        objective=ensemble_objective(contrastive(PAIR_LOSSES[loss], tau, behaviour), names),
        schedule=MergeEveryK(interval, names),
        auxiliary=ensemble_members(members, float(init_scale), int(seed)),
    )


FACTORIES = {"bpo": bpo, "bpo-ema": bpo_ema, "bpo-ensemble": bpo_ensemble}
