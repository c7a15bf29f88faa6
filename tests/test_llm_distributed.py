"""Data-parallel training with torch's own engine: two gloo processes under torchrun compute what one process
computes with the same global batch (the same micro-batch slots), to float tolerance."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from llm_backend import TransformerPolicy  # noqa: E402
from llm_backend.trainer import TIMING  # noqa: E402
from preference_games.sequences import sequence_game_by_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "distributed_train.py"


def run(command, out, accumulate: int, *options: str):
    """tests/scripts/distributed_train.py launched by ``command`` (its ``options`` after OUT and ACCUMULATE): the
    trained parameters and metrics.json."""
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command + [str(SCRIPT), str(out), str(accumulate), *options], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "metrics.json") as handle:
        return torch.load(out / "parameters.pt"), json.load(handle)


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


LAUNCHERS = {
    "torchrun": lambda: [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                         free_port()],
    # accelerate's DDP launcher (it is torchrun underneath; --multi_gpu with no GPU runs gloo processes on the CPU)
    "accelerate": lambda: [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           "--main_process_port", free_port()],
}


@pytest.mark.parametrize("launcher", [pytest.param("torchrun"), pytest.param("accelerate", marks=pytest.mark.slow)])
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(launcher, tmp_path):
    two, metrics_two = run(LAUNCHERS[launcher](), tmp_path / "two", 1)  # each process: 1 micro-batch of 6 pairs
    one, metrics_one = run([sys.executable], tmp_path / "one", 2)  # one process: both micro-batches
    assert metrics_two["world"] == 2 and metrics_one["world"] == 1
    assert two.keys() == one.keys()
    for name in one:
        assert torch.allclose(two[name], one[name], atol=1e-12, rtol=0), name
    initial = TransformerPolicy.for_game(sequence_game_by_name("rps-sequences"), seed=0, dtype=torch.float64,
                                         init_scale=0.1)
    assert any(not torch.allclose(p, one[name]) for name, p in initial.named_parameters())  # training moved it
    rows_two = [{k: v for k, v in r.items() if k not in TIMING} for r in metrics_two["rows"]]
    rows_one = [{k: v for k, v in r.items() if k not in TIMING} for r in metrics_one["rows"]]
    assert [r["pairs"] for r in rows_two[1:]] == [12] * 4  # the global batch: 2 processes x 6 pairs
    for a, b in zip(rows_two, rows_one):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-12, rel=0), key
