"""Exact-dynamics benchmark: IPO-MD batched over configurations against a naive simulator and against the same
dynamics one configuration at a time, as ratios of timings taken in one run (2-core machines are noisy; absolute
times are extra columns).

The workload is the project's target: ``simulate(make("ipo-md", beta=np.linspace(0, 1, 256), tau=0.1),
rps_variant(antisymmetrize=True), steps=10_000, mode="exact", lr=0.05, record_every=10_000)`` -- 256 configurations
of a 3-action game, 10,000 exact gradient steps, at least 3x the naive simulator (:func:`naive_simulate`: what a
researcher writes in an afternoon, ~25 lines: every pair enumerated, the population loss, ``torch.autograd.grad``, a
plain gradient step on [256, 3] logits) and in at most 2 s (>= 1.28 M configuration-steps per second). Only the
``simulate`` call is timed; the trajectory's metrics are lazy and are timed on their own, on first access after it.

Table 1 -- the batched run against the naive simulator (interleaved repeats, medians) and against K of its
configurations (evenly spaced, beta = 0 and 1 included) each run alone: speed-ups, agreement of the final policies
(to 1e-12; bitwise for the runs alone), convergence to the eq. 13 fixed point, targets.
Table 2 -- configuration-steps/s against C: ``simulate`` with one intra-op thread (its own pin) and with torch's
default (the pin ``dynamics.one_thread`` bypassed by a benchmark-side patch, restored afterwards), and the naive
simulator with one thread.

    python benchmarks/bench_dynamics.py                        # both tables (~2 min on an idle 2-core machine)
    python benchmarks/bench_dynamics.py --quick                # smoke test: 1,000 steps, small sweep (< 1 min)
    python benchmarks/bench_dynamics.py --part batched         # table 1 only (--part sizes: table 2 only)
    python benchmarks/bench_dynamics.py --json results.json    # also write the raw numbers
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

# Measure this checkout's package even when an editable install points at another copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from tqdm import tqdm

import preference_games
from preference_games import dynamics
from preference_games.algorithms import make
from preference_games.dynamics import simulate
from preference_games.games import rps_variant

TAU = 0.1
LR = 0.05
STEPS = 10_000
CONFIGS = 256
SEQUENTIAL = 8
SWEEP = (1, 16, 256, 4096)
SWEEP_STEPS = 1_000
NAIVE_REPEATS = 3
QUICK = {"steps": 1_000, "sequential": 2, "sweep": (1, 16, 256), "sweep_steps": 200}
#: The targets: CONFIGS x STEPS in at most TARGET_SECONDS, i.e. at least TARGET_RATE configuration-steps per second,
#: and at least NAIVE_TARGET times the naive simulator's rate on the same workload in the same run.
TARGET_SECONDS = 2.0
TARGET_RATE = CONFIGS * STEPS / TARGET_SECONDS
NAIVE_TARGET = 3.0
#: Final log-probabilities of the batched run, the runs alone and the naive simulator must agree to this (the runs
#: alone are expected to agree bitwise; the naive simulator adds the same terms in another order).
AGREEMENT_TOL = 1e-12
DEFAULT_THREADS = torch.get_num_threads()
GAME = rps_variant(antisymmetrize=True)
METRICS = ("duality_gap", "unregularized_gap", "kl_to_ref", "kl_to_fixed_point")


@contextlib.contextmanager
def threads_unpinned(threads: int):
    """Run the block with ``threads`` intra-op threads. For more than one, bypass ``simulate``'s one-thread pin
    (``dynamics.one_thread``) so that the setting applies; both are restored afterwards."""
    before, pin = torch.get_num_threads(), dynamics.one_thread
    torch.set_num_threads(threads)
    if threads != 1:
        dynamics.one_thread = contextlib.nullcontext
    try:
        yield
    finally:
        dynamics.one_thread = pin
        torch.set_num_threads(before)


def timed_simulate(betas: np.ndarray, steps: int, threads: int = 1) -> dict:
    """One timed ``simulate`` of IPO-MD with one configuration per beta (a float beta when there is one);
    ``wall_s``/``cpu_s`` are the call alone, ``metrics_s`` the first access to the lazy metrics after it."""
    beta = float(betas[0]) if len(betas) == 1 else betas
    algorithm = make("ipo-md", beta=beta, tau=TAU)
    with threads_unpinned(threads):
        wall, cpu = time.perf_counter(), time.process_time()
        run = simulate(algorithm, GAME, steps=steps, mode="exact", lr=LR, record_every=steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    metrics = time.perf_counter()
    values = {name: getattr(run, name) for name in METRICS}
    metrics = time.perf_counter() - metrics
    return {
        "configs": len(betas),
        "steps": steps,
        "threads": threads,
        "wall_s": wall,
        "cpu_s": cpu,
        "metrics_s": metrics,
        "rate": len(betas) * steps / wall,
        "max_kl_to_fixed_point": float(np.max(values["kl_to_fixed_point"][-1])),
        "final_log_probs": run.log_probs[-1],  # [C, X, Y]; dropped from the JSON
    }


def naive_simulate(betas: np.ndarray, steps: int) -> np.ndarray:
    """The baseline: IPO-MD's exact dynamics as written without this package, on GAME (one prompt, uniform π_ref).

    Every pair (y, y') weighted by the mixture π^{1−β} π_ref^β of both sides (under a stop-gradient, IPO-MD
    Algorithm 3), the population loss Σ w [p (h − 1/2τ)² + (1 − p)(−h − 1/2τ)²] with
    h = log π(y)/π_ref(y) − log π(y')/π_ref(y'), ``torch.autograd.grad``, and a plain gradient step on the [C, Y]
    logits, started at π_ref as ``simulate`` starts. Returns the final log-probabilities [C, 1, Y].
    """
    P = torch.tensor(GAME.P[0])  # [Y, Y]
    log_ref = torch.tensor(GAME.ref.log_probs[0])  # [Y]
    beta = torch.tensor(betas)[:, None]  # [C, 1]
    logits = log_ref.repeat(len(betas), 1).requires_grad_()  # [C, Y]
    for _ in range(steps):
        log_pi = torch.log_softmax(logits, -1)
        with torch.no_grad():
            mixture = torch.softmax((1 - beta) * log_pi + beta * log_ref, -1)
            weight = mixture[:, :, None] * mixture[:, None, :]  # [C, Y, Y]: every pair's probability
        r = log_pi - log_ref
        h = r[:, :, None] - r[:, None, :]
        loss = (weight * (P * (h - 0.5 / TAU) ** 2 + (1 - P) * (-h - 0.5 / TAU) ** 2)).sum()
        (grad,) = torch.autograd.grad(loss, logits)
        with torch.no_grad():
            logits -= LR * grad
    return torch.log_softmax(logits.detach(), -1)[:, None].numpy()


def timed_naive(betas: np.ndarray, steps: int) -> dict:
    """One timed :func:`naive_simulate` with one intra-op thread: ``simulate``'s own setting, and the naive
    simulator's faster one on these machines (two threads made it 10-30x slower with the other core busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        final = naive_simulate(betas, steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        torch.set_num_threads(before)
    return {"configs": len(betas), "steps": steps, "threads": 1, "wall_s": wall, "cpu_s": cpu,
            "rate": len(betas) * steps / wall, "final_log_probs": final}


