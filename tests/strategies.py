"""Hypothesis strategies for valid preference games and policies."""

import numpy as np
from hypothesis import strategies as st

from preference_games.games import PreferenceGame
from preference_games.policies import TabularPolicy

seeds = st.integers(0, 2**32 - 1)


def _simplex(rng: np.random.Generator, shape, zeros: bool) -> np.ndarray:
    """Dirichlet(1) rows; with ``zeros`` some entries are knocked out, keeping at least one per row."""
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if zeros:
        keep = rng.random(shape) < 0.7
        keep[..., 0] |= ~keep.any(-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(-1, keepdims=True)
    return p


@st.composite
def games(draw, min_actions=2, max_actions=8, max_prompts=1, ref="uniform"):
    """A valid random game: S uniform in [−½, ½] (skew), optionally per prompt; ``ref`` is "uniform", "random"
    (full support) or "zeros" (random, with some actions outside the support)."""
    rng = np.random.default_rng(draw(seeds))
    n = draw(st.integers(min_actions, max_actions))
    X = draw(st.integers(1, max_prompts))
    upper = np.triu(rng.uniform(-0.5, 0.5, size=(X, n, n)), k=1)
    P = 0.5 + upper - np.swapaxes(upper, 1, 2)
    ref_probs = None if ref == "uniform" else _simplex(rng, (X, n), zeros=ref == "zeros")
    prompt_probs = rng.dirichlet(np.ones(X)) if X > 1 else None
    return PreferenceGame(P, ref_probs, prompt_probs)


@st.composite
def game_and_policy(draw, **game_kwargs):
    """A game and a policy with full support on Supp(π_ref) (some entries tiny)."""
    game = draw(games(**game_kwargs))
    rng = np.random.default_rng(draw(seeds))
    logits = rng.normal(scale=draw(st.sampled_from([0.5, 3.0, 10.0])), size=game.ref.shape)
    return game, TabularPolicy.from_logits(logits, support=game.support)
