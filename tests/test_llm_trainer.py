"""llm_backend.trainer: the engine's algorithm objects, unchanged, on a tiny transformer — on an enumerable sequence
game (exact metrics) and on text (prompts from a file, a callable judge, an offline preference file)."""

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from llm_backend import TransformerPolicy  # noqa: E402
from llm_backend.data import PreferenceDataset, PromptDataset  # noqa: E402
from llm_backend.oracles import CallableOracle, GameOracle  # noqa: E402
from llm_backend.text import TextCodec, char_tokenizer, game_tokenizer  # noqa: E402
from llm_backend.trainer import Trainer  # noqa: E402
from preference_games.algorithms import make, names  # noqa: E402
from preference_games.sequences import SequenceOracle, _enumerated, sequence_game_by_name  # noqa: E402

GAME = sequence_game_by_name("rps-sequences")


def game_trainer(algorithm, steps=3, seed=0, **options) -> Trainer:
    policy = TransformerPolicy.for_game(GAME, seed=seed, dtype=torch.float64, init_scale=0.1)
    oracle = SequenceOracle(GAME)
    options = {"batch": 8, "eval_batch": 8, "eval_every": 1, **options}
    return Trainer(algorithm, policy, oracle, oracle, steps=steps, game=GAME, seed=seed, **options)


@pytest.mark.parametrize("name", names())
def test_every_algorithm_trains_through_the_trainer(name):
    """The same table of algorithms as the engine's, with no per-backend branch: a few sampled steps each."""
    trainer = game_trainer(make(name), steps=2)
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    run = trainer.train()
    assert [row["step"] for row in run.metrics] == [0, 1, 2]
    for row in run.metrics[1:]:
        assert math.isfinite(row["loss"]) and row["pairs"] > 0 and row["tokens"] == 2 * row["pairs"] * GAME.length
        assert math.isfinite(row["duality_gap"]) and 0 <= row["win_rate_vs_ref"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters())), name


def test_evaluation_never_changes_training():
    """Evaluating every step or only at the end gives the same parameters: evaluation draws from its own
    generator and never advances the training one."""
    a = game_trainer(make("online-ipo"), steps=4, eval_every=1)
    b = game_trainer(make("online-ipo"), steps=4, eval_every=4)
    a.train(), b.train()
    assert all(torch.equal(p, q) for p, q in zip(a.policy.parameters(), b.policy.parameters()))


def test_same_seed_same_run_and_another_seed_another():
    runs = [game_trainer(make("inpo", inner_steps=2), steps=4, seed=s).train() for s in (0, 0, 1)]
    losses = [[row.get("loss") for row in run.metrics] for run in runs]
    assert losses[0] == losses[1] and losses[0] != losses[2]


def test_estimated_kl_and_win_rate_agree_with_the_exact_values():
    """kl_to_ref is an unbiased estimate of E_x KL(π ‖ π_ref) and the win rate of E p(y ≻ y'); with 4096 samples
    both sit within 5 standard errors of the values enumerated over all 27 strings."""
    trainer = game_trainer(make("online-ipo"), eval_batch=4096)
    with torch.no_grad():
        for p in trainer.policy.parameters():  # move the policy away from the reference
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype))
    row = trainer.evaluate()
    pi = _enumerated(trainer.policy, GAME).log_probs[0]  # [27] numpy
    ref = _enumerated(trainer.ref, GAME).log_probs[0]
    exact_kl = float((np.exp(pi) * (pi - ref)).sum())
    exact_win = float(np.exp(pi) @ GAME.tabular.P[0] @ np.exp(ref))
    spread_kl = math.sqrt(float((np.exp(pi) * (pi - ref - exact_kl) ** 2).sum()) / 4096)
    assert exact_kl > 0.05 and abs(row["kl_to_ref"] - exact_kl) < 5 * spread_kl
    assert abs(row["win_rate_vs_ref"] - exact_win) < 5 * 0.5 / math.sqrt(4096)
    gap = trainer.meter(trainer.policy)[0]
    assert row["duality_gap"] == gap > 0


def test_learning_rate_schedules_known_values():
    trainer = game_trainer(make("online-ipo"), steps=10, warmup=2, lr_schedule="linear")
    factor = trainer._lr_factor("linear", 2)
    assert [factor(t) for t in (0, 1, 2, 6, 10)] == [1 / 3, 2 / 3, 1.0, 0.5, 0.0]
    cosine = trainer._lr_factor("cosine", 0)
    assert cosine(0) == 1.0 and abs(cosine(5) - 0.5) < 1e-15 and abs(cosine(10)) < 1e-15
    run = trainer.train()
    assert [round(row["lr"] / 1e-4, 12) for row in run.metrics[1:4]] == [round(2 / 3, 12), 1.0, 0.875]


