"""Equilibrium-solver benchmarks, reported as ratios measured in one run (2-core machines are too noisy for
absolute times; those appear only as extra columns).

Reproduce the tables (run from the repository root on an otherwise idle machine; on a loaded one, add
OPENBLAS_NUM_THREADS=1, see benchmarks/README.md):

    python benchmarks/bench_equilibria.py                                  # tables 1 and 2 (~2-3 min)
    python benchmarks/bench_equilibria.py --part regularized               # table 1 only (seconds)
    python benchmarks/bench_equilibria.py --part lp                        # table 2 only (HiGHS, n=1000: 15-30 s/seed)
    python benchmarks/bench_equilibria.py --part large                     # table 3: n = 3000, 10000 (~15-30 min)
    python benchmarks/bench_equilibria.py --part regularized --sizes 1000  # the n = 1000 tau sweep alone
    python benchmarks/bench_equilibria.py --quick                          # smoke test: n <= 100, one repetition
    python benchmarks/bench_equilibria.py --json results.json              # also write the raw numbers

Table 1 -- regularised equilibrium, ``regularized_nash(game, tau)`` from a cold start on ``random_intransitive(n,
seed)``: median solve time divided by the median time of ONE product ``P @ pi`` (P = ``game.P[0]``, float64 [n, n])
timed on the same matrix in the same run, with the solver's own certificate and product count.

Table 2 -- unregularised equilibrium (tau = 0), ``nash_lp(game)`` against scipy's HiGHS on the whole game as one LP
(minimise v s.t. S x <= v 1, 1^T x = 1, x >= 0, S = P - 1/2), with both its dual simplex (``method="highs"``, the
default) and its interior point method (``"highs-ipm"``), and against nashpy's ``Game(S).linear_program()`` for
n <= 300 when nashpy is importable (``pip install -e ".[bench]"``). Certificates are DualGap_0 = 2 max(S x).

Table 3 -- large games, n in {3000, 10000}: ``nash_lp`` (tau = 0) and ``regularized_nash`` at tau in {0.1, 0.01},
each in a fresh process (its peak resident memory is the process's), with time, memory and certificate, the time
of one P @ pi, and the log-log slope of each against n.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy
from tqdm import tqdm

from preference_games.equilibria import SolverError, _lp_on, nash_lp, regularized_nash
from preference_games.games import random_intransitive

try:
    import nashpy
except ImportError:  # only in the `bench` extra
    nashpy = None

REGULARIZED_SIZES = (10, 100, 1000, 3000)
LP_SIZES = (100, 300, 1000)
LARGE_SIZES = (3000, 10000)
LARGE_TAUS = (0.0, 0.1, 0.01)
TAUS = (1.0, 0.1, 0.01)
QUICK_MAX_SIZE = 100
NASHPY_MAX_SIZE = 300
#: Targets at n = TARGET_SIZE: products with S per solve, by tau; and the certificate for every solve.
TARGET_SIZE = 1000
PRODUCT_TARGETS = {1.0: 200, 0.1: 200, 0.01: 2000}
GAP_TARGET = 1e-12


# ================================================================================================= timing
def median_seconds(fn, repeats: int, min_batch: float = 0.0):
    """(median seconds per call of fn(), fn's last result) over ``repeats`` batches, each batch calling fn as many
    times as it takes to last at least ``min_batch`` seconds (one call when min_batch is 0)."""
    calls = 1
    while True:
        elapsed, result = _batch(fn, calls)
        if elapsed >= min_batch:
            break
        calls = max(2 * calls, int(1.2 * calls * min_batch / max(elapsed, 1e-9)))
    times = [elapsed / calls]
    for _ in range(repeats - 1):
        elapsed, result = _batch(fn, calls)
        times.append(elapsed / calls)
    return statistics.median(times), result


def _batch(fn, calls: int):
    start = time.perf_counter()
    for _ in range(calls):
        result = fn()
    return time.perf_counter() - start, result


def product_seconds(P: np.ndarray, seed: int) -> float:
    """Median time of one P @ pi over 21 batches of >= 10 ms each (>= 0.2 s in all)."""
    pi = np.random.default_rng(seed).dirichlet(np.ones(len(P)))
    return median_seconds(lambda: P @ pi, repeats=21, min_batch=0.01)[0]


def solve_repeats(n: int, quick: bool) -> int:
    return 1 if quick else (3 if n <= 1000 else 2)


def timed_solve(fn, repeats: int) -> dict:
    """Time a solver; a SolverError becomes an ``error`` entry instead of stopping the benchmark."""
    try:
        seconds, result = median_seconds(fn, repeats)
    except SolverError as error:
        return {"error": str(error)}
    return {"seconds": seconds, "result": result}


# ============================================================================ table 1: regularised (tau > 0)
def bench_regularized(n: int, seed: int, quick: bool) -> list[dict]:
    """One row per tau for the game random_intransitive(n, seed)."""
    game = random_intransitive(n, seed)
    product = product_seconds(game.P[0], seed)
    rows = []
    for tau in TAUS:
        row = {"n": n, "seed": seed, "tau": tau, "product_s": product}
        solve = timed_solve(lambda: regularized_nash(game, tau), solve_repeats(n, quick))
        if "error" in solve:
            rows.append({**row, "solve_error": solve["error"]})
            continue
        eq = solve["result"]
        row.update(
            solve_s=solve["seconds"],
            ratio=solve["seconds"] / product,
            matvecs=eq.matvecs,
            iterations=eq.iterations,
            duality_gap=eq.duality_gap,
            products_ok=eq.matvecs <= PRODUCT_TARGETS[tau] if n == TARGET_SIZE else None,
            gap_ok=eq.duality_gap <= GAP_TARGET,
        )
        rows.append(row)
    return rows


# ============================================================================== table 2: unregularised (tau = 0)
def highs_whole_game(S: np.ndarray, method: str = "highs") -> np.ndarray:
    """HiGHS on the whole game: minimise v s.t. S x <= v 1, 1^T x = 1, x >= 0; returns x clipped to the simplex.
    ``method``: "highs" (dual simplex, linprog's default) or "highs-ipm" (interior point, then crossover)."""
    return _lp_on(S, method)


def nashpy_row_strategy(S: np.ndarray) -> np.ndarray:
    """nashpy's minimax LP (it solves one LP per player); the row player's strategy is the equilibrium."""
    row, _ = nashpy.Game(S).linear_program()
    return np.clip(row, 0.0, None) / np.clip(row, 0.0, None).sum()


def gap0(S: np.ndarray, x: np.ndarray) -> float:
    """DualGap_0(x) = 2 max_y (S x)(y)."""
    return float(2.0 * (S @ x).max())


def bench_lp(n: int, seed: int, quick: bool) -> dict:
    game = random_intransitive(n, seed)
    S = np.asarray(game.S[0])
    repeats = 1 if quick or n >= 1000 else 3
    row = {"n": n, "seed": seed}
    ours = timed_solve(lambda: nash_lp(game), repeats)
    if "error" in ours:
        row["ours_error"] = ours["error"]
    else:
        eq = ours["result"]
        row.update(ours_s=ours["seconds"], ours_gap=eq.duality_gap, unique=bool(eq.unique[0]), method=eq.method[0])
    peers = {"highs": highs_whole_game, "ipm": lambda S: highs_whole_game(S, "highs-ipm")}
    if nashpy is not None and n <= NASHPY_MAX_SIZE:
        peers["nashpy"] = nashpy_row_strategy
    for name, solver in peers.items():
        peer = timed_solve(lambda: solver(S), repeats)
        if "error" in peer:
            row[f"{name}_error"] = peer["error"]
            continue
        row.update({f"{name}_s": peer["seconds"], f"{name}_gap": gap0(S, peer["result"])})
        if "ours_s" in row:
            row[f"{name}_speedup"] = peer["seconds"] / row["ours_s"]
    return row


# ================================================================================================ output
def _cell(row: dict, key: str, spec: str) -> str:
    """A formatted value; FAILED where the solver behind ``key`` (its prefix) raised, — where it did not run."""
    if f"{key.split('_')[0]}_error" in row:
        return "FAILED"
    return "—" if row.get(key) is None else format(row[key], spec)


def _check(ok) -> str:
    return {True: "yes", False: "**NO**", None: "—"}[ok]


def _failures(rows: list[dict]) -> str:
    """One line per failed solve, printed under its table."""
    lines = []
    for r in rows:
        where = f"n={r['n']} seed={r['seed']}" + (f" τ={r['tau']:g}" if "tau" in r else "")
        lines += [f"\n- FAILED {where}, {k[: -len('_error')]}: {v}" for k, v in r.items() if k.endswith("_error")]
    return "\n" + "".join(lines) if lines else ""


def regularized_table(rows: list[dict]) -> str:
    lines = [
        "| n | seed | τ | solve / one P@π | products (matvecs) | Newton steps | solve / (matvecs·P@π) "
        "| DualGap_τ | products ≤ target | gap ≤ 1e-12 | solve [ms] | P@π [µs] |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|---:|---:|",
    ]
    for r in rows:
        if "solve_error" in r:
            lines.append(f"| {r['n']} | {r['seed']} | {r['tau']:g} | FAILED |" + " |" * 8)
            continue
        target = "—" if r["products_ok"] is None else f"{_check(r['products_ok'])} (≤ {PRODUCT_TARGETS[r['tau']]})"
        lines.append(
            f"| {r['n']} | {r['seed']} | {r['tau']:g} | {r['ratio']:,.0f} | {r['matvecs']} | {r['iterations']} "
            f"| {r['ratio'] / r['matvecs']:.1f} | {r['duality_gap']:.1e} | {target} | {_check(r['gap_ok'])} "
            f"| {1e3 * r['solve_s']:.1f} | {1e6 * r['product_s']:.1f} |"
        )
    return "\n".join(lines) + _failures(rows)


def lp_table(rows: list[dict]) -> str:
    lines = [
        "| n | seed | HiGHS-ipm / ours | HiGHS-simplex / ours | nashpy / ours | DualGap_0 ours | DualGap_0 HiGHS-ipm "
        "| DualGap_0 HiGHS-simplex | DualGap_0 nashpy | unique | ours [s] | HiGHS-ipm [s] | HiGHS-simplex [s] "
        "| nashpy [s] |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|",
    ]
    columns = [("ipm_speedup", ".1f"), ("highs_speedup", ".1f"), ("nashpy_speedup", ".1f"), ("ours_gap", ".1e"),
               ("ipm_gap", ".1e"), ("highs_gap", ".1e"), ("nashpy_gap", ".1e"), ("unique", ""), ("ours_s", ".3f"),
               ("ipm_s", ".3f"), ("highs_s", ".3f"), ("nashpy_s", ".3f")]
    for r in rows:
        cells = [str(r["n"]), str(r["seed"])] + [_cell(r, key, spec) for key, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")
    methods = sorted({r["method"] for r in rows if "method" in r})
    return "\n".join(lines) + _failures(rows) + "\n\n`nash_lp` routes: " + "; ".join(f"`{m}`" for m in methods)


# ================================================================================ table 3: large games
def run_one_large(n: int, seed: int, tau: float) -> dict:
    """One solve of random_intransitive(n, seed) in this process: times, certificate and peak memory."""
    start = time.perf_counter()
    game = random_intransitive(n, seed)
    build = time.perf_counter() - start
    product = product_seconds(game.P[0], seed)
    start = time.perf_counter()
    if tau == 0:
        eq = nash_lp(game)
        extra = {"method": eq.method[0], "unique": bool(eq.unique[0])}
    else:
        eq = regularized_nash(game, tau)
        extra = {"method": eq.method, "matvecs": eq.matvecs, "iterations": eq.iterations}
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"n": n, "seed": seed, "tau": tau, "build_s": build, "product_s": product, "solve_s": seconds,
            "peak_bytes": peak, "duality_gap": eq.duality_gap, **extra}


def bench_large(n: int, seed: int, tau: float) -> dict:
    """run_one_large in a fresh interpreter, so that its peak memory is its own."""
    command = [sys.executable, os.path.abspath(__file__), "--_one", str(n), str(seed), repr(tau)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"n": n, "seed": seed, "tau": tau, "solve_error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _slope(rows: list[dict], key: str, tau: float) -> str:
    """d log(key) / d log(n) between the smallest and the largest n of the rows at tau."""
    points = sorted((r["n"], r[key]) for r in rows if r["tau"] == tau and key in r)
    if len(points) < 2 or points[0][0] == points[-1][0]:
        return "—"
    (n0, v0), (n1, v1) = points[0], points[-1]
    return f"{np.log(v1 / v0) / np.log(n1 / n0):.2f}"


def large_table(rows: list[dict]) -> str:
    lines = [
        "| n | τ | solve [s] | solve / one P@π | peak memory [GiB] | P [GiB] | certificate | route | P@π [ms] |",
        "|---:|---:|---:|---:|---:|---:|---:|:---|---:|",
    ]
    for r in rows:
        if "solve_error" in r:
            lines.append(f"| {r['n']} | {r['tau']:g} | FAILED |" + " |" * 6)
            continue
        lines.append(
            f"| {r['n']} | {r['tau']:g} | {r['solve_s']:.2f} | {r['solve_s'] / r['product_s']:,.0f} "
            f"| {r['peak_bytes'] / 2**30:.2f} | {8 * r['n'] ** 2 / 2**30:.2f} | {r['duality_gap']:.1e} "
            f"| {r['method']} | {1e3 * r['product_s']:.1f} |"
        )
    slopes = ["", "Log–log slopes against n (between the smallest and the largest n):", "",
              "| τ | solve time | peak memory | one P@π |", "|---:|---:|---:|---:|"]
    for tau in sorted({r["tau"] for r in rows}):
        slopes.append(f"| {tau:g} | {_slope(rows, 'solve_s', tau)} | {_slope(rows, 'peak_bytes', tau)} "
                      f"| {_slope(rows, 'product_s', tau)} |")
    return "\n".join(lines + slopes) + _failures(rows)


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "nashpy": getattr(nashpy, "__version__", None),
        "cpus": os.cpu_count(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# ================================================================================================== main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"n <= {QUICK_MAX_SIZE} only, one repetition (smoke test)")
    parser.add_argument("--sizes", type=int, nargs="+", help="numbers of actions (default: per table, see --help)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="game seeds (default: 0 1)")
    parser.add_argument("--part", choices=("all", "regularized", "lp", "large"), default="all",
                        help="all = tables 1 and 2; large = table 3 alone")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument("--_one", nargs=3, help=argparse.SUPPRESS)  # internal: one table-3 solve, JSON to stdout
    args = parser.parse_args(argv)
    if args._one:
        n, seed, tau = args._one
        print(json.dumps(run_one_large(int(n), int(seed), float(tau))))
        return 0

    def sizes(default):
        chosen = args.sizes or default
        return [n for n in chosen if n <= QUICK_MAX_SIZE] if args.quick else list(chosen)

    # Warm-up: lazy imports and first-call costs out of the timings.
    regularized_nash(random_intransitive(10, 0), 0.1)
    nash_lp(random_intransitive(10, 0))

    results = {"environment": environment(), "args": vars(args), "regularized": [], "lp": [], "large": []}
    env = results["environment"]
    print(
        f"python {env['python']}, numpy {env['numpy']}, scipy {env['scipy']}, "
        f"nashpy {env['nashpy'] or 'not installed'}, {env['cpus']} CPUs, OPENBLAS_NUM_THREADS "
        f"{env['OPENBLAS_NUM_THREADS']}, {env['date']}; "
        f"command: python benchmarks/bench_equilibria.py {' '.join(sys.argv[1:] if argv is None else argv)}\n"
    )
    if args.part in ("all", "regularized"):
        jobs = [(n, s) for n in sizes(REGULARIZED_SIZES) for s in args.seeds]
        for n, seed in tqdm(jobs, desc="regularized_nash", file=sys.stderr):
            results["regularized"] += bench_regularized(n, seed, args.quick)
        print("**Regularised equilibrium** (`regularized_nash`, cold start; time as a multiple of one P@π)\n")
        print(regularized_table(results["regularized"]) + "\n")
    if args.part in ("all", "lp"):
        jobs = [(n, s) for n in sizes(LP_SIZES) for s in args.seeds]
        for n, seed in tqdm(jobs, desc="nash_lp vs HiGHS", file=sys.stderr):
            results["lp"].append(bench_lp(n, seed, args.quick))
        print("**Unregularised equilibrium** (τ = 0; `nash_lp` vs HiGHS (interior point and dual simplex) / nashpy "
              "on the whole LP; speed-up = their time / ours)\n")
        print(lp_table(results["lp"]) + "\n")
    if args.part == "large":
        jobs = [(n, s, tau) for n in (args.sizes or LARGE_SIZES) for s in args.seeds[:1] for tau in LARGE_TAUS]
        for n, seed, tau in tqdm(jobs, desc="large games", file=sys.stderr):
            results["large"].append(bench_large(n, seed, tau))
        print("**Large games** (`random_intransitive(n, 0)`; each solve in a fresh process; peak memory = the "
              "process's peak resident set, game included)\n")
        print(large_table(results["large"]) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    failed = any(k.endswith("_error") for r in results["regularized"] + results["lp"] + results["large"] for k in r)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
