"""Where each algorithm should converge, in closed form or through the exact engine.

Every function returns a :class:`~preference_games.policies.TabularPolicy` of the game's shape. The results used:

* online IPO, self-play, INPO/OMD, extragradient and optimistic online IPO: the regularised Nash equilibrium
  π* = softmax(log π_ref + Pπ*/τ) (IPO-MD eq. 12 and Prop. 4.1; INPO §2.2 and eq. 5);
* IPO-MD(β) and Nash-MD-PG(β): eq. 13, π*_β ∝ π_ref exp(P π_β/τ) with π_β = (π*_β)^{1−β} π_ref^β normalised. By
  Prop. 5.2, π_β is the regularised equilibrium at temperature τ/(1 − β), so π*_β = BR_τ(NE_{τ/(1−β)}) — one engine
  solve and one best response (β = 1: the best response to π_ref);
* the π^{1−β} μ^β variant: the same argument with π_ref^β replaced by μ^β shows that π_β is the equilibrium at
  τ/(1 − β) of the game whose reference is π_ref^{1−β} μ^β (normalised); π* = BR_τ of it (β = 1: offline IPO);
* exact Nash-MD with a constant η: the IPO-MD fixed point with β = τ/η (its mixture π_t^{1−τ/η} π_ref^{τ/η} is
  IPO-MD's with that β), *not* the Nash equilibrium;
* offline IPO against μ: eq. 7, π* ∝ π_ref exp(p(y ≻ μ)/τ) = BR_τ(μ);
* DPO and RLHF on a Bradley–Terry game: eq. 3, π* ∝ π_ref exp(r/τ);
* SPPO: the unregularised equilibrium, reached by the uniform average of the iterates.

>>> from preference_games.games import rps_variant
>>> game = rps_variant(antisymmetrize=True)
>>> online_ipo = ipo_md(game, tau=0.1, beta=0.0)          # β = 0 is online IPO: the regularised equilibrium
>>> bool(abs(online_ipo.probs - regularized_nash(game, 0.1).policy.probs).max() < 1e-12)
True
"""

from __future__ import annotations

import numpy as np

from .equilibria import best_response, nash_lp, regularized_nash
from .games import PreferenceGame
from .policies import TabularPolicy


def regularized_equilibrium(game: PreferenceGame, tau: float) -> TabularPolicy:
    """The regularised Nash equilibrium at τ (IPO-MD eq. 12)."""
    return regularized_nash(game, tau).policy


def ipo_md(game: PreferenceGame, tau: float, beta: float, data=None) -> TabularPolicy | None:
    """The fixed point of IPO-MD(β) (IPO-MD eq. 13, via Prop. 5.2); with ``data`` = μ, of the π^{1−β} μ^β variant
    (None when β > 0 and μ misses part of Supp(π_ref): pairs never reach those actions, see :func:`offline_ipo`)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1]; got {beta}")
    if data is not None and beta > 0 and not covers_support(game, data):
        return None
    anchor = game.ref if data is None else game.policy(data)
    if beta == 1.0:
        return best_response(game, anchor, tau)
    if data is None:
        mixture_game = game
    else:
        mixture_game = game.with_ref(game.ref.geometric_mixture(anchor, beta))
    mixture = regularized_nash(mixture_game, tau / (1.0 - beta)).policy
    return best_response(game, mixture, tau)


def nash_md(game: PreferenceGame, tau: float, eta: float) -> TabularPolicy:
    """The fixed point of exact Nash-MD with a constant η ≥ τ: IPO-MD's with β = τ/η."""
    return ipo_md(game, tau, tau / eta)


def offline_ipo(game: PreferenceGame, tau: float, data) -> TabularPolicy | None:
    """IPO-MD eq. 7: π* ∝ π_ref exp(p(y ≻ μ)/τ), the best response to the data policy μ.

    None when μ misses part of Supp(π_ref): the offline loss never sees those actions, so it does not determine
    their probabilities (the minimisers form a family; IPO-MD Remark G.9 makes the same point for DPO).
    """
    return best_response(game, data, tau) if covers_support(game, data) else None


def covers_support(game: PreferenceGame, data) -> bool:
    """Whether the data policy μ puts mass on every action of Supp(π_ref) (for every prompt)."""
    return bool(np.all(game.policy(data).support | ~game.support))


def bradley_terry_rewards(game: PreferenceGame, atol: float = 1e-9) -> np.ndarray | None:
    """Rewards r [X, Y] with P = σ(r_i − r_j) (r_0 = 0 per prompt), or None if the game is not Bradley–Terry."""
    P = np.clip(game.P, 1e-300, 1.0)
    logits = np.log(P) - np.log(np.clip(1.0 - game.P, 1e-300, 1.0))  # [X, Y, Y]: r_i − r_j where finite
    rewards = -logits[:, 0, :]  # r_j − r_0
    model = 0.5 * (1.0 + np.tanh(0.5 * (rewards[:, :, None] - rewards[:, None, :])))
    return rewards if np.all(np.isfinite(rewards)) and np.abs(model - game.P).max() <= atol else None


def kl_regularized_reward_maximiser(game: PreferenceGame, tau: float) -> TabularPolicy | None:
    """IPO-MD eq. 3 for the game's Bradley–Terry reward: π* ∝ π_ref exp(r/τ); None if the game is not BT."""
    rewards = bradley_terry_rewards(game)
    if rewards is None:
        return None
    return TabularPolicy.from_logits(game.ref.log_probs + rewards / tau, support=game.support)


def unregularized_equilibrium(game: PreferenceGame) -> TabularPolicy:
    """The unregularised equilibrium (τ = 0; maximum-entropy selection when it is not unique)."""
    return nash_lp(game).policy
