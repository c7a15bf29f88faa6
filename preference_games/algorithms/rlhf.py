"""RLHF: a Bradley–Terry reward model fitted to preference data, and a KL-regularised policy gradient on it.

IPO-MD paper §2.2: fit r by maximising the Bradley–Terry likelihood of λ_p-labelled pairs from μ (eq. 1), then
maximise E_{y~π}[r(y)] − τ KL(π‖π_ref) (eq. 2), whose maximiser is π ∝ π_ref exp(r/τ) (eq. 3).

The reward model is a second copy of the policy's architecture read through its log-probabilities: r(x, y) =
log π_r(y | x). Only reward *differences* enter eq. 1 and the policy gradient, and those are unchanged by the
softmax normalisation, so any policy class doubles as a reward class (DPO's implicit reward, used the other way round).

Both stages run at once: each step takes one gradient step on the reward fit (data pairs) and one on the policy
(on-policy samples), the policy seeing the reward through a stop-gradient. The joint fixed point is the same as
fitting first and optimising second: the reward fit does not depend on the policy, and the policy step is stationary
exactly at eq. 3 for the fitted reward. On a Bradley–Terry game with μ of full support the fit recovers the game's
rewards, so the fixed point is eq. 3 with them; elsewhere it is eq. 3 for the best Bradley–Terry approximation
under μ, computed numerically.
"""

from __future__ import annotations

import copy

from ..losses import bradley_terry, policy_gradient
from ..samplers import PairSampler
from .base import Algorithm, check_tau, per_config, weighted

IPO_MD = "Calandriello et al. 2024 (IPO-MD paper)"


def rlhf(tau=0.1) -> Algorithm:
    """RLHF (IPO-MD eqs. 1–3): Bradley–Terry reward fit on μ-pairs plus the policy gradient
    ∇log π(y)·(r(y) − τ log π(y)/π_ref(y) − b) with y ~ π and b the batch's weighted mean (a baseline)."""
    check_tau(tau)
    coefficient = per_config(tau)

    def objective(roles, data_pairs, policy_pairs):
        reward = roles.aux["reward"]
        fit = bradley_terry(
            reward.log_prob(data_pairs.x, data_pairs.y), reward.log_prob(data_pairs.x, data_pairs.y2), data_pairs.pref
        )  # [C, B]
        x, y = policy_pairs.x, policy_pairs.y
        logp = roles.policy.log_prob(x, y)
        advantage = reward.log_prob(x, y).detach() - coefficient * (logp.detach() - roles.ref.log_prob(x, y))
        baseline = weighted(policy_pairs, advantage)[:, None]  # E[A]: exact pairs: no bias; B samples that include
        # their own advantage in the mean: the expected gradient is (1 − 1/B) times the exact one, same direction
        return weighted(data_pairs, fit) + weighted(policy_pairs, policy_gradient(logp, advantage - baseline))

    return Algorithm(
        name="rlhf",
        paper=f"{IPO_MD}, eqs. 1-3 (reward fit, KL-regularised policy gradient)",
        params={"tau": tau},
        samplers=(PairSampler("data"), PairSampler("policy")),
        objective=objective,
        auxiliary=lambda policy: {"reward": copy.deepcopy(policy)},
        uses_data=True,
    )


FACTORIES = {"rlhf": rlhf}
