"""Exact tools the checks share: population losses and their logit gradients, batched over games of one shape.

The population loss of an algorithm is its objective on the exhaustive pairs (every (x, y, y') weighted by its
probability), so autograd on the logits gives the exact expected gradient — no sampling anywhere.

>>> from preference_games.algorithms import make
>>> from preference_games.games import rps_variant
>>> from preference_games.equilibria import regularized_nash
>>> game = rps_variant(antisymmetrize=True)
>>> star = regularized_nash(game, 0.1).policy.log_probs
>>> _, grad = population_gradient(make("online-ipo", tau=0.1), [game], star[None])
>>> bool(abs(grad).max() < 1e-12)            # IPO-MD Prop. 4.1: the equilibrium is stationary
True
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ..games import PreferenceGame
from ..models import FrozenPolicy, TabularLogits
from ..samplers import Roles, TabularOracle


def population_gradient(algorithm, games: list[PreferenceGame], log_probs, *, data=None, anchor=None):
    """The algorithm's population loss [C] and its gradient with respect to the logits [C, X, Y] at the policies
    ``log_probs`` [C, X, Y], configuration c on ``games[c]`` (one game for all, or one per configuration, all of one
    shape and support: see :func:`by_shape`). ``data``: μ [X, Y] for offline algorithms; ``anchor``: log-probabilities [C, X, Y] of the frozen snapshot
    for anchored algorithms (INPO's π_t, BPO's behaviour policy; default: the policy itself)."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    oracle = TabularOracle(list(games))
    policy = TabularLogits.from_log_probs(log_probs)
    data_policy = FrozenPolicy(games[0].policy(data).log_probs if data is not None else games[0].ref.log_probs)
    roles = Roles(policy=policy, ref=oracle.ref, data=data_policy,
                  anchor=policy.snapshot() if anchor is None else FrozenPolicy(anchor), aux={})
    roles.aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
    pairs = [s.exhaustive(roles, oracle) for s in algorithm.samplers]
    loss = algorithm.objective(roles, *pairs)
    (grad,) = torch.autograd.grad(loss.sum(), [policy.logits])
    return loss.detach().numpy(), grad.numpy()


def by_shape(games) -> dict[tuple, list[int]]:
    """Indices of ``games`` grouped by (prompts, actions, support of π_ref): each group can run as one batch (one
    :func:`population_gradient` or :func:`~preference_games.dynamics.simulate` call, a configuration per game)."""
    groups = defaultdict(list)
    for i, game in enumerate(games):
        groups[(game.num_prompts, game.num_actions, game.support.tobytes())].append(i)
    return dict(groups)


def random_policies(game: PreferenceGame, count: int, rng: np.random.Generator, scale: float = 2.0) -> np.ndarray:
    """``count`` random policies of the game with full support on Supp(π_ref): log-probabilities [count, X, Y]
    (logits N(0, scale²), −inf outside the support)."""
    logits = rng.normal(scale=scale, size=(count,) + game.ref.shape)
    logits = np.where(game.support, logits, -np.inf)
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
