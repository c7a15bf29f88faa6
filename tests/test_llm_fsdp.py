"""Sharded training with torch's own FSDP2: two gloo processes, each holding half of every parameter, compute what
one unsharded process computes with the same global batch, to float tolerance; the sharded run's checkpoints
resume exactly and its final model is the complete one."""

import sys

import pytest
import torch

pytest.importorskip("transformers")

from test_cli import run_error  # noqa: E402
from test_llm_distributed import LAUNCHERS, ROOT, free_port, run  # noqa: E402

from llm_backend import TransformerPolicy  # noqa: E402
from llm_backend.trainer import STATE_FILE, TIMING, Trainer  # noqa: E402
from preference_games.algorithms import make  # noqa: E402
from preference_games.sequences import SequenceOracle, sequence_game_by_name  # noqa: E402

CONFIG = ROOT / "configs" / "accelerate_fsdp.yaml"
ACCELERATE_FSDP = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
                   "--main_process_port"]


def rows_without_timing(metrics: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in metrics["rows"]]


def assert_same_run(two, metrics_two, one, metrics_one, tolerance: float) -> None:
    """Parameters and every metric equal within ``tolerance``."""
    assert two.keys() == one.keys()
    for name in one:
        assert torch.allclose(two[name], one[name], atol=tolerance, rtol=0), name
    rows_two, rows_one = rows_without_timing(metrics_two), rows_without_timing(metrics_one)
    assert len(rows_two) == len(rows_one)
    for a, b in zip(rows_two, rows_one):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=tolerance, rel=0), key


def check_against_one_process(tmp_path, command, algorithm: str, *options: str) -> None:
    """2 processes launched by ``command`` (the script's ``options``: --fsdp, unless the launcher asks for FSDP)
    against one unsharded process (the same options but --fsdp)."""
    two, metrics_two = run(command, tmp_path / "two", 1, "--algo", algorithm, *options)  # each: 1 micro-batch
    alone = [option for option in options if option != "--fsdp"]
    one, metrics_one = run([sys.executable], tmp_path / "one", 2, "--algo", algorithm, *alone)  # unsharded, both
    assert metrics_two["world"] == 2 and metrics_one["world"] == 1
    assert metrics_two["held"] == [pytest.approx(0.5, abs=0.01)] * 2  # sharded: each process holds half
    assert [r["pairs"] for r in rows_without_timing(metrics_two)[1:]] == [12] * 4  # the global batch
    assert_same_run(two, metrics_two, one, metrics_one, 1e-12)
    # the final checkpoint is the complete model, gathered onto rank 0, and any HF loader reads it
    final = TransformerPolicy.from_pretrained(str(tmp_path / "two" / "final"), dtype=torch.float64,
                                              attn_implementation="eager")
    for name, p in final.named_parameters():
        assert torch.equal(p, two[name]), name


def test_two_fsdp_processes_equal_one_unsharded_process_with_the_same_global_batch(tmp_path):
    """INPO: π_ref and the previous iterate π_t are sharded copies of the sharded policy."""
    check_against_one_process(tmp_path, LAUNCHERS["torchrun"](), "inpo", "--fsdp")


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["bpo-ema", "iopo", "ipo-md", "bpo-ensemble", "optimistic-ipo"])
def test_every_role_sharded(algorithm, tmp_path):
    """The EMA averaged shard by shard, IOPO's trained adversary, IPO-MD's mixture sampled with both models gathered,
    BPO's ensemble members (perturbed, then sharded), an optimistic update's previous gradient."""
    check_against_one_process(tmp_path, LAUNCHERS["torchrun"](), algorithm, "--fsdp")


@pytest.mark.slow
def test_text_responses_that_end_at_different_lengths_on_each_process(tmp_path):
    """Text: a process whose responses have all reached EOS stops decoding first; sampling with the model gathered,
    it waits in no collective the other process does not join."""
    check_against_one_process(tmp_path, LAUNCHERS["torchrun"](), "online-ipo", "--fsdp", "--text")


@pytest.mark.slow
def test_accelerate_launch_with_the_fsdp_config_file(tmp_path):
    """configs/accelerate_fsdp.yaml: accelerate launch starts the processes and the trainer shards on its word."""
    check_against_one_process(tmp_path, ACCELERATE_FSDP + [free_port()], "inpo")


def test_a_sharded_checkpoint_resumes_exactly(tmp_path):
    """Killed after step 2 of 4 (in the middle of INPO's second outer iteration): resumed from checkpoint-2 by two new
    FSDP processes, each loading its own shards, it ends bit for bit where the uninterrupted run ends."""
    whole, metrics_whole = run(LAUNCHERS["torchrun"](), tmp_path / "whole", 1, "--fsdp", "--save-every", "2")
    checkpoint = tmp_path / "whole" / "checkpoint-2"
    assert (checkpoint / STATE_FILE).is_file() and (checkpoint / "trainer_state-rank-1.pt").is_file()
    resumed, metrics_resumed = run(LAUNCHERS["torchrun"](), tmp_path / "resumed", 1, "--fsdp",
                                   "--resume", str(checkpoint))
    # it continued (the first two rows, wall times included, are the checkpoint's), and it ended where the whole did
    assert metrics_resumed["rows"][:3] == metrics_whole["rows"][:3]
    assert_same_run(resumed, metrics_resumed, whole, metrics_whole, 0.0)
    game = sequence_game_by_name("rps-sequences")  # one process cannot take two processes' shards
    policy, oracle = TransformerPolicy.for_game(game, dtype=torch.float64), SequenceOracle(game)
    alone = Trainer(make("inpo", inner_steps=2), policy, oracle, oracle, steps=4, game=game, batch=6)
    with pytest.raises(ValueError, match="the FSDP shards of 2 processes: resume it on 2 processes with FSDP"):
        alone.resume(str(checkpoint))


def test_fsdp_needs_several_processes():
    game = sequence_game_by_name("rps-sequences")
    policy, oracle = TransformerPolicy.for_game(game, dtype=torch.float64), SequenceOracle(game)
    with pytest.raises(ValueError, match="launch 2 or more"):
        Trainer(make("online-ipo"), policy, oracle, oracle, steps=1, fsdp=True)
    with pytest.raises(ValueError, match="FSDP with LoRA is not supported"):
        Trainer(make("online-ipo"), policy.with_lora(r=2), oracle, oracle, steps=1, fsdp=True)


def test_train_fsdp_in_one_process_is_one_line_of_error(capsys, tmp_path):
    error = run_error(capsys, "train", "--algo", "online-ipo", "--model", "tiny", "--game", "rps-sequences",
                      "--steps", "1", "--out", str(tmp_path / "run"), "--fsdp")
    assert "FSDP shards a model across processes: launch 2 or more" in error


def test_an_accelerate_fsdp_setting_the_trainer_does_not_implement_is_refused(monkeypatch):
    game = sequence_game_by_name("rps-sequences")
    policy, oracle = TransformerPolicy.for_game(game, dtype=torch.float64), SequenceOracle(game)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_OFFLOAD_PARAMS", "true")
    with pytest.raises(ValueError, match="FSDP_OFFLOAD_PARAMS=true"):
        Trainer(make("online-ipo"), policy, oracle, oracle, steps=1)