def test_metrics_file_and_checkpoints(tmp_path):
    tokenizer = game_tokenizer(GAME)
    run = game_trainer(make("ipo-md"), steps=4, eval_every=2, out=str(tmp_path), save_every=2,
                       tokenizer=tokenizer).train()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == run.metrics and [row["step"] for row in lines] == [0, 1, 2, 3, 4]
    assert {"kl_to_ref", "win_rate_vs_ref", "duality_gap", "kl_to_fixed_point"} <= set(lines[2])
    assert "duality_gap" not in lines[1]
    assert run.mixture_tv is not None and run.mixture_tv > 0  # IPO-MD samples the token-level mixture
    for name in ("checkpoint-2", "checkpoint-4", "final"):
        assert (tmp_path / name / "config.json").exists() and (tmp_path / name / "tokenizer.json").exists()
    loaded = TransformerPolicy.from_pretrained(tmp_path / "final", dtype=torch.float64, attn_implementation="eager")
    assert torch.equal(loaded.enumerate(GAME), run.policy.enumerate(GAME).detach())


def test_tournament_and_win_rate_pairs():
    run = game_trainer(make("inpo", inner_steps=2), steps=2, pairs="tournament", k=4).train()
    assert all(row["pairs"] <= 8 for row in run.metrics[1:])  # only pairs with a strict winner are kept
    run = game_trainer(make("sppo", inner_steps=2), steps=2, pairs="win-rate", k=4).train()
    assert all(row["pairs"] == 8 for row in run.metrics[1:])


def test_text_prompts_callable_judge_and_offline_preferences(tmp_path):
    tokenizer = char_tokenizer()
    codec = TextCodec(tokenizer)
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("\n".join(json.dumps({"prompt": p}) for p in ("Say hi.", "Count: 1 2", "Why?")))
    prompts = PromptDataset(str(prompts_file), codec)
    oracle = CallableOracle(lambda x, a, b: 1.0 if a.count("a") > b.count("a") else 0.0, codec)  # more a's wins
    policy = TransformerPolicy.tiny(tokenizer, 6, seed=0)
    run = Trainer(make("online-ipo"), policy, oracle, prompts, steps=3, batch=4, eval_batch=4, eval_every=3,
                  lr=1e-3).train()
    assert [row["step"] for row in run.metrics] == [0, 1, 2, 3] and "duality_gap" not in run.metrics[-1]
    assert 0 < run.metrics[1]["tokens"] <= 2 * 4 * 6
    rows = [{"prompt": "Say hi.", "chosen": "hi", "rejected": "no"}, {"prompt": "Why?", "chosen": "a", "rejected": "b"}]
    preferences = PreferenceDataset(rows, codec)
    before = [p.detach().clone() for p in policy.parameters()]
    run = Trainer(make("offline-dpo"), policy, oracle, prompts, steps=2, batch=2, eval_batch=2, eval_every=2,
                  preferences=preferences).train()
    assert run.metrics[1]["tokens"] == 2 * 3 + 2 * 2  # "hi"+EOS, "no"+EOS, "a"+EOS, "b"+EOS
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))


def test_bad_input():
    with pytest.raises(ValueError, match="bf16 autocast needs the policy on a GPU"):
        game_trainer(make("online-ipo"), bf16=True)
    with pytest.raises(ValueError, match="does not train on a preference dataset"):
        game_trainer(make("online-ipo"), preferences=object())
    with pytest.raises(ValueError, match="pairs must be one of"):
        game_trainer(make("online-ipo"), pairs="three-samples")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        game_trainer(make("online-ipo"), steps=0)
    with pytest.raises(ValueError, match="one configuration"):
        game_trainer(make("online-ipo", tau=[0.1, 0.2]))


def test_game_oracle_through_the_tokenizer_trains_like_the_exact_oracle():
    """The exact oracle read through the game's tokenizer gives the very same run as the game's own oracle."""
    a = game_trainer(make("online-ipo"), steps=2).train()
    policy = TransformerPolicy.for_game(GAME, seed=0, dtype=torch.float64, init_scale=0.1)
    text = GameOracle(GAME, TextCodec(game_tokenizer(GAME)))
    b = Trainer(make("online-ipo"), policy, text, SequenceOracle(GAME), steps=2, game=GAME, batch=8, eval_batch=8,
                eval_every=1).train()
    assert [row.get("loss") for row in a.metrics] == [row.get("loss") for row in b.metrics]
    assert a.final_duality_gap == b.final_duality_gap
