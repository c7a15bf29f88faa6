"""preference-games: exact preference games for LLM alignment algorithms.

The engine (this package) never imports transformers. Start with :mod:`preference_games.games` and
:mod:`preference_games.equilibria`.
"""

from .games import (
    PreferenceGame,
    biased_rps,
    bradley_terry,
    by_name,
    condorcet,
    cyclic,
    random_intransitive,
    rock_paper_scissors,
    rps_variant,
    tournament,
)
from .policies import TabularPolicy

__all__ = [
    "PreferenceGame",
    "TabularPolicy",
    "biased_rps",
    "bradley_terry",
    "by_name",
    "condorcet",
    "cyclic",
    "random_intransitive",
    "rock_paper_scissors",
    "rps_variant",
    "tournament",
]
__version__ = "0.1.0"
