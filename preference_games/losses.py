"""Pure torch loss functions of log-probabilities and preferences — the part of an algorithm that is the same on a
lookup table and on a transformer.

Every function takes tensors of one shape (any shape: [C, B] here, [B] on a model) and returns the per-pair loss of
that shape; the caller weights and sums. Stop-gradients are the caller's: anything passed in as a reference,
anchor, target or advantage should be detached by whoever computed it, and :func:`policy_gradient` detaches its
advantage itself because forgetting it there silently changes the estimator.

Notation (``../shared/DESIGN.md``): ``tau`` is the KL coefficient (β in the DPO/BPO papers), ``eta`` the OMD
regulariser (INPO's η), ``h`` the anchored log-ratio difference

    h(y, y') = [log π(y) − log a(y)] − [log π(y') − log a(y')]

with a = π_ref for DPO/IPO/SLiC (IPO-MD eqs. 4, 5, 8), the behaviour policy for BPO (eq. 5 of that paper), and
π_ref^{τ/η} π_t^{1−τ/η} for INPO (its h_t, eq. 8).

>>> import torch
>>> ipo(torch.tensor([5.0]), tau=0.1)      # zero at the IPO target h = 1/(2τ)
tensor([0.])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log_ratio_difference(logp_y, logp_y2, anchor_y, anchor_y2) -> torch.Tensor:
    """h = (log π(y) − log a(y)) − (log π(y') − log a(y')); pass the anchor log-probs detached."""
    return (logp_y - anchor_y) - (logp_y2 - anchor_y2)


def dpo(h, tau) -> torch.Tensor:
    """−log σ(τ h) for the ordered pair (y⁺, y⁻) (IPO-MD eq. 4; DPO's β is our τ)."""
    return -F.logsigmoid(tau * h)


def slic(h, tau) -> torch.Tensor:
    """max(0, 1 − τ h): the hinge of SLiC-HF with reference normalisation (IPO-MD eq. 5)."""
    return torch.relu(1.0 - tau * h)


def ipo(h, tau) -> torch.Tensor:
    """(h − 1/(2τ))² (IPO-MD eq. 8; Azar et al.'s IPO). With τ → η and INPO's anchor it is INPO's eq. 8."""
    return (h - 0.5 / tau) ** 2


def soft_label(pair_loss, h, pref, **kwargs) -> torch.Tensor:
    """p·ℓ(h) + (1 − p)·ℓ(−h): the loss of a pair labelled y ≻ y' with probability p (IPO-MD Algorithm 2).

    Its expectation over λ_p-sampled orderings equals the λ_p loss of eq. 8, and with p ∈ {0, 1} it is that loss.
    """
    return pref * pair_loss(h, **kwargs) + (1.0 - pref) * pair_loss(-h, **kwargs)


def policy_gradient(logp_y, advantage) -> torch.Tensor:
    """−A·log π(y) with A detached: its gradient is the score-function (REINFORCE) estimate −A ∇log π(y)."""
    return -advantage.detach() * logp_y


def squared_regression(log_ratio, target) -> torch.Tensor:
    """(log π(y)/π_t(y) − target)², the pointwise regression of SPPO (survey eq. 61)."""
    return (log_ratio - target) ** 2


def bradley_terry(reward_y, reward_y2, pref) -> torch.Tensor:
    """−[p log σ(r(y) − r(y')) + (1 − p) log σ(r(y') − r(y))]: the reward-model fit of RLHF (IPO-MD eq. 1)."""
    margin = reward_y - reward_y2
    return -(pref * F.logsigmoid(margin) + (1.0 - pref) * F.logsigmoid(-margin))


PAIR_LOSSES = {"dpo": dpo, "ipo": ipo, "slic": slic}
