"""``preference-games games``: the built-in table games, then the sequence games of
:mod:`preference_games.sequences` (trained with ``simulate --policy autoregressive``)."""

from __future__ import annotations

import json

from ..games import named_games

SEQUENCE_HEADING = "sequence games (use with --policy autoregressive)"


def add_parser(commands) -> None:
    games = commands.add_parser("games", help="list the built-in games and the sequence games")
    games.add_argument("--json", action="store_true", help="print a JSON object name -> description of the table "
                       "games, with the sequence games under the key sequence_games (name -> description)")
    games.set_defaults(run=cmd_games)


def sequence_games() -> dict[str, str]:
    """Sequence game name -> description."""
    from ..sequences import SEQUENCE_GAMES  # imports torch

    return {name: description for name, (description, _) in SEQUENCE_GAMES.items()}


def cmd_games(args) -> int:
    tables, sequences = named_games(), sequence_games()
    if args.json:
        # The table games keep the top-level name -> description shape they always had; a game name never has
        # an underscore, so the extra key cannot collide with one.
        print(json.dumps({**tables, "sequence_games": sequences}))
        return 0
    width = max(map(len, [*tables, *sequences]))
    for name, description in tables.items():
        print(f"{name:<{width}}  {description}")
    print(f"\n{SEQUENCE_HEADING}")
    for name, description in sequences.items():
        print(f"{name:<{width}}  {description}")
    return 0
