"""benchmarks/bench_trl.py and benchmarks/gpu_check.py: their quick runs.

bench_trl's quick run must pass its own checks (our two-cache mixture's tokens equal full recomputation's, TRL's
recomputing wrapper gives the same tokens, every trainer loss is finite) and report every figure; without TRL it
must say so and still run ours. gpu_check must exit 0 with its message where there is no GPU, and its GPU code must
run end to end on the CPU (``--cpu-dry-run``) with finite figures.
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_trl.py"
GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"
HAS_TRL = importlib.util.find_spec("trl") is not None


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load(BENCH)


@pytest.fixture(scope="module")
def gpu_check():
    return _load(GPU_CHECK)


def _positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.skipif(not HAS_TRL, reason="TRL (the bench extra) is not installed")
def test_quick_run_checks_and_figures(tmp_path):
    """In a fresh interpreter, as a user runs it (TRL's imports stay out of the test process)."""
    out = tmp_path / "trl.json"
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    checks = result["checks"]
    for name in ("ours_greedy_equals_recompute", "ours_seeded_equals_recompute",
                 "trl_recompute_greedy_equals_recompute", "trainer_losses_finite"):
        assert checks[name] is True, name
    trainer = result["trainer"]
    for name in ("ours", "trl_best", "trl_default"):
        assert _positive(trainer[name]["pairs_per_s"]) and trainer[name]["steps_timed"] >= 1
    assert trainer["ratio_vs_trl_best"] == pytest.approx(trainer["ours"]["pairs_per_s"]
                                                         / trainer["trl_best"]["pairs_per_s"])
    mixture = result["mixture"]
    for name in ("ours_mixture", "trl_mixture_recompute", "hf_plain_generate", "ours_plain_sample"):
        assert _positive(mixture[name]["median_s"])
    assert set(result["targets"]) == {"trainer pairs/s, ours ÷ TRL best", "mixture, TRL recompute ÷ ours"}
    assert result["versions"]["trl"] and "| ours (`Trainer`, online-ipo) |" in done.stdout


def test_quick_run_without_trl_says_so_and_runs_ours(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "trl", None)  # ``import trl`` now fails as where it is not installed
    out = tmp_path / "ours.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    assert "TRL is not installed" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["checks"]["ours_greedy_equals_recompute"] and result["checks"]["ours_seeded_equals_recompute"]
    assert set(result["trainer"]) == {"ours"} and "targets" not in result
    assert _positive(result["trainer"]["ours"]["pairs_per_s"])


def test_mixture_check_fails_on_a_wrong_sampler(bench, monkeypatch):
    """The check the timings stand on can fail: a sampler that ignores the reference (β taken as 0) is caught."""
    wrong = bench.TransformerPolicy.mixture_sampler
    monkeypatch.setattr(bench.TransformerPolicy, "mixture_sampler", lambda self, other, beta: wrong(self, other, 0.0))
    with pytest.raises(bench.CheckFailed, match="differ from full recomputation"):
        bench.mixture_checks(bench.char_tokenizer(), bench.QUICK, with_trl=False)


def test_gpu_check_without_a_gpu_says_so_and_exits_0(gpu_check, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--json", str(out)]) == 0
    assert "no GPU found" in capsys.readouterr().out and not out.exists()


def test_gpu_check_code_runs_on_the_cpu(gpu_check, tmp_path):
    out = tmp_path / "dry.json"
    assert gpu_check.main(["--cpu-dry-run", "--json", str(out), "--hidden", "64", "--intermediate", "64",
                           "--layers", "1", "--batch", "2", "--new-tokens", "4", "--steps", "2"]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["bf16_autocast"] is False and result["mfu"] is None
    assert _positive(result["tokens_per_s"]) and all(math.isfinite(loss) for loss in result["losses"])
    assert result["bf16_logprob_max_abs_diff"] == 0.0  # autocast disabled on the CPU: the same float32 pass
    assert result["peak_memory_gib"] is None
