"""What the tests of the verify checks (tests/test_verify_*.py) share: the small suite their verdicts are checked on,
running one check, and random references for hand-built games."""

import numpy as np
from scipy.special import log_softmax

from preference_games.games import PreferenceGame, bradley_terry, rps_variant
from preference_games.verify import Suite, checks, run_checks

#: The suite the verdict tests run on: the named games and 8 random ones.
SUITE = Suite(games=8, seed=0)


def run_check(name: str, suite: Suite = SUITE):
    """The outcome of the check ``name`` on ``suite``."""
    (result,) = run_checks(checks([name]), suite)
    return result.outcome


def random_log_probs(seed: int, shape=(2, 3)) -> np.ndarray:
    """A seeded random full-support policy: log-probabilities [X, Y] (log-softmax of standard normal logits)."""
    return log_softmax(np.random.default_rng(seed).normal(size=shape), axis=-1)


def with_random_ref(game: PreferenceGame, seed: int) -> PreferenceGame:
    """``game`` with the reference policy ``random_log_probs(seed)`` (of the game's shape)."""
    return game.with_ref(np.exp(random_log_probs(seed, game.ref.shape)))


def two_prompt_games(*seeds: int) -> list[PreferenceGame]:
    """Games of one shape, one per seed: two prompts (the RPS variant and Bradley–Terry on three actions, d0 = (0.3,
    0.7)) with the reference ``random_log_probs(seed)``."""
    base = PreferenceGame.stack([rps_variant(antisymmetrize=True), bradley_terry([0.0, 0.5, 1.0])],
                                prompt_probs=[0.3, 0.7])
    return [with_random_ref(base, seed) for seed in seeds]