def _median(runs: list[dict]) -> dict:
    """The run with the median wall time (the upper median for an even count)."""
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


# ====================================================================== table 1: batched vs naive and sequential
def bench_batched(steps: int, configs: int, sequential: int, threads: int, repeats: int) -> dict:
    betas = np.linspace(0.0, 1.0, configs)
    runs, naive_runs = [], []
    for _ in tqdm(range(repeats), desc="batched and naive, interleaved", file=sys.stderr, leave=False):
        runs.append(timed_simulate(betas, steps, threads))  # interleaved: background load falls on both alike
        naive_runs.append(timed_naive(betas, steps))
    batched, naive = _median(runs), _median(naive_runs)
    naive_difference = max(_max_difference(r["final_log_probs"], n["final_log_probs"])
                           for r, n in zip(runs, naive_runs))
    picked = np.unique(np.linspace(0, configs - 1, min(sequential, configs)).round().astype(int))
    alone = [
        timed_simulate(betas[[i]], steps, threads)
        for i in tqdm(picked, desc="one configuration at a time", file=sys.stderr, leave=False)
    ]
    finals = [(batched["final_log_probs"][i], r["final_log_probs"][0]) for i, r in zip(picked, alone)]
    difference = max(float(np.abs(a - b).max()) for a, b in finals)
    wall, cpu = sum(r["wall_s"] for r in alone), sum(r["cpu_s"] for r in alone)
    sequential_row = {
        "configs_run": len(alone),
        "indices": picked.tolist(),
        "steps": steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "metrics_s": sum(r["metrics_s"] for r in alone),
        "rate": len(alone) * steps / wall,
        "extrapolated_s": wall / len(alone) * configs,
        "extrapolated_cpu_s": cpu / len(alone) * configs,
    }
    full = configs == CONFIGS and steps == STEPS
    naive_speedup = naive["wall_s"] / batched["wall_s"]
    return {
        "batched": batched,
        "naive": naive,
        "naive_speedup": naive_speedup,
        "naive_cpu_speedup": naive["cpu_s"] / batched["cpu_s"],
        "naive_speedups": [n["wall_s"] / r["wall_s"] for r, n in zip(runs, naive_runs)],
        "naive_max_abs_difference": naive_difference,
        "naive_agree": naive_difference <= AGREEMENT_TOL,
        "naive_target_met": naive_speedup >= NAIVE_TARGET,
        "sequential": sequential_row,
        "speedup": sequential_row["extrapolated_s"] / batched["wall_s"],
        "cpu_speedup": sequential_row["extrapolated_cpu_s"] / batched["cpu_s"],
        "max_abs_difference": difference,
        "bitwise_identical": all(np.array_equal(a, b) for a, b in finals),
        "agree": difference <= AGREEMENT_TOL,
        "target_met": (batched["wall_s"] <= TARGET_SECONDS) if full else None,
    }


