"""benchmarks/bench_peers.py: runs without the peers (and says so), checks every answer before it shows a time, and
its gaps are the library's.

The peers (the ``bench`` extra) are hidden from the first run by putting None in ``sys.modules`` for them, which
makes their import fail exactly as it does where they are not installed.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from preference_games.equilibria import duality_gap
from preference_games.games import random_intransitive

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_peers.py"
PEER_MODULES = ("nashpy", "pyspiel", "open_spiel", "pygambit", "cvxpy", "ecos")
PEER_COLUMNS = ("Nashpy LP", "OpenSpiel LP", "Gambit LP", "Gambit logit QRE")


def _load():
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(hide_peers: bool, *args: str) -> subprocess.CompletedProcess:
    hide = f"import sys; sys.modules.update(dict.fromkeys({PEER_MODULES!r})); " if hide_peers else ""
    code = (f"{hide}import runpy, sys; sys.argv = [{str(SCRIPT)!r}, '--quick', *{args!r}]; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _tables(output: str, header: str) -> list[dict]:
    """The rows, as {column: cell}, of every Markdown table whose header line starts with ``header``."""
    rows, columns = [], None
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith(header):
            columns = cells
        elif columns and line.startswith("|") and not line.startswith("|-"):
            rows.append(dict(zip(columns, cells)))
        elif not line.startswith("|"):
            columns = None
    return rows


def test_quick_run_without_the_peers_skips_them_with_a_message():
    run = _run(hide_peers=True)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    for distribution in ("nashpy", "open_spiel", "pygambit", "cvxpy"):
        assert f"skipping {distribution}: not installed" in out
    assert "OpenSpiel: not installed" in out
    lp, regularized = _tables(out, "| n | ours: time"), _tables(out, "| n | τ | ours: time")
    assert [r["n"] for r in lp] == ["10", "30"] and [r["n"] for r in regularized] == ["10", "30"]
    for row in lp + regularized:
        assert row["ours: time"].endswith(("ms", " s"))
        for peer in PEER_COLUMNS:
            assert row.get(f"{peer}: ÷ ours (time)", "not installed") == "not installed"
    for row in lp:  # scipy, and so HiGHS, is always there
        for highs in ("HiGHS dual simplex", "HiGHS interior point", "HiGHS default"):
            assert "×" in row[f"{highs}: ÷ ours (time)"]
    assert all("Gambit logit QRE: ÷ ours (time)" in row for row in regularized)


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("nashpy", "pyspiel", "pygambit", "cvxpy")),
                    reason="the bench extra is not installed")
def test_quick_run_with_the_peers_checks_and_times_every_one():
    run = _run(False, "--sizes", "10")  # n = 10 alone: the test suite's time is short
    assert run.returncode == 0, run.stderr[-2000:]
    assert "skipping" not in run.stdout
    assert "refused (AssertionError" in run.stdout  # OpenSpiel on the constant-sum game itself
    details = _tables(run.stdout, "| n | τ | solver |")
    assert {r["solver"] for r in details} >= {"ours", "HiGHS dual simplex", *PEER_COLUMNS}
    assert len(details) == 7 + 2  # seven LP solvers, then ours and Gambit's QRE
    for row in details:
        assert row["status"] == "ok", row
        assert float(row["gap"]) <= float(row["bar"])


def test_an_inaccurate_answer_is_reported_without_a_time():
    bench = _load()
    S = random_intransitive(10, seed=0).S[0]
    wrong = {"status": "ok", "seconds": 0.001, "strategies": [np.eye(10)[0]], "solver": "peer"}
    checked = bench.check(wrong, S, 0.0)
    assert checked["status"] == "inaccurate" and "gap" in checked["message"]
    assert "0.001" not in bench.cell(checked) and "ms" not in bench.cell(checked)
    checked = bench.check({"status": "ok", "seconds": 0.001, "strategies": [np.full(10, 0.1)]}, S, 0.1)
    assert checked["status"] == "inaccurate"


def test_the_benchmarks_gaps_are_the_librarys():
    """The benchmark computes both gaps itself, from the vector alone; they agree with equilibria.duality_gap."""
    bench = _load()
    game = random_intransitive(12, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.dirichlet(np.ones(12))
        assert bench.unregularized_gap(game.S[0], x) == pytest.approx(duality_gap(game, x, 0.0), rel=1e-12)
        for tau in (1.0, 0.1, 0.01):
            assert bench.regularized_gap(game.S[0], x, tau) == pytest.approx(duality_gap(game, x, tau), rel=1e-9)


def test_a_solver_that_runs_past_the_limit_is_stopped_and_reported():
    bench = _load()

    def slow(S, tau, game):
        import time

        return lambda: time.sleep(30) or [np.full(3, 1 / 3)]

    result = bench.run_limited(slow, np.zeros((3, 3)), 0.0, None, timeout=0.5)
    assert result == {"status": "timeout", "message": "> 0.5 s"}
