"""IOPO — indirect online preference optimisation (Wang et al.): a protagonist and an adversary, each the other's
KL anchor, trained in alternating phases on a fixed data set with a clipped importance weight.

**Update rule (our reconstruction of eqs. 11–14 and Algorithm 1).** Pairs come from the fixed data policy μ (the
offline data set D; ``PairSampler("data")``, ``uses_data=True``) — nobody generates. Write ν for the adversary and
π for the protagonist (the trained policy), and for an agent a trained against a frozen opponent o

    ℓ_a(y_w, y_l) = −r · log σ(tau · h),   h = log a(y_w)/o(y_w) − log a(y_l)/o(y_l),
    r = min(a_t(y_l)/o(y_l), 1 + ε)   (stop-gradient; r := 1 where the ratio under/overflows to 0 or ∞),

with a_t the agent at the start of the current phase. Soft labels (exhaustive pairs carry the exact p):
L_a = E_{y,y'~μ}[p ℓ_a(y, y') + (1 − p) ℓ_a(y', y)]. Algorithm 1 alternates: ``protagonist_steps`` (N_μ) gradient
steps on L_π with the adversary frozen (ENV), then ``adversary_steps`` (N_ν) steps on the adversary's loss with
the protagonist frozen, and repeats; the protagonist is returned. The adversary's loss is the same formula with the
roles swapped *and the labels swapped* (it prefers y_l): ℓ_ν(y_w, y_l) = ℓ_{a=ν, o=π}(y_l, y_w), so its weight is
min(ν_t(y_w)/π(y_w), 1 + ε).

**Symbols.** Paper β (KL coefficient toward the *other agent*, not π_ref; 0.1) = our ``tau``; paper π_μ (protagonist)
= the trained policy (our μ is the *data* policy — the paper's data set D); paper π_ν (adversary) =
``aux["adversary"]``; paper ε (0.3) = ``epsilon``; paper r^t(θ) (an importance weight, not a reward) = r; N_μ, N_ν = ``protagonist_steps``,
``adversary_steps``; paper Q (eq. 13) = :func:`q_value`.

**Ambiguities (``docs/paper_notes.md`` §5) and the readings chosen.**

* Eq. 11 writes r = π_μ(y_l)/π_ν(y_l) "= π_ν(y_w)/π_ν(y_l)" via a claimed identity π_μ(y_l) ≡ π_ν(y_w) that is false:
  we use r = π_μ(y_l)/π_ν(y_l), the ratio on the rejected response, with eq. 11's fallback r = 1 at 0 or ∞.
* Eq. 12, min(r, clip(r, 1 − ε, 1 + ε)) = min(r, 1 + ε): only the upper bound binds; implemented literally as
  min(r, 1 + ε). (The PPO-style reading max(r, 1 − ε) for a negative advantage is not used.)
* r is a stop-gradient, "constant in N_μ iteration" (Theorem 2): it is computed from the *phase-start* snapshot of the
  trained agent and its frozen opponent (``roles.anchor`` holds that snapshot); for N_μ = N_ν = 1 this is the same as
  recomputing it every step.
* Eq. 14 prints y_w in both log-ratios (z ≡ 0); we read y_l in the second, as in the gradient, eq. 15. Eq. 15's
  factor log σ(z) should be σ(−z), the derivative of eq. 14: we minimise eq. 14 and let autograd differentiate.
* Adversary: reading (B) of the notes — swapped labels, positive clipped weight — because the literal r_ν = −r_μ
  gives a loss unbounded below. Algorithm 1 line 10 (which updates θ_μ in the ν-loop) is read as updating θ_ν.
* Both agents start from the same SFT model (paper L165): the adversary is ``copy.deepcopy(policy)``.

**Phases in the framework.** :class:`Alternating` (a Schedule) counts *phases* in ``roles.iteration``: phase
2i is the protagonist's phase of Algorithm 1's iteration i + 1, phase 2i + 1 the adversary's. At each phase start it
stores the snapshot of the agent about to be trained in ``roles.anchor`` (for r). The objective reads only ``roles``:
the phase's parity says which agent is trained; the other agent enters only detached, so it gets exactly zero
gradient (and the loss returned is the active agent's).

**Findings (exact dynamics, τ = 0.1, ε = 0.3, N_μ = N_ν = 1, μ = π_ref = uniform, plain gradient steps; asserted in
``tests/test_bpo_iopo.py`` unless marked exploratory).**

* The two agents do not compete. Both losses depend on the agents only through d = log π − log ν: the protagonist
  wants σ(τ h_d(y, y')) = p, and the adversary, with reversed labels and h_{−d}, wants σ(−τ h_d) = 1 − p — the *same*
  condition [derived]. Without the weights r both would agree on any pair with that log-ratio; the r's differ for
  the two agents (π_start(y_l)/ν(y_l) versus ν_start(y_w)/π(y_w)), so the common part of the logits drifts until
  the two conditions become compatible on a face of the simplex. On games with a label-reversing symmetry (both
  below) the adversary ends as the protagonist's mirror image.
* Bradley–Terry r = (0, ½, 1): the protagonist converges to ≈ (0.344, 0, 0.656) — a third of its mass on the
  *worst* response and none on the middle one — and the adversary to (0.656, 0, 0.344); unregularised gap 0.159.
  Same limit at lr 10 (600 steps, asserted) and lr 0.5 (20000 steps: (0.3449, 0.0000, 0.6551), exploratory), and
  with N_μ = N_ν = 5 (exploratory). It is neither the Condorcet winner, nor the regularised equilibrium
  (0.069, 0.213, 0.718), nor the RLHF solution, nor BR_τ(μ).
* RPS variant: both agents pile onto scissors (π(scissors) > 0.95 at lr 20 after 400 steps; 0.955 and rising at lr 0.5
  after 20000 steps, exploratory) — the action whose win rate against μ is exactly ½ — as mirror images
  (rock ↔ paper); the unregularised gap grows from 0.033 toward 0.7, pure scissors'.
* Theorem 1 ("Q is monotonic and converges"), Q = the data mean of eq. 13 after each iteration: Q converges in
  the Bradley–Terry run (to ≈ 0.667) but is *not* monotone: it rises from ½ and then decreases (BT at lr 0.5: 1436
  increases and 8564 decreases over 10000 iterations, exploratory); on RPS (lr 20) it peaks at 0.5015 and is still
  falling (0.4985) after 200 iterations. With large steps and long phases (BT, lr 10, N_μ = N_ν = 50; exploratory)
  Q does not settle (from 0.45 to 254 within 30 iterations) — and Q > 1 contradicts
  the boundedness Q ∈ [0, 1] the proof relies on (eq. 13 is σ(z)/r, and r < 1 is allowed).
* Theorem 2 (ΔQ_t/ΔQ_{t+1} ≤ 1, i.e. non-shrinking increments): violated wherever Q converges monotonically for a
  while, since its increments then shrink (BT run: asserted).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F

from ..losses import log_ratio_difference
from ..samplers import PairSampler
from .base import Algorithm, Schedule, check_range, check_tau, per_config, weighted

IOPO = "Wang et al. (IOPO: indirect online preference optimisation)"
ADVERSARY = "adversary"


# ------------------------------------------------------------------------------------------------ pure losses
def clipped_weight(log_ratio: torch.Tensor, epsilon) -> torch.Tensor:
    """IOPO eqs. 11–12: r = min(exp(log_ratio), 1 + ε), with r = 1 where exp under/overflows to 0 or ∞; detached.

    >>> clipped_weight(torch.tensor([0.0, -1.0, 2.0, 800.0, -800.0]), 0.3)
    tensor([1.0000, 0.3679, 1.3000, 1.0000, 1.0000])
    """
    ratio = torch.exp(log_ratio.detach())
    degenerate = (ratio == 0) | torch.isinf(ratio)
    cap = 1.0 + torch.as_tensor(epsilon, dtype=ratio.dtype)
    return torch.where(degenerate, torch.ones_like(ratio), torch.minimum(ratio, cap))


def iopo(h, weight, tau) -> torch.Tensor:
    """−r·log σ(τ h) for the ordered pair (y_w, y_l) (IOPO eq. 14, reconstructed); ``weight`` r detached."""
    return -weight.detach() * F.logsigmoid(tau * h)


# ------------------------------------------------------------------------------------------------ the phases
class Alternating(Schedule):
    """IOPO Algorithm 1's phases: ``protagonist_steps`` steps training the policy, then ``adversary_steps`` steps
    training ``aux["adversary"]``, repeated. ``roles.iteration`` counts phases (even: protagonist, odd: adversary);
    ``roles.anchor`` is the phase-start snapshot of the agent being trained (its importance weights are frozen)."""

    def __init__(self, protagonist_steps: int, adversary_steps: int):
        for name, value in (("protagonist_steps", protagonist_steps), ("adversary_steps", adversary_steps)):
            if isinstance(value, bool) or not (float(value).is_integer() and value >= 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        self.protagonist_steps, self.adversary_steps = int(protagonist_steps), int(adversary_steps)
        self.period = self.protagonist_steps + self.adversary_steps

    def start(self, roles) -> None:
        roles.iteration = -1
        roles.anchor = None

    def before_step(self, step: int, roles) -> None:
        position = step % (self.protagonist_steps + self.adversary_steps)
        if position in (0, self.protagonist_steps):
            roles.iteration += 1
            roles.anchor = active_agent(roles).snapshot()

    def __repr__(self) -> str:
        return f"alternate {self.protagonist_steps} protagonist / {self.adversary_steps} adversary steps"


def protagonist_phase(roles) -> bool:
    if roles.iteration < 0 or roles.anchor is None:
        raise ValueError("IOPO's objective needs its Alternating schedule to have started a phase")
    return roles.iteration % 2 == 0


def active_agent(roles):
    """The agent trained in the current phase (the policy in even phases, the adversary in odd ones)."""
    return roles.policy if roles.iteration % 2 == 0 else roles.aux[ADVERSARY]


def anchored_loss(agent, opponent, start, pairs, tau, epsilon) -> torch.Tensor:
    """Σ w·[p ℓ(y, y') + (1 − p) ℓ(y', y)] with ℓ(y_w, y_l) = −r(y_l) log σ(τ h), h against ``opponent`` (detached),
    r(y_l) = clipped start(y_l)/opponent(y_l): [C]."""
    opponent_y = opponent.log_prob(pairs.x, pairs.y).detach()  # [C, B]
    opponent_y2 = opponent.log_prob(pairs.x, pairs.y2).detach()
    agent_y, agent_y2 = agent.log_prob(pairs.x, pairs.y), agent.log_prob(pairs.x, pairs.y2)
    h = log_ratio_difference(agent_y, agent_y2, opponent_y, opponent_y2)  # [C, B]
    weight_y = clipped_weight(start.log_prob(pairs.x, pairs.y) - opponent_y, epsilon)  # r when y is the loser
    weight_y2 = clipped_weight(start.log_prob(pairs.x, pairs.y2) - opponent_y2, epsilon)
    per_pair = pairs.pref * iopo(h, weight_y2, tau) + (1.0 - pairs.pref) * iopo(-h, weight_y, tau)
    return weighted(pairs, per_pair)


def q_value(protagonist, adversary, pairs, tau, epsilon) -> torch.Tensor:
    """Theorem 1's Q_μ: the mean over the data of eq. 13, Q(y_w ≻ y_l) = σ(τ h)/r, h and r of the protagonist
    against the adversary (r from the two given policies), soft-labelled: Σ w [p Q(y ≻ y') + (1 − p) Q(y' ≻ y)]: [C].
    Not a probability: it exceeds 1 where r < 1."""
    with torch.no_grad():
        coefficient = per_config(tau)
        a_y, a_y2 = adversary.log_prob(pairs.x, pairs.y), adversary.log_prob(pairs.x, pairs.y2)
        p_y, p_y2 = protagonist.log_prob(pairs.x, pairs.y), protagonist.log_prob(pairs.x, pairs.y2)
        h = log_ratio_difference(p_y, p_y2, a_y, a_y2)
        r_y, r_y2 = clipped_weight(p_y - a_y, epsilon), clipped_weight(p_y2 - a_y2, epsilon)
        win, lose = torch.sigmoid(coefficient * h), torch.sigmoid(-coefficient * h)  # eq. 13 numerators, [C, B]
        q = pairs.pref * win / r_y2 + (1 - pairs.pref) * lose / r_y
        return weighted(pairs, q)


def relabelled(pairs):
    """The same (x, y, y') with the preference reversed, p → 1 − p: the adversary's labels, y_l ≻ y_w (IOPO L121)."""
    return replace(pairs, pref=1.0 - pairs.pref)


def iopo_objective(tau, epsilon):
    """objective(roles, pairs): the protagonist's loss in its phases, the adversary's (swapped labels) in its own."""
    coefficient, clip = per_config(tau), per_config(epsilon)

    def objective(roles, pairs):
        adversary = roles.aux[ADVERSARY]
        if protagonist_phase(roles):
            return anchored_loss(roles.policy, adversary, roles.anchor, pairs, coefficient, clip)
        return anchored_loss(adversary, roles.policy, roles.anchor, relabelled(pairs), coefficient, clip)

    return objective


def adversary_copy(policy) -> dict:
    """``auxiliary``: the adversary starts as an exact copy of the policy (both from the SFT model)."""
    return {ADVERSARY: copy.deepcopy(policy)}


def iopo_algorithm(tau=0.1, epsilon=0.3, protagonist_steps=1, adversary_steps=1) -> Algorithm:
    """IOPO (Wang et al., eqs. 11–14 reconstructed, Algorithm 1 with adversary reading (B)); see the module docstring.
    Pairs from the data policy μ; the protagonist (the trained policy) is anchored at the adversary and the
    adversary at the protagonist; ``epsilon`` ≥ 0 clips the importance weight at 1 + ε. Fixed point: numerical."""
    check_tau(tau)
    check_range("epsilon", epsilon, 0.0)
    schedule = Alternating(protagonist_steps, adversary_steps)
    return Algorithm(
        name="iopo",
        paper=f"{IOPO}, eqs. 11–14 (reconstructed) and Algorithm 1; adversary with swapped labels",
        params={"tau": tau, "epsilon": epsilon, "protagonist_steps": protagonist_steps,
                "adversary_steps": adversary_steps},
        samplers=(PairSampler("data"),),
        objective=iopo_objective(tau, epsilon),
        schedule=schedule,
        auxiliary=adversary_copy,
        uses_data=True,
    )


FACTORIES = {"iopo": iopo_algorithm}
