"""The ``preference-games`` command line (also ``python -m preference_games``).

    preference-games demo                               solve the built-in games and print a summary
    preference-games games                              list the built-in games
    preference-games solve --game rps-variant --antisymmetrize --tau 0.1 [--json]
    preference-games solve --matrix P.csv [--ref ref.csv] --tau 0 [--json]

Every failure caused by the input ends with a one-line message on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .equilibria import SELECTIONS, SolverError, duality_gap, exploitability, nash_lp, regularized_nash
from .games import PreferenceGame, by_name, named_games

EXIT_BAD_INPUT = 2
EXIT_SOLVER_FAILED = 3


class UsageError(Exception):
    """Bad input found after argument parsing (a file that does not load, say)."""


# ================================================================================================= input
def load_array(path: str, what: str) -> np.ndarray:
    """Load a float array from .npy, .csv or .json (a nested list of numbers)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{what} file not found: {path}")
    suffix = file.suffix.lower()
    if suffix not in (".npy", ".csv", ".json"):
        raise UsageError(f"{what} file must end in .npy, .csv or .json: {path}")
    try:
        if suffix == ".npy":
            array = np.load(file, allow_pickle=False)
        elif suffix == ".csv":
            array = np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=1)
        else:
            array = json.loads(file.read_text())
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(f"cannot read {what} file {path}: {str(error).splitlines()[0]}") from None
    try:
        return np.array(array, dtype=np.float64)
    except (ValueError, TypeError):
        raise UsageError(f"{what} file {path} does not hold a rectangular numeric array") from None


def game_from_args(args) -> PreferenceGame:
    ref = load_array(args.ref, "reference policy") if args.ref else None
    if args.matrix:
        if args.actions is not None:
            raise UsageError("--actions applies to built-in games, not to --matrix")
        return PreferenceGame(
            load_array(args.matrix, "matrix"), ref, antisymmetrize=args.antisymmetrize, name=Path(args.matrix).name
        )
    game = by_name(args.game, actions=args.actions, seed=args.seed, antisymmetrize=args.antisymmetrize)
    return game.with_ref(ref) if ref is not None else game


# ================================================================================================ output
def _floats(values: np.ndarray):
    """A policy as JSON: a list of floats for a one-prompt game, a list of lists otherwise."""
    rows = [[float(v) for v in row] for row in values]
    return rows[0] if len(rows) == 1 else rows


def solve_report(game: PreferenceGame, tau: float, selection: str) -> dict:
    """Solve one game and collect what ``solve`` prints; every number is measured on the returned policy."""
    if tau > 0:
        eq = regularized_nash(game, tau)
        extra = {"newton_steps": eq.iterations, "products_with_P": eq.matvecs}
    else:
        eq = nash_lp(game, selection=selection)
        extra = {"value": _floats(eq.value[None]), "unique": [bool(u) for u in eq.unique], "selection": selection}
    policy = eq.policy
    return {
        "game": game.name,
        "num_actions": game.num_actions,
        "num_prompts": game.num_prompts,
        "actions": list(game.actions),
        "tau": tau,
        "policy": _floats(policy.probs),
        "duality_gap": eq.duality_gap,
        "unregularized_gap": duality_gap(game, policy, 0.0),
        "exploitability": exploitability(game, policy),
        "kl_to_ref": game.expected(policy.kl(game.ref)),
        "ref": _floats(game.ref.probs),
        **extra,
    }


def print_solve(report: dict) -> None:
    tau = report["tau"]
    kind = f"regularised equilibrium at tau = {tau:g}" if tau > 0 else "unregularised equilibrium (tau = 0, LP)"
    prompts = report["num_prompts"]
    print(f"{report['game']}: {report['num_actions']} actions, {prompts} prompt{'s' * (prompts > 1)}; {kind}")
    policies = [report["policy"]] if prompts == 1 else report["policy"]
    refs = [report["ref"]] if prompts == 1 else report["ref"]
    width = max(8, *(len(a) for a in report["actions"]))
    for x, (pi, ref) in enumerate(zip(policies, refs)):
        if prompts > 1:
            print(f"prompt {x}")
        print(f"  {'action':<{width}}  {'pi*':>12}  {'pi_ref':>10}")
        for action, p, r in zip(report["actions"], pi, ref):
            print(f"  {action:<{width}}  {p:12.8f}  {r:10.6f}")
    print(f"duality gap at tau = {tau:g}:   {report['duality_gap']:.3e}   (certificate of the policy above)")
    if tau > 0:
        print(f"unregularised gap (tau = 0):  {report['unregularized_gap']:.3e}")
        print(f"KL(pi* || pi_ref):            {report['kl_to_ref']:.6g}")
        print(f"Newton steps: {report['newton_steps']}, products with P: {report['products_with_P']}")
    else:
        unique = report["unique"]
        if all(unique):
            print("the equilibrium is unique")
        else:
            print(
                f"the equilibrium set is not a single point (prompts {[x for x, u in enumerate(unique) if not u]}); "
                f"selection: {report['selection']}"
            )
        print(f"KL(pi* || pi_ref):            {report['kl_to_ref']:.6g}")


