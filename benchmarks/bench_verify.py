"""Timing of ``preference-games verify``: every check at two suite sizes, taken in one run.

The issue's target is the full run (the named games and 200 random games) in under 5 minutes on a 2-core machine.
Absolute seconds depend on the machine and its load, so the table also gives ratios from this one run: how each
check's time grows from ``--small`` to ``--games`` random games (≈ games/small for a check linear in the suite, less
for checks with fixed costs), and each check's share of the total.

    python benchmarks/bench_verify.py                      # 50 and 200 random games (~1.5 min on an idle machine)
    python benchmarks/bench_verify.py --small 20 --games 50  # quicker
    python benchmarks/bench_verify.py --games 400 --small 100
    python benchmarks/bench_verify.py --json results.json  # also write the raw numbers
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

# Measure this checkout's package even when an editable install points at another copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import preference_games  # noqa: E402
from preference_games.verify import Suite, checks, run_checks  # noqa: E402

#: The issue's budget for the full run, in seconds.
BUDGET = 300.0


def timed(games: int) -> tuple[list, float]:
    start = time.perf_counter()
    results = run_checks(checks(), Suite(games=games))
    return results, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=200, help="random games of the full run (default 200)")
    parser.add_argument("--small", type=int, default=50, help="random games of the comparison run (default 50)")
    parser.add_argument("--json", metavar="FILE", help="also write the raw numbers")
    args = parser.parse_args(argv)
    if not 0 < args.small < args.games:
        parser.error("need 0 < --small < --games")

    timed(2)  # warm-up: imports and first torch/scipy calls would otherwise be charged to the first checks timed
    small, small_total = timed(args.small)
    full, full_total = timed(args.games)
    print(f"python {platform.python_version()}, numpy {np.__version__}, preference-games "
          f"{preference_games.__version__}, {time.strftime('%Y-%m-%d %H:%M:%S')}; command: python "
          f"benchmarks/bench_verify.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    print(f"| check | s at {args.small} | s at {args.games} | ratio | share of total | verdict |")
    print("|---|---:|---:|---:|---:|---|")
    rows = []
    for a, b in zip(small, full):
        ratio = b.seconds / a.seconds if a.seconds > 0 else float("nan")
        rows.append({"check": b.check.name, "small": a.seconds, "full": b.seconds, "ratio": ratio,
                     "verdict": b.outcome.verdict})
        print(f"| {b.check.name} | {a.seconds:.2f} | {b.seconds:.2f} | {ratio:.1f} | "
              f"{b.seconds / full_total:.1%} | {b.outcome.verdict} |")
    print(f"| **total** | {small_total:.1f} | {full_total:.1f} | {full_total / small_total:.1f} | 100% | |")
    print(f"\nFull run: {full_total:.1f} s = {full_total / BUDGET:.2f} of the {BUDGET:.0f} s budget "
          f"({'met' if full_total < BUDGET else 'NOT met'}).")
    if args.json:
        Path(args.json).write_text(json.dumps({"games": args.games, "small": args.small, "total": full_total,
                                               "small_total": small_total, "checks": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
