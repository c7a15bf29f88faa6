"""Kill and resume: a run stopped anywhere and resumed from its latest checkpoint gives the metrics of an
uninterrupted run, bit for bit on a CPU (the wall-clock fields excepted), and a crash during a save leaves nothing
that loads."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from llm_backend import TransformerPolicy  # noqa: E402
from llm_backend.data import PromptDataset  # noqa: E402
from llm_backend.oracles import CallableOracle  # noqa: E402
from llm_backend.text import TextCodec, char_tokenizer  # noqa: E402
from llm_backend.trainer import STATE_FILE, TIMING, Trainer, latest_checkpoint  # noqa: E402
from preference_games.algorithms import make  # noqa: E402
from preference_games.sequences import SequenceOracle, sequence_game_by_name  # noqa: E402

GAME = sequence_game_by_name("rps-sequences")
ROOT = Path(__file__).resolve().parents[1]


class Killed(Exception):
    """Stands in for the process dying: raised from inside a step, after the last checkpoint."""


def trainer(algorithm, out, **options) -> Trainer:
    policy = TransformerPolicy.for_game(GAME, seed=0, dtype=torch.float64, init_scale=0.1)
    oracle = SequenceOracle(GAME)
    options = {"steps": 8, "batch": 8, "eval_batch": 8, "eval_every": 2, "save_every": 3, "optimizer": "adamw",
               "lr": 1e-2, **options}
    return Trainer(algorithm, policy, oracle, oracle, game=GAME, out=str(out), **options)


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


class DyingStep:
    """The trainer's step, dying at the update of step ``at`` (after that step's schedule hook ran)."""

    def __init__(self, step, at: int):
        self.inner, self.at, self.calls = step, at, 0

    @property
    def optimizer(self):
        return self.inner.optimizer

    def __call__(self):
        if self.calls == self.at:
            raise Killed
        self.calls += 1
        return self.inner()


def kill(run: Trainer, at: int) -> None:
    """Train ``run`` until it dies during step ``at`` (0-based)."""
    run.step = DyingStep(run.step, at)
    with pytest.raises(Killed):
        run.train()


def interrupted_then_resumed(make_algorithm, tmp_path, kill_at, **options):
    """Run until step ``kill_at`` dies, then resume a fresh trainer from the latest checkpoint."""
    kill(trainer(make_algorithm(), tmp_path / "run", **options), kill_at)
    again = trainer(make_algorithm(), tmp_path / "run", **options)
    checkpoint = latest_checkpoint(str(tmp_path / "run"))
    again.resume(checkpoint)
    return checkpoint, again.train(), again


@pytest.mark.parametrize("name, params, kill_at", [
    ("inpo", {"inner_steps": 4}, 5),        # INPO's π_t refreshes at steps 0 and 4: resumed at 3, killed at 5
    ("bpo", {"total_steps": 8, "annotations": 2}, 5),  # the behaviour policy refreshes every 8/2 = 4 steps: the same
    ("optimistic-ipo", {}, 4),              # the update rule's previous gradient is state too
    ("bpo-ema", {}, 7),                     # the EMA's average is state
    ("iopo", {}, 7),                        # an adversary trained beside the policy, and its own optimiser state
])
def test_a_killed_run_resumes_to_the_uninterrupted_metrics(name, params, kill_at, tmp_path):
    algorithm = lambda: make(name, **params)  # noqa: E731
    whole = trainer(algorithm(), tmp_path / "whole").train()
    checkpoint, resumed, again = interrupted_then_resumed(algorithm, tmp_path, kill_at)
    assert checkpoint.endswith(f"checkpoint-{3 * (kill_at // 3)}")  # saves every 3 steps; the kill came after one
    assert without_timing(resumed.metrics) == without_timing(whole.metrics)
    assert all(torch.equal(p, q) for p, q in zip(resumed.policy.parameters(), whole.policy.parameters()))
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert without_timing(lines) == without_timing(whole.metrics)  # the file is rewritten from the checkpoint


def test_resuming_text_runs_continues_the_data_walk(tmp_path):
    """Prompts from a dataset: the walk's position and permutation are part of the checkpoint (two micro-batches,
    each with its own walk)."""
    tokenizer = char_tokenizer()
    codec = TextCodec(tokenizer)

    def run(out, kill_at=None):
        prompts = PromptDataset(["Hi.", "Why?", "Count.", "Name one.", "Go."], codec)
        oracle = CallableOracle(lambda x, a, b: float(len(a) > len(b)), codec)
        policy = TransformerPolicy.tiny(tokenizer, 4, seed=0, dtype=torch.float64)
        return Trainer(make("online-ipo"), policy, oracle, prompts, steps=6, batch=2, accumulate=2, eval_batch=2,
                       eval_every=3, save_every=2, lr=1e-2, out=str(out))

    whole = run(tmp_path / "whole").train()
    kill(run(tmp_path / "run"), 3)
    again = run(tmp_path / "run")
    again.resume(latest_checkpoint(str(tmp_path / "run")))
    assert without_timing(again.train().metrics) == without_timing(whole.metrics)


def test_a_crash_during_a_save_leaves_nothing_that_loads(tmp_path):
    out = tmp_path / "run"
    run = trainer(make("online-ipo"), out, steps=3, save_every=3)
    run.train()
    assert latest_checkpoint(str(out)) == str(out / "checkpoint-3")
    # a save that died before its rename, and a directory without the state file
    (out / "checkpoint-9.partial").mkdir()
    (out / "checkpoint-9.partial" / STATE_FILE).write_bytes(b"")
    (out / "checkpoint-12").mkdir()
    assert latest_checkpoint(str(out)) == str(out / "checkpoint-3")
    other = trainer(make("inpo"), out, steps=3)
    with pytest.raises(ValueError, match="was written by online-ipo"):
        other.resume(str(out / "checkpoint-3"))


def _cli(out, *extra):
    return [sys.executable, "-m", "preference_games", "train", "--algo", "inpo", "--param", "inner_steps=5", "--model",
            "tiny", "--game", "rps-sequences", "--steps", "40", "--batch", "8", "--eval-batch", "8", "--eval-every", "3",
            "--save-every", "2", "--out", str(out), "--json", *extra]


def test_the_command_resumes_a_killed_process(tmp_path):
    """A real SIGKILL, wherever it lands, then `train --resume DIR`: the metrics equal an uninterrupted run's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    whole = json.loads(subprocess.run(_cli(tmp_path / "whole"), env=env, capture_output=True, text=True,
                                      check=True).stdout)
    out = tmp_path / "run"
    process = subprocess.Popen(_cli(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while latest_checkpoint(str(out)) is None:  # 19 more checkpoints to write: it cannot end before the kill
        assert process.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = subprocess.run([sys.executable, "-m", "preference_games", "train", "--resume", str(out), "--json"],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["duality_gap"] == whole["duality_gap"] and report["kl_to_ref"] == whole["kl_to_ref"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert without_timing(rows) == without_timing(expected)


def test_resume_refuses_other_options_and_a_folder_without_a_run(tmp_path, capsys):
    from preference_games.cli import main

    assert main(["train", "--resume", str(tmp_path), "--lr", "0.1"]) == 2
    assert "drop --lr" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no run was started there" in capsys.readouterr().err