# ============================================================================== table 2: C x threads, naive
def bench_sizes(sizes, steps: int, repeats: int) -> list[dict]:
    """For each C, the median over ``repeats`` of one-thread and default-thread ``simulate`` runs and of one-thread
    naive runs, interleaved; each naive run's final policies checked against the simulate run's."""
    settings = sorted({1, DEFAULT_THREADS})
    samples = {(c, t): [] for c in sizes for t in (*settings, "naive")}
    difference = {c: 0.0 for c in sizes}
    for configs, _ in tqdm([(c, r) for c in sizes for r in range(repeats)], desc="sizes", file=sys.stderr):
        betas = np.linspace(0.0, 1.0, configs)
        for threads in settings:
            samples[(configs, threads)].append(timed_simulate(betas, steps, threads))
        naive = timed_naive(betas, steps)
        samples[(configs, "naive")].append(naive)
        simulated = samples[(configs, 1)][-1]["final_log_probs"]
        difference[configs] = max(difference[configs], _max_difference(simulated, naive["final_log_probs"]))
    rows = []
    for configs in sizes:
        row = {"configs": configs, "steps": steps, "naive_max_abs_difference": difference[configs],
               "naive_agree": difference[configs] <= AGREEMENT_TOL}
        for threads in (*settings, "naive"):
            row[f"t{threads}" if threads != "naive" else "naive"] = _median(samples[(configs, threads)])
        row["naive_over_one"] = row["naive"]["wall_s"] / row["t1"]["wall_s"]
        if DEFAULT_THREADS != 1:
            row["default_over_one"] = row[f"t{DEFAULT_THREADS}"]["wall_s"] / row["t1"]["wall_s"]
        rows.append(row)
    return rows