# ================================================================================================ commands
def cmd_solve(args) -> int:
    if not math.isfinite(args.tau) or args.tau < 0:
        raise UsageError(f"--tau must be a finite number >= 0; got {args.tau}")
    report = solve_report(game_from_args(args), args.tau, args.selection)
    if args.json:
        print(json.dumps(report))
    else:
        print_solve(report)
    return 0


def cmd_games(args) -> int:
    games = named_games()
    if args.json:
        print(json.dumps(games))
    else:
        width = max(map(len, games))
        for name, description in games.items():
            print(f"{name:<{width}}  {description}")
    return 0


DEMO_GAMES = ("rps", "rps-variant", "biased-rps", "bradley-terry", "cyclic", "random", "condorcet")
DEMO_TAU = 0.1


def cmd_demo(args) -> int:
    rows = []
    for name in DEMO_GAMES:
        # The printed Appendix F matrix is not constant-sum; the demo uses its (P − Pᵀ + 1)/2 repair and says so.
        game = by_name(name, antisymmetrize=name == "rps-variant")
        regularised = regularized_nash(game, DEMO_TAU)
        lp = nash_lp(game)
        rows.append(
            {
                "game": name,
                "actions": game.num_actions,
                "tau": DEMO_TAU,
                "regularised_policy": _floats(regularised.policy.probs),
                "regularised_gap": regularised.duality_gap,
                "kl_to_ref": game.expected(regularised.policy.kl(game.ref)),
                "lp_policy": _floats(lp.policy.probs),
                "lp_gap": lp.duality_gap,
                "lp_support": int((lp.policy.probs > 0).sum()),
                "lp_unique": bool(lp.unique.all()),
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"preference-games {__version__}: exact equilibria of the built-in preference games\n")
    header = f"{'game':<14} {'n':>3}  {'gap at tau=' + str(DEMO_TAU):>14} {'KL(pi*|ref)':>12}  {'LP gap':>9} {'support':>7} {'unique':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['game']:<14} {row['actions']:>3}  {row['regularised_gap']:>14.1e} {row['kl_to_ref']:>12.4g}  "
            f"{row['lp_gap']:>9.1e} {row['lp_support']:>7} {'yes' if row['lp_unique'] else 'no':>6}"
        )
    print(
        "\nrps-variant is the IPO-MD Appendix F matrix repaired to (P - P^T + 1)/2 (the printed one is not "
        "constant-sum).\nEvery gap is the certificate of the returned policy. Details: preference-games solve --help"
    )
    return 0


# ================================================================================================= parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preference-games",
        description="Exact preference games for LLM alignment: equilibria, duality gaps and certificates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="solve every built-in game and print a summary")
    demo.add_argument("--json", action="store_true", help="print one JSON list instead of the table")
    demo.set_defaults(run=cmd_demo)

    games = commands.add_parser("games", help="list the built-in games")
    games.add_argument("--json", action="store_true", help="print a JSON object name -> description")
    games.set_defaults(run=cmd_games)

    solve = commands.add_parser(
        "solve",
        help="the (regularised) Nash equilibrium of one game, with its duality gap",
        description="Solve a preference game. tau > 0: the regularised equilibrium softmax(log pi_ref + P pi / tau); "
        "tau = 0: a Nash equilibrium by linear programming. The printed duality gap is recomputed on the "
        "returned policy.",
    )
    source = solve.add_mutually_exclusive_group(required=True)
    source.add_argument("--game", choices=list(named_games()), help="a built-in game (see `preference-games games`)")
    source.add_argument("--matrix", metavar="FILE", help="preference matrix P[i, j] = p(i > j): .npy, .csv or .json; "
                        "a [Y, Y] matrix or an [X, Y, Y] stack (one game per prompt)")
    solve.add_argument("--ref", metavar="FILE", help="reference policy [Y] or [X, Y] (default uniform); zeros "
                       "restrict the support")
    solve.add_argument("--tau", type=float, required=True, help="KL temperature tau >= 0")
    solve.add_argument("--antisymmetrize", action="store_true", help="replace P by (P - P^T + 1)/2 instead of "
                       "rejecting a matrix with P + P^T != 1")
    solve.add_argument("--actions", type=int, help="number of actions for the sized built-in games")
    solve.add_argument("--seed", type=int, default=0, help="seed of the random built-in games (default 0)")
    solve.add_argument("--selection", choices=SELECTIONS, default="max-entropy",
                       help="tau = 0 only: which equilibrium when the set is not a single point")
    solve.add_argument("--json", action="store_true", help="print one JSON object (keys: policy, duality_gap, ...)")
    solve.set_defaults(run=cmd_solve)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, ValueError) as error:
        print(f"preference-games {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SolverError as error:
        print(f"preference-games {args.command}: solver failed: {error}", file=sys.stderr)
        return EXIT_SOLVER_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
