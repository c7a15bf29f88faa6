"""Peer benchmark: our equilibrium solvers against the solvers people reach for, every answer checked first.

Games: ``random_intransitive(n, seed)`` (one prompt, uniform π_ref, S = P − ½ antisymmetric), n ∈ {10, 50, 200, 1000}.

Table 1 -- the unregularised equilibrium (τ = 0): ``nash_lp(game)`` against
  * scipy's HiGHS on the whole game as one LP (minimise v s.t. Sx ≤ v·1, 1ᵀx = 1, x ≥ 0), with each of its
    methods: dual simplex (``method="highs-ds"``), interior point (``"highs-ipm"``) and its default (``"highs"``,
    which lets HiGHS choose);
  * Nashpy's ``Game(S).linear_program()``;
  * OpenSpiel's ``lp_solver.solve_zero_sum_matrix_game`` on ``pyspiel.create_matrix_game(S, −S)`` (cvxpy with its
    default solver, ECOS). OpenSpiel asserts that the game is zero-sum: on the preference game itself, (P, 1 − P),
    whose payoffs sum to 1, it refuses, so the benchmark shows that refusal and then shifts to S = P − ½;
  * Gambit's ``nash.lp_solve(Game.from_arrays(S, −S), rational=False)`` (floating point).
Table 2 -- the regularised equilibrium (τ ∈ {1, 0.1}, uniform π_ref): ``regularized_nash(game, tau)`` against
Gambit's logit quantal response equilibrium at λ = 1/τ on the payoff S (``qre.logit_solve_lambda``): with a
uniform reference π* = softmax(Sπ*/τ) is exactly the logit QRE of the zero-sum game (S, −S), both players playing π*.

Every answer is checked before any time is shown: a peer's strategy (clipped at 0 and renormalised; for Gambit's QRE
both players') must have DualGap_0 = 2·max(Sx) ≤ 2·1e-9·max|S| (nash_lp's own guarantee), or, for τ > 0,
DualGap_τ = 2τ·KL(x ‖ softmax(log π_ref + Sx/τ)) ≤ 1e-12 (regularized_nash's default certificate). Both gaps are
computed here from the returned vector alone, independently of the library. An answer that misses its bar is
reported as inaccurate, with its gap, and no time; a solver that raises, times out (``--timeout``, 120 s by default,
ten times that for ours: each solve runs in a forked child that is stopped there) or is not installed is reported
as such, never dropped. A peer that timed out is not tried at larger sizes (or smaller τ). The exit status is 1 if one of *our* answers fails its check.

Timed: the solve call alone, in a forked child, as the median of 5 calls when one takes under 1 s (else one call);
building each solver's input (the PreferenceGame, HiGHS's constraint matrices, the peers' game objects) is not
timed. Every solver runs on one thread (BLAS included; see below). Ratios are the peer's time ÷ ours in the same run (> 1: ours is faster).

    python benchmarks/bench_peers.py                   # both tables (~10 min on a 2-core machine)
    python benchmarks/bench_peers.py --quick           # n ∈ {10, 30}, τ = 0.1 (seconds; runs without the peers)
    python benchmarks/bench_peers.py --sizes 1000      # one size
    python benchmarks/bench_peers.py --json out.json   # also write the raw numbers

The peers are in the ``bench`` extra: ``pip install -e ".[bench]"`` (nashpy, open-spiel, pygambit, cvxpy, ecos).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

# Measure this checkout's package even when an editable install points at another copy.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One BLAS thread for every solver, set before numpy loads (HiGHS, ECOS and Gambit run on one thread anyway): on these
# shared 2-core machines a second BLAS thread's spin-waits made our solves up to 5x slower and erratic (measured:
# regularized_nash at n = 200, τ = 0.1, 11.6 ms median with calls from 11 to 144 ms, against 2.6 ms ± 0.1 on one).
# Set the variables to override.
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np
import scipy
from scipy.optimize import linprog
from scipy.special import logsumexp

from preference_games.equilibria import nash_lp, regularized_nash
from preference_games.games import random_intransitive

SIZES = (10, 50, 200, 1000)
TAUS = (1.0, 0.1)
QUICK = {"sizes": (10, 30), "taus": (0.1,)}
TIMEOUT = 120.0
#: Ours gets OURS_TIMEOUT_FACTOR times the limit: a slow answer of ours is a result to report with its time.
OURS_TIMEOUT_FACTOR = 10
#: Accuracy bars, the same for every solver: nash_lp's guarantee DualGap_0 ≤ 2·LP_TOL·max|S| at τ = 0, and
#: regularized_nash's default certificate DualGap_τ ≤ REGULARIZED_TOL at τ > 0.
LP_TOL = 1e-9
REGULARIZED_TOL = 1e-12
#: A solve shorter than this is repeated (REPEATS calls in all) and the median taken.
REPEAT_BELOW = 1.0
REPEATS = 5
#: The peers: import name, distribution name (for versions and the message when missing).
PEERS = {"nashpy": "nashpy", "pyspiel": "open_spiel", "pygambit": "pygambit", "cvxpy": "cvxpy"}
OURS = "ours"


# ============================================================================================ the checks
def unregularized_gap(S: np.ndarray, x: np.ndarray) -> float:
    """DualGap_0(x) = 2·max_y (Sx)(y) for a probability vector x (xᵀSx = 0 makes it ≥ 0)."""
    return max(2.0 * float((S @ x).max()), 0.0)


def regularized_gap(S: np.ndarray, x: np.ndarray, tau: float) -> float:
    """DualGap_τ(x) = 2τ·KL(x ‖ b) with b = softmax(log π_ref + Sx/τ) the best response to x (INPO §2.2; π_ref
    uniform, so its log cancels in the softmax)."""
    log_b = S @ x / tau
    log_b -= logsumexp(log_b)
    on = x > 0
    return max(2.0 * tau * float(np.sum(x[on] * (np.log(x[on]) - log_b[on]))), 0.0)


def as_strategy(values) -> np.ndarray:
    """A peer's answer as a probability vector: clipped at 0 (interior-point solvers return −1e-11) and
    renormalised."""
    x = np.clip(np.asarray(values, dtype=np.float64).reshape(-1), 0.0, None)
    return x / x.sum()


# ========================================================================================= the solvers
# Each solver is a factory (S, tau, game) -> solve, where solve() returns a list of strategies (one per player it
# reports). The factory builds the solver's input and is not timed; ``solve`` is.
def ours_lp(S, tau, game):
    return lambda: [nash_lp(game).policy.probs[0]]


def ours_regularized(S, tau, game):
    return lambda: [regularized_nash(game, tau).policy.probs[0]]


def highs(method: str):
    def factory(S, tau, game):
        k = len(S)
        problem = dict(
            c=np.r_[np.zeros(k), 1.0],  # minimise v
            A_ub=np.c_[S, -np.ones(k)],  # Sx − v ≤ 0
            b_ub=np.zeros(k),
            A_eq=np.r_[np.ones(k), 0.0][None],  # 1ᵀx = 1
            b_eq=[1.0],
            bounds=[(0, None)] * k + [(None, None)],
            method=method,
        )

        def solve():
            result = linprog(**problem)
            if result.status != 0:
                raise RuntimeError(f"HiGHS ({method}): {result.message}")
            return [result.x[:k]]

        return solve

    return factory


def nashpy_lp(S, tau, game):
    import nashpy

    matrix_game = nashpy.Game(S)

    def solve():
        with warnings.catch_warnings():  # nashpy warns about degenerate games; the check below decides
            warnings.simplefilter("ignore")
            row, column = matrix_game.linear_program()
        return [row, column]

    return solve


def openspiel_lp(S, tau, game):
    import pyspiel
    from open_spiel.python.algorithms import lp_solver

    matrix_game = pyspiel.create_matrix_game(S.tolist(), (-S).tolist())

    def solve():
        row, column, _, _ = lp_solver.solve_zero_sum_matrix_game(matrix_game)
        return [row, column]

    return solve


def _gambit_strategies(profile, matrix_game):
    return [np.array([float(profile[s]) for s in player.strategies]) for player in matrix_game.players]


def gambit_lp(S, tau, game):
    import pygambit

    matrix_game = pygambit.Game.from_arrays(S, -S)

    def solve():
        result = pygambit.nash.lp_solve(matrix_game, rational=False)
        return _gambit_strategies(result.equilibria[0], matrix_game)

    return solve


def gambit_qre(S, tau, game):
    import pygambit

    matrix_game = pygambit.Game.from_arrays(S, -S)

    def solve():
        (qre,) = pygambit.qre.logit_solve_lambda(matrix_game, lam=[1.0 / tau])
        return _gambit_strategies(qre.profile, matrix_game)

    return solve


#: (label, factory, modules it needs) per table; ours first.
LP_SOLVERS = [
    (OURS, ours_lp, ()),
    ("HiGHS dual simplex", highs("highs-ds"), ()),
    ("HiGHS interior point", highs("highs-ipm"), ()),
    ("HiGHS default", highs("highs"), ()),
    ("Nashpy LP", nashpy_lp, ("nashpy",)),
    ("OpenSpiel LP", openspiel_lp, ("pyspiel", "cvxpy")),
    ("Gambit LP", gambit_lp, ("pygambit",)),
]
REGULARIZED_SOLVERS = [
    (OURS, ours_regularized, ()),
    ("Gambit logit QRE", gambit_qre, ("pygambit",)),
]


def missing(modules) -> str | None:
    """None if every module imports, else a message naming the first that does not."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            return f"not installed ({PEERS[module]}: {error.__class__.__name__}; pip install -e \".[bench]\")"
    return None


# ============================================================================================== running
def _timed(solve):
    """(median seconds, answer) of ``solve()``: one call, or REPEATS when one call is shorter than REPEAT_BELOW."""
    start = time.perf_counter()
    answer = solve()
    times = [time.perf_counter() - start]
    if times[0] < REPEAT_BELOW:
        for _ in range(REPEATS - 1):
            start = time.perf_counter()
            solve()
            times.append(time.perf_counter() - start)
    return statistics.median(times), answer


def run_limited(factory, S, tau, game, timeout: float) -> dict:
    """Build and time one solver in a forked child, stopped after ``timeout`` seconds. Returns a dict with
    ``status`` ("ok", "error", "timeout"), ``seconds`` and ``strategies`` (when ok) or ``message``."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child():
        try:
            seconds, strategies = _timed(factory(S, tau, game))
            send.send({"status": "ok", "seconds": seconds, "strategies": [as_strategy(s) for s in strategies]})
        except BaseException as error:  # whatever the peer raises is its answer
            send.send({"status": "error", "message": f"{type(error).__name__}: {error}".strip().rstrip(":")})

    process = context.Process(target=child)
    process.start()
    result = receive.recv() if receive.poll(timeout) else {"status": "timeout", "message": f"> {timeout:g} s"}
    if process.is_alive():
        process.kill()
    process.join()
    return result


def check(result: dict, S: np.ndarray, tau: float) -> dict:
    """Add the answer's gap (the worst over the players it reports) and whether it meets the bar."""
    if result["status"] != "ok":
        return result
    if tau == 0:
        gap, bar = max(unregularized_gap(S, x) for x in result["strategies"]), 2 * LP_TOL * float(np.abs(S).max())
    else:
        gap, bar = max(regularized_gap(S, x, tau) for x in result["strategies"]), REGULARIZED_TOL
    result.update(gap=gap, bar=bar, accurate=gap <= bar)
    if not result["accurate"]:
        result.update(status="inaccurate", message=f"gap {gap:.1e} > {bar:.1e}")
    return result


def bench(solvers, sizes, taus, seed: int, timeout: float) -> list[dict]:
    """One row per (n, τ, solver): the checked result, and the ratio to ours where both are ok."""
    rows, gave_up = [], {}
    for n in sizes:
        game = random_intransitive(n, seed=seed)
        S = game.S[0]
        for tau in taus:
            ours = None
            for label, factory, modules in solvers:
                print(f"{time.strftime('%H:%M:%S')} n = {n}, tau = {tau:g}: {label}", file=sys.stderr)
                absent = missing(modules)
                if absent:
                    result = {"status": "not installed", "message": absent}
                elif label in gave_up:
                    result = {"status": "not run", "message": f"timed out at {gave_up[label]}"}
                else:
                    limit = timeout * (OURS_TIMEOUT_FACTOR if label == OURS else 1)
                    result = check(run_limited(factory, S, tau, game, limit), S, tau)
                    if result["status"] == "timeout" and label != OURS:
                        gave_up[label] = f"n = {n}" + (f", τ = {tau:g}" if tau else "")
                result.update(n=n, tau=tau, solver=label, seed=seed)
                if label == OURS:
                    ours = result
                elif result["status"] == "ok" and ours["status"] == "ok":
                    result["ratio"] = result["seconds"] / ours["seconds"]
                rows.append(result)
    return rows


def constant_sum_refusal(n: int, seed: int) -> str:
    """What OpenSpiel's zero-sum LP says to the preference game itself, (P, 1 − P), whose payoffs sum to 1."""
    absent = missing(("pyspiel", "cvxpy"))
    if absent:
        return f"OpenSpiel: {absent}"
    import pyspiel
    from open_spiel.python.algorithms import lp_solver

    P = random_intransitive(n, seed=seed).P[0]
    matrix_game = pyspiel.create_matrix_game(P.tolist(), (1 - P).tolist())
    try:
        lp_solver.solve_zero_sum_matrix_game(matrix_game)
    except AssertionError:
        return (f"OpenSpiel on the preference game (P, 1 − P) at n = {n}: refused (AssertionError: its utility type is "
                f"{matrix_game.get_type().utility.name}, the solver asserts ZERO_SUM); every OpenSpiel figure uses "
                "S = P − ½")
    return f"OpenSpiel on the preference game (P, 1 − P) at n = {n}: accepted"


# =============================================================================================== output
def _seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def cell(row: dict) -> str:
    """A summary cell: ours as a time, a peer as its time ÷ ours (its time), anything else as what happened."""
    status = row["status"]
    if status == "ok" and "ratio" in row:
        return f"{row['ratio']:.1f}× ({_seconds(row['seconds'])})"
    if status == "ok":  # ours, or a peer where ours failed (no ratio then)
        return _seconds(row["seconds"])
    if status == "timeout":
        return f"timed out ({row['message']})"
    if status == "not installed":
        return "not installed"
    return f"{status} ({row['message']})"


def summary_table(rows: list[dict], solvers, with_tau: bool) -> str:
    """n (and τ) down, solvers across: ours as a time, each peer as its time ÷ ours (its time)."""
    labels = [label for label, _, _ in solvers]
    head = "| n " + ("| τ " if with_tau else "") + "| " + " | ".join(
        "ours: time" if label == OURS else f"{label}: ÷ ours (time)" for label in labels) + " |"
    rule = "|---:" + ("|---:" if with_tau else "") + "|---:" * len(labels) + "|"
    lines = [head, rule]
    keys = sorted({(r["n"], r["tau"]) for r in rows}, key=lambda k: (k[0], -k[1]))
    for n, tau in keys:
        by = {r["solver"]: r for r in rows if r["n"] == n and r["tau"] == tau}
        cells = [str(n)] + ([f"{tau:g}"] if with_tau else []) + [cell(by[label]) for label in labels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(rows: list[dict]) -> str:
    lines = ["| n | τ | solver | status | time [s] | time ÷ ours | gap | bar | note |",
             "|---:|---:|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        cells = [str(r["n"]), f"{r['tau']:g}", r["solver"], r["status"],
                 f"{r['seconds']:.4g}" if r["status"] == "ok" else "—",
                 f"{r['ratio']:.2f}" if "ratio" in r else "—",
                 f"{r['gap']:.1e}" if "gap" in r else "—", f"{r['bar']:.1e}" if "bar" in r else "—",
                 r.get("message", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions() -> dict:
    found = {"python": platform.python_version(), "numpy": np.__version__, "scipy (its HiGHS)": scipy.__version__}
    for distribution in ("nashpy", "open_spiel", "pygambit", "cvxpy", "ecos"):
        try:
            found[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[distribution] = "not installed"
    return found


def equilibria_state() -> str:
    """The commit that last touched preference_games/equilibria.py, and whether the file differs from it."""
    path = "preference_games/equilibria.py"
    try:
        commit = subprocess.run(["git", "log", "-1", "--format=%h %cI", "--", path], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", path], cwd=ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


# ================================================================================================= main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"n ∈ {QUICK['sizes']}, τ ∈ {QUICK['taus']}")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"action counts (default {' '.join(map(str, SIZES))})")
    parser.add_argument("--taus", type=float, nargs="+", help=f"τ of table 2 (default {' '.join(map(str, TAUS))})")
    parser.add_argument("--seed", type=int, default=0, help="game seed (default 0)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per solve (default {TIMEOUT:g})")
    parser.add_argument("--part", choices=("all", "lp", "regularized"), default="all")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {}
    sizes = args.sizes or quick.get("sizes", SIZES)
    taus = args.taus or quick.get("taus", TAUS)

    env = versions()
    command = " ".join(["python benchmarks/bench_peers.py", *(sys.argv[1:] if argv is None else argv)])
    print(", ".join(f"{k} {v}" for k, v in env.items()) + f", {os.cpu_count()} CPUs, BLAS threads "
          f"{os.environ['OPENBLAS_NUM_THREADS']}, {time.strftime('%Y-%m-%d %H:%M:%S')}; "
          f"preference_games/equilibria.py at {equilibria_state()}; command: `{command}`\n")
    absent = {PEERS[m]: missing((m,)) for m in PEERS if missing((m,))}
    for distribution, message in absent.items():
        print(f"skipping {distribution}: {message}")
    if absent:
        print()
    results, failed = {"versions": env, "args": vars(args)}, False
    for part, solvers, part_taus, title in (
        ("lp", LP_SOLVERS, (0.0,), "**Unregularised equilibrium (τ = 0)**: `nash_lp` vs the whole LP"),
        ("regularized", REGULARIZED_SOLVERS, taus,
         "**Regularised equilibrium (uniform π_ref)**: `regularized_nash` vs Gambit's logit QRE at λ = 1/τ"),
    ):
        if args.part not in ("all", part):
            continue
        rows = bench(solvers, sizes, part_taus, args.seed, args.timeout)
        # every answer has been checked (check()) before anything below prints a time
        ours_failed = [r for r in rows if r["solver"] == OURS and r["status"] != "ok"]
        failed |= bool(ours_failed)
        results[part] = [{k: v for k, v in r.items() if k != "strategies"} for r in rows]
        print(f"{title} (`random_intransitive(n, seed={args.seed})`; peers: their time ÷ ours, > 1: ours is faster)\n")
        print(summary_table(rows, solvers, with_tau=part == "regularized") + "\n")
        if part == "lp":
            print(f"- {constant_sum_refusal(min(sizes), args.seed)}")
        for r in ours_failed:
            print(f"- **ours failed** at n = {r['n']}, τ = {r['tau']:g}: {r['status']}: {r.get('message', '')}")
        print("\n<details><summary>every answer: status, time, gap and the bar it had to meet</summary>\n")
        print(detail_table(rows) + "\n\n</details>\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
