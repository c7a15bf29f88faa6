"""``preference-games train``: a tiny transformer on a sequence game (its gaps recomputed independently from the saved
checkpoint) and on text prompts judged by a reward model (bad input: tests/test_cli_bad_input.py)."""

import json

import pytest
import torch

pytest.importorskip("transformers")

from llm_backend import TransformerPolicy  # noqa: E402
from preference_games.cli import main  # noqa: E402
from preference_games.cli.train import TINY_INIT_SCALE  # noqa: E402
from preference_games.sequences import exact_duality_gap, sequence_game_by_name  # noqa: E402
from test_cli_bad_input import _save_classifier  # noqa: E402


def run(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_train_on_a_game_reports_gaps_the_checkpoint_reproduces(tmp_path, capsys):
    out = tmp_path / "run"
    report = run(["train", "--algo", "online-ipo", "--tau", "0.1", "--model", "tiny", "--game", "rps-sequences",
                  "--steps", "6", "--eval-every", "3", "--batch", "8", "--out", str(out), "--json"], capsys)
    game = sequence_game_by_name("rps-sequences")
    ref = TransformerPolicy.for_game(game, seed=0, dtype=torch.float64, init_scale=TINY_INIT_SCALE)
    final = TransformerPolicy.from_pretrained(out / "final", dtype=torch.float64, attn_implementation="eager")
    assert abs(report["initial_duality_gap"] - exact_duality_gap(ref, game, ref, 0.1)) < 1e-12
    assert abs(report["final_duality_gap"] - exact_duality_gap(final, game, ref, 0.1)) < 1e-12
    assert [step for step, _ in report["duality_gap"]] == [0, 3, 6]
    assert report["tau"] == 0.1 and report["batch"] == 8 and report["pairs"] == 6 * 8
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 7 and json.loads(lines[-1])["duality_gap"] == report["final_duality_gap"]


def test_train_on_text_with_a_reward_model(tmp_path, capsys):
    _save_classifier(tmp_path / "reward", labels=1)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Say hi."}\n{"prompt": "Count to three."}\n')
    capsys.readouterr()
    out = tmp_path / "run"
    report = run(["train", "--algo", "online-dpo", "--model", "tiny", "--prompts", str(prompts), "--oracle",
                  f"reward:{tmp_path / 'reward'}", "--steps", "2", "--batch", "2", "--eval-batch", "2",
                  "--max-new-tokens", "4", "--out", str(out), "--json"], capsys)
    assert "initial_duality_gap" not in report and report["oracle"].startswith("reward:")
    assert [step for step, _ in report["kl_to_ref"]] == [0, 2] and report["kl_to_ref"][0][1] == 0.0
    assert 0 <= report["win_rate_vs_ref"][-1][1] <= 1
    assert (out / "final" / "tokenizer.json").exists()  # the char tokenizer travels with the checkpoint
    # the saved model continues where it stopped: --model DIR loads it with its tokenizer and settings
    again = run(["train", "--algo", "online-dpo", "--model", str(out / "final"), "--prompts", str(prompts),
                 "--oracle", f"reward:{tmp_path / 'reward'}", "--steps", "1", "--batch", "2", "--eval-batch", "2",
                 "--out", str(tmp_path / "again"), "--json"], capsys)
    assert again["kl_to_ref"][0][1] == 0.0 and again["steps"] == 1


def test_text_output_names_what_it_measured(tmp_path, capsys):
    assert main(["train", "--algo", "ipo-md", "--model", "tiny", "--game", "rps-sequences", "--steps", "2",
                 "--batch", "4", "--eval-batch", "4", "--out", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    for fragment in ("ipo-md(beta=0.5, tau=0.1) on game rps-sequences", "duality gap at tau = 0.1", "mixture TV",
                     "KL(pi || pi_ref), estimated", "win rate against pi_ref", "metrics.jsonl"):
        assert fragment in text


def test_train_with_lora_saves_the_adapter(tmp_path, capsys):
    out = tmp_path / "run"
    report = run(["train", "--algo", "inpo", "--param", "inner_steps=2", "--model", "tiny", "--game", "rps-sequences",
                  "--lora", "4", "--steps", "4", "--batch", "4", "--eval-batch", "4", "--out", str(out), "--json"],
                 capsys)
    assert report["lora_rank"] == 4 and report["final_duality_gap"] != report["initial_duality_gap"]
    assert (out / "final" / "adapter" / "adapter_config.json").exists()  # the adapter alone, as peft saves it
    # and the adapter merged into the base: a complete model that loads with the policy it was
    game = sequence_game_by_name("rps-sequences")
    merged = TransformerPolicy.from_pretrained(out / "final", dtype=torch.float64, attn_implementation="eager")
    ref = TransformerPolicy.for_game(game, dtype=torch.float64, init_scale=TINY_INIT_SCALE)
    assert abs(exact_duality_gap(merged, game, ref, 0.1) - report["final_duality_gap"]) < 1e-12
