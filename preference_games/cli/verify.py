"""``preference-games verify``: one executable check per numbered result of the seed papers, as a table."""

from __future__ import annotations

import argparse
import json
import sys

from .common import seed


def add_parser(commands) -> None:
    verify = commands.add_parser(
        "verify",
        help="check every numbered result of the seed papers on the built-in and N random games",
        description="Run one executable check per numbered result of the seed papers (IPO-MD, INPO, the survey's "
        "Nash-MD and SPPO, BPO, IOPO) on the named games plus --games seeded random games, and print a table: "
        "result, paper and location, what was measured, worst error (or fitted rate), tolerance and verdict "
        "(holds / fails / holds-with-correction), then each counterexample and correction. docs/theorems.md "
        "explains every check.",
    )
    verify.add_argument("--only", action="append", type=check_name, metavar="NAME", help="run only this check, or "
                        "every check whose name starts with it (e.g. inpo/); repeatable")
    verify.add_argument("--games", type=int, default=200, metavar="N", help="random games per check "
                        "(default 200)")
    verify.add_argument("--seed", type=seed, default=0, metavar="S", help="seed of the random games "
                        "(default 0)")
    verify.add_argument("--quick", action="store_true", help="only the checks that take about a second or less at 200 games")
    verify.add_argument("--list", action="store_true", help="list the checks and their statements; run nothing")
    verify.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    verify.add_argument("--json", action="store_true", help="print a JSON list of objects (keys: name, paper, "
                        "location, statement, measured, worst_error, tolerance, verdict, games, counterexample, "
                        "correction, seconds)")
    verify.set_defaults(run=cmd_verify)


def check_name(text: str) -> str:
    """argparse type of ``verify --only``: a name or a prefix of one. An empty one is a prefix of every name, so it
    would silently run every check (an unset shell variable, say), which is what --only is there to avoid."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name would select every check; give a check name or a prefix "
                                          "such as inpo/ (--list shows the names)")
    return text


def cmd_verify(args) -> int:
    from ..verify import Suite, checks, run_checks
    from ..verify.core import ERROR
    from ..verify.table import format_table

    selected = checks(args.only)
    if args.quick:
        selected = [c for c in selected if c.quick]
    if args.list:
        if args.json:
            print(json.dumps([{"name": c.name, "paper": c.paper, "location": c.location, "statement": c.statement,
                               "quick": c.quick} for c in selected]))
        else:
            for c in selected:
                print(f"{c.name:<34} {c.paper}, {c.location}\n    {c.statement}")
        return 0
    suite = Suite(games=args.games, seed=args.seed)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    results = run_checks(selected, suite, progress=progress)
    if args.json:
        print(json.dumps([r.as_dict() for r in results]))
    else:
        print(f"preference-games verify: {len(results)} results on the {len(suite.named())} named games and "
              f"{suite.n} random games (seed {suite.seed})\n")
        print(format_table(results))
    broken = [r.check.name for r in results if r.outcome.verdict == ERROR]
    if broken:
        print(f"preference-games verify: {len(broken)} check(s) raised: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0
