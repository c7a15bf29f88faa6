"""What several commands share: how a command names its game (``--game``/``--matrix`` and friends), reading array
files, the algorithm registry and its parameters on the command line, and turning values into JSON or text.

Nothing here imports torch: the registry and the tabular facts are imported inside the functions that need them,
so ``games`` and ``solve`` start without it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import warnings
from pathlib import Path

import numpy as np

from ..games import PreferenceGame, by_name, check_seed, named_games
from ..policies import real_array
from . import UsageError


# ================================================================================================= games
def seed(text: str) -> int:
    """argparse type of every ``--seed``: the library's check, reported by argparse with the option's name."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") from None
    try:
        return check_seed(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_game_arguments(parser: argparse.ArgumentParser, seed_help: str, required: bool = True,
                       game_help: str = "") -> None:
    """--game NAME | --matrix FILE, --ref, --antisymmetrize, --actions, --seed: how every command names its game.
    ``game_help`` is appended to --game's help (``simulate`` adds its sequence games there)."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--game", metavar="NAME", help=f"a built-in game: {', '.join(named_games())}{game_help}")
    source.add_argument("--matrix", metavar="FILE", help="preference matrix P[i, j] = p(i > j): .npy, .csv or .json; "
                        "a [Y, Y] matrix or an [X, Y, Y] stack (one game per prompt)")
    parser.add_argument("--ref", metavar="FILE", help="reference policy [Y] or [X, Y] (default uniform); zeros "
                        "restrict the support")
    parser.add_argument("--antisymmetrize", action="store_true", help="replace P by (P - P^T + 1)/2 instead of "
                        "rejecting a matrix with P + P^T != 1")
    parser.add_argument("--actions", type=int, help="number of actions for the sized built-in games")
    parser.add_argument("--seed", type=seed, default=0, help=seed_help)


def load_array(path: str, what: str, *, matrix: bool = False) -> np.ndarray:
    """Load a float array from .npy, .csv or .json (a nested list of numbers).

    A .csv file has no way to tell a [1] vector from a [1, 1] matrix, so ``matrix=True`` reads it with at least two
    dimensions (a one-action game is then the same from every format) and a vector file (reference or data policy)
    with at least one. What the values may be (real, finite, of the right shape) is checked by the library, which
    refuses complex numbers that numpy would truncate with only a warning.
    """
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{what} file not found: {path}")
    suffix = file.suffix.lower()
    if suffix not in (".npy", ".csv", ".json"):
        raise UsageError(f"{what} file must end in .npy, .csv or .json: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # loadtxt only warns about an empty file: make that an error too
            if suffix == ".npy":
                array = np.load(file, allow_pickle=False)
            elif suffix == ".csv":
                array = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=2 if matrix else 1)
            else:
                array = json.loads(file.read_text())
    except RecursionError:  # json's decoder recurses once per nesting level
        raise UsageError(f"cannot read {what} file {path}: nested too deeply for an array") from None
    except (ValueError, TypeError, OSError, EOFError, UserWarning) as error:  # EOFError: np.load of an empty file
        raise UsageError(f"cannot read {what} file {path}: {str(error).splitlines()[0]}") from None
    return real_array(array, f"{what} file {path}")


def game_from_args(args) -> PreferenceGame:
    """The table game that --game/--matrix, --ref, --antisymmetrize, --actions and --seed name."""
    ref = load_array(args.ref, "reference policy") if args.ref else None
    if args.matrix:
        if args.actions is not None:
            raise UsageError("--actions applies to built-in games, not to --matrix")
        P = load_array(args.matrix, "matrix", matrix=True)
        return PreferenceGame(P, ref, antisymmetrize=args.antisymmetrize, name=Path(args.matrix).name)
    game = by_name(args.game, actions=args.actions, seed=args.seed, antisymmetrize=args.antisymmetrize)
    return game.with_ref(ref) if ref is not None else game


def output_folder(out: str) -> Path:
    """``--out`` checked before any work is done (by the library's check, which creates nothing)."""
    from ..report import output_folder as check

    try:
        return check(out)
    except ValueError as error:
        raise UsageError(f"--out: {error}") from None


# ============================================================================================ algorithms
def registry():
    """:mod:`preference_games.algorithms`, imported here because it imports torch: only the commands that need it
    pay for it."""
    from .. import algorithms

    return algorithms


def facts(algorithm):
    """:func:`preference_games.tabular.facts` (imports torch, like the registry)."""
    from ..tabular import facts

    return facts(algorithm)


def parse_value(text: str, default):
    """A ``--param`` value: ``none`` for None (e.g. inner_steps=none: run each inner argmin to convergence), an
    integer, else a float, else the text; guided by the default's type where it helps."""
    if text.strip().lower() == "none" and not isinstance(default, str):
        return None
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise UsageError(f"expected true or false; got {text!r}")
    if isinstance(default, str):
        return text
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return float(value) if isinstance(default, float) else value
    return text


def add_algorithm_arguments(parser: argparse.ArgumentParser, to: str, tau_also: str = "") -> None:
    """--beta, --tau, --eta and --param KEY=VALUE; ``to`` says which algorithms receive them, ``tau_also`` what else
    --tau sets."""
    parser.add_argument("--beta", type=float, help=f"mixture weight beta in [0, 1] ({to} that take beta)")
    parser.add_argument("--tau", type=float, help=f"KL coefficient tau > 0 ({to} that take tau{tau_also})")
    parser.add_argument("--eta", type=float, help=f"mirror-descent regulariser eta ({to} that take eta)")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="any other parameter of the algorithm "
                        "(integer, float, none or text; repeatable), e.g. --param inner_steps=50")


def algorithm_params(args) -> dict:
    """The parameters given on the command line (--beta/--tau/--eta and every --param KEY=VALUE), checked against
    what the algorithm takes; values are parsed, not yet validated (the algorithm's factory does that)."""
    algorithms = registry()
    if args.algo not in algorithms.names():
        raise UsageError(f"unknown algorithm {args.algo!r}; choose one of: {', '.join(algorithms.names())}")
    accepted = algorithms.parameters(args.algo)
    takes = ", ".join(accepted) or "no parameters"
    given = {}
    for flag in ("beta", "tau", "eta"):
        value = getattr(args, flag)
        if value is not None:
            if flag not in accepted:
                raise UsageError(f"--{flag}: {args.algo} takes no parameter {flag} (it takes: {takes})")
            given[flag] = value
    for item in args.param or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE; got {item!r}")
        if key not in accepted:
            raise UsageError(f"--param {key}: {args.algo} takes no parameter {key} (it takes: {takes})")
        if key in given:
            raise UsageError(f"parameter {key} is given twice")
        try:
            given[key] = parse_value(text, accepted[key])
        except UsageError as error:
            raise UsageError(f"--param {key}: {error}") from None
    return given


def make_algorithm(name: str, given: dict):
    """``registry().make(name, **given)``; a TypeError (a required parameter nobody gave, say) is bad input too."""
    try:
        return registry().make(name, **given)
    except TypeError as error:
        raise UsageError(f"{name}: {error}") from None


# ================================================================================================ output
_EMPTY = inspect.Parameter.empty


def jsonable(value):
    """A parameter value as JSON: numbers, strings and booleans as they are, arrays as lists, anything else as text."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, np.ndarray):
        return value.tolist()
    return "required" if value is _EMPTY else str(value)


def show(value) -> str:
    """A parameter value for text output."""
    if value is _EMPTY:
        return "(required)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(name: str, params: dict) -> str:
    """``name(key=value, ...)`` as ``simulate`` prints an algorithm."""
    return f"{name}({', '.join(f'{k}={show(v)}' for k, v in params.items())})"


def emit(report, args, print_text) -> int:
    """Print ``report`` as one JSON object with --json, else as ``print_text`` writes it; the command's status 0."""
    if args.json:
        print(json.dumps(report))
    else:
        print_text(report)
    return 0


def tau_text(tau) -> str:
    """The JSON value of a gap's τ (a number, or the text of a per-prompt array) for text output."""
    return f"{tau:g}" if isinstance(tau, float) else str(tau)


def print_lines(lines: list[tuple[str, str]]) -> None:
    """``label:  value`` lines with the values aligned; an empty label continues the line above."""
    width = max(len(label) for label, _ in lines) + 1
    for label, value in lines:
        print(f"{label + ':' if label else '':<{width}}  {value}")