# ================================================================================================ output
def batched_table(result: dict, configs: int) -> str:
    b, n, s = result["batched"], result["naive"], result["sequential"]
    lines = [
        "| run | configurations | steps | simulate [s] | configuration-steps/s | CPU [s] | metrics afterwards [s] |",
        "|---|---:|---:|---:|---:|---:|---:|",
        (
            f"| batched (`simulate`) | {b['configs']} | {b['steps']:,} | {b['wall_s']:.2f} | {b['rate']:,.0f} "
            f"| {b['cpu_s']:.2f} | {b['metrics_s']:.2f} |"
        ),
        (
            f"| naive simulator (the baseline) | {n['configs']} | {n['steps']:,} | {n['wall_s']:.2f} "
            f"| {n['rate']:,.0f} | {n['cpu_s']:.2f} | — |"
        ),
        (
            f"| one at a time ({s['configs_run']} of {configs}) | 1 each | {s['steps']:,} | {s['wall_s']:.2f} "
            f"| {s['rate']:,.0f} | {s['cpu_s']:.2f} | {s['metrics_s']:.2f} |"
        ),
        (
            f"| one at a time, extrapolated to {configs} | 1 each | {s['steps']:,} | {s['extrapolated_s']:.1f} "
            f"| {s['rate']:,.0f} | {s['extrapolated_cpu_s']:.1f} | — |"
        ),
    ]
    if result["target_met"] is None:
        target = f"— (needs {CONFIGS} configurations × {STEPS:,} steps; this run is smaller)"
    else:
        target = (
            f"{'met' if result['target_met'] else '**NOT met**'}: {b['wall_s']:.2f} s against ≤ {TARGET_SECONDS:g} s "
            f"({b['rate'] / 1e6:.2f} M against ≥ {TARGET_RATE / 1e6:.2f} M configuration-steps/s)"
        )
    each = ", ".join(f"{r:.1f}" for r in result["naive_speedups"])
    lines += [
        "",
        (
            f"- speed-up over the naive simulator: **{result['naive_speedup']:.1f}×** (median wall times of "
            f"{len(result['naive_speedups'])} interleaved runs each; per pair of runs: {each}), "
            f"{result['naive_cpu_speedup']:.1f}× (CPU time); target ≥ {NAIVE_TARGET:g}×: "
            f"{'met' if result['naive_target_met'] else '**NOT met**'}"
        ),
        (
            f"- final policies, batched vs naive (all {b['configs']} configurations): max |Δ log π| = "
            f"{result['naive_max_abs_difference']:.1e}; within {AGREEMENT_TOL:g}: "
            f"{'yes' if result['naive_agree'] else '**NO**'}"
        ),
        (
            f"- speed-up, batched vs one at a time: **{result['speedup']:,.0f}×** (wall time of the `simulate` "
            f"call), {result['cpu_speedup']:,.0f}× (its CPU time)"
        ),
        (
            f"- final policies, batched vs one at a time (configurations {s['indices']}): max |Δ log π| = "
            f"{result['max_abs_difference']:.1e}; bitwise identical: {'yes' if result['bitwise_identical'] else 'no'}; "
            f"within {AGREEMENT_TOL:g}: {'yes' if result['agree'] else '**NO**'}"
        ),
        f"- convergence: max over configurations of KL(π_T ‖ eq. 13 fixed point) = {b['max_kl_to_fixed_point']:.1e}",
        f"- target ({CONFIGS} configurations × {STEPS:,} steps in ≤ {TARGET_SECONDS:g} s): {target}",
    ]
    return "\n".join(lines)


