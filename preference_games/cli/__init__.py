"""The ``preference-games`` command line (also ``python -m preference_games``).

    preference-games demo                               solve the built-in games and print a summary
    preference-games games                              list the built-in games and the sequence games
    preference-games solve --game rps-variant --antisymmetrize --tau 0.1 [--json]
    preference-games solve --matrix P.csv [--ref ref.csv] --tau 0 [--json]
    preference-games algorithms [--json]                list the registered alignment algorithms
    preference-games simulate --algo ipo-md --beta 0.5 --tau 0.1 --game rps-variant --antisymmetrize [--json]
    preference-games simulate --algo online-ipo --tau 0.1 --game rps-sequences --policy autoregressive [--json]
    preference-games plot figure9|dynamics|field|contour|convergence|tau-path --out DIR [--algo NAME ...] [--game ...]
    preference-games verify [--only NAME ...] [--games N] [--seed S] [--quick] [--list] [--json]
    preference-games train --algo online-ipo --tau 0.1 --model tiny --game rps-sequences --out DIR [--json]
    preference-games train --algo online-ipo --model DIR --prompts P.jsonl --oracle reward:DIR --out DIR

One module per command (:mod:`.demo`, :mod:`.games`, :mod:`.solve`, :mod:`.algorithms`, :mod:`.simulate`,
:mod:`.plot`, :mod:`.verify`, :mod:`.train`), each with its arguments, its ``cmd_`` function and its output; :mod:`.common` holds
what they share. Values are checked by the library that computes with them: its one-line ValueError is the message.
The command line checks only what is about the command line (flags that contradict each other or do not apply).

Every failure caused by the input ends with a one-line message on stderr and exit status 2; no traceback.
``verify`` exits with status 1 when a check itself raised (a bug, reported as the verdict "error"), never because a
paper's claim failed: that is a finding, printed with its counterexample.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..equilibria import SolverError

EXIT_BAD_INPUT = 2
EXIT_SOLVER_FAILED = 3


class UsageError(Exception):
    """Bad input found after argument parsing (a file that does not load, say)."""


class SolverDiverged(Exception):
    """A simulation whose policy stopped being a probability distribution."""


class ArgumentsError(Exception):
    """Arguments argparse rejects; carries the whole one-line message (argparse would print usage and exit)."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a rejected command line raises :class:`ArgumentsError` instead of printing the usage
    block and exiting: :func:`main` turns it into one line on stderr and status 2, like every other bad input."""

    def error(self, message):
        raise ArgumentsError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each command module adds its own subcommand."""
    # Imported here, not at the top: the command modules import the error types above from this package.
    from . import algorithms, demo, games, plot, simulate, solve, train, verify

    parser = _Parser(
        prog="preference-games",
        description="Exact preference games for LLM alignment: equilibria, duality gaps and certificates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, games, solve, algorithms, simulate, plot, verify, train):
        command.add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run one command; the exit status: 0, 1 (verify: a check raised), 2 (bad input), 3 (a solver failed)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ArgumentsError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return args.run(args)
    except (UsageError, ValueError) as error:
        print(f"preference-games {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (SolverError, SolverDiverged) as error:
        print(f"preference-games {args.command}: solver failed: {error}", file=sys.stderr)
        return EXIT_SOLVER_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as `yes | head` does
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