def sizes_table(rows: list[dict]) -> str:
    n = DEFAULT_THREADS
    head = "| C | steps | simulate, 1 thread: configuration-steps/s | simulate [s] "
    rule = "|---:|---:|---:|---:|"
    if n != 1:
        head += f"| simulate, {n} threads: configuration-steps/s | time {n} threads ÷ 1 thread "
        rule += "---:|---:|"
    head += "| naive, 1 thread: configuration-steps/s | naive [s] | simulate ÷ naive (speed-up) | max \\|Δ log π\\| "
    rule += "---:|---:|---:|---:|"
    lines = [head + "|", rule]
    for r in rows:
        cells = [str(r["configs"]), f"{r['steps']:,}", f"{r['t1']['rate']:,.0f}", f"{r['t1']['wall_s']:.3f}"]
        if n != 1:
            cells += [f"{r[f't{n}']['rate']:,.0f}", f"{r['default_over_one']:.2f}"]
        cells += [f"{r['naive']['rate']:,.0f}", f"{r['naive']['wall_s']:.3f}", f"{r['naive_over_one']:.1f}×",
                  f"{r['naive_max_abs_difference']:.1e}" + ("" if r["naive_agree"] else " **NO**")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "torch_default_threads": DEFAULT_THREADS,
        "machine": platform.machine(),
        "package": str(Path(preference_games.__file__).resolve().parent),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _strip(value):
    """The results without the policy arrays, for JSON."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "final_log_probs"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


# ================================================================================================== main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK['steps']:,} steps, {QUICK['sequential']} one-at-a-time runs, "
        f"C in {QUICK['sweep']} at {QUICK['sweep_steps']} steps",
    )
    parser.add_argument("--part", choices=("all", "batched", "sizes"), default="all")
    parser.add_argument("--steps", type=int, help=f"steps of table 1 (default {STEPS:,})")
    parser.add_argument("--configs", type=int, default=CONFIGS, help=f"configurations of table 1 (default {CONFIGS})")
    parser.add_argument("--sequential", type=int, help=f"configurations run one at a time (default {SEQUENTIAL})")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for table 1 (default 1: the pin)")
    parser.add_argument(
        "--naive-repeats", type=int, default=NAIVE_REPEATS,
        help=f"interleaved batched and naive runs of table 1, medians shown (default {NAIVE_REPEATS})",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help=f"C values of table 2 (default {' '.join(map(str, SWEEP))})"
    )
    parser.add_argument("--sweep-steps", type=int, help=f"steps of table 2 (default {SWEEP_STEPS:,})")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell of table 2, median shown (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {}
    steps = args.steps or quick.get("steps", STEPS)
    sequential = args.sequential or quick.get("sequential", SEQUENTIAL)
    sizes = args.sizes or quick.get("sweep", SWEEP)
    sweep_steps = args.sweep_steps or quick.get("sweep_steps", SWEEP_STEPS)

    # warm-up: lazy imports and first-call costs out of the timings
    timed_simulate(np.linspace(0.0, 1.0, 4), 20)
    timed_naive(np.linspace(0.0, 1.0, 4), 20)

    env = environment()
    results = {"environment": env, "args": vars(args), "batched": None, "sizes": []}
    command = " ".join(["python benchmarks/bench_dynamics.py", *(sys.argv[1:] if argv is None else argv)])
    print(
        f"python {env['python']}, torch {env['torch']}, numpy {env['numpy']}, {env['cpus']} CPUs, torch default "
        f"threads {env['torch_default_threads']}, package {env['package']}, {env['date']}; "
        f"command: `{command}`\n"
    )
    failed = False
    if args.part in ("all", "batched"):
        print(f"{time.strftime('%H:%M:%S')} batched: {args.configs} configurations × {steps:,} steps", file=sys.stderr)
        result = bench_batched(steps, args.configs, sequential, args.threads, args.naive_repeats)
        results["batched"] = _strip(result)
        failed |= not (result["agree"] and result["naive_agree"])
        print(
            f"**IPO-MD exact dynamics, batched vs the naive simulator and vs one configuration at a time** "
            f"(`rps_variant(antisymmetrize=True)`, τ = {TAU:g}, β = linspace(0, 1, {args.configs}), lr = {LR:g}, "
            f"record_every = steps, torch threads = {args.threads}; the naive simulator: 1 thread)\n"
        )
        print(batched_table(result, args.configs) + "\n")
    if args.part in ("all", "sizes"):
        rows = bench_sizes(sizes, sweep_steps, args.repeats)
        results["sizes"] = _strip(rows)
        failed |= not all(r["naive_agree"] for r in rows)
        print(
            f"**Configuration-steps per second against C: `simulate` with 1 thread and torch's default "
            f"{DEFAULT_THREADS}, the naive simulator with 1 thread** (same workload, β = linspace(0, 1, C), "
            f"{sweep_steps:,} steps; median of {args.repeats}; the {DEFAULT_THREADS}-thread runs bypass `simulate`'s "
            f"one-thread pin; max |Δ log π|: final policies, naive vs simulate)\n"
        )
        print(sizes_table(rows) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
