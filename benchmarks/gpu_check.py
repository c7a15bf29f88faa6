"""The trainer on a GPU: bf16 autocast, tokens/s, peak memory and model FLOPs utilisation, written to a JSON file.

A Llama of 189M parameters built from a config (hidden 1024, 16 layers, 16 query and 8 key-value heads, MLP 2816,
the 100-token ``char_tokenizer``: nothing is downloaded; sdpa attention, float32 weights under the trainer's bf16
autocast) trains with online IPO through :class:`~llm_backend.trainer.Trainer`, judged by a small reward model on
the same GPU, for ``--steps`` steps of ``--batch`` pairs (the first step, which pays CUDA's lazy initialisation, is
left out of the medians). It records

* ``tokens_per_s``: response tokens trained on (y and y′ of every pair) per second of a step — sampling, oracle,
  objective, backward and optimiser included — the median over steps;
* ``peak_memory_gib``: ``torch.cuda.max_memory_allocated`` over the run (reset before it);
* ``mfu``: model FLOPs utilisation, 6·N·tokens_per_s / peak, with N the policy's parameters and 6N the usual
  forward-and-backward FLOPs per trained token. A step also samples the tokens (2N each) and scores them under the
  reference (2N), so ``mfu_all_passes`` counts 10N; both leave out attention's FLOPs and the prompt tokens;
* the peak assumed: dense bf16 tensor-core FLOP/s from the vendor's data sheet for the device name (H100/H200 SXM
  989 TFLOP/s, H100 PCIe 756, A100 312, L4 121), or ``--peak-tflops``; without either, MFU is left out and said so;
* ``bf16_logprob_max_abs_diff``: after training, the largest |log π(y|x)| difference between a float32 pass and a
  pass under the same bf16 autocast — how much the trainer's bf16 log-probabilities move.

The run fails (exit status 1) if a loss or log-probability is not finite. On a machine without a GPU it says so and
exits 0: CI never needs one. ``--cpu-dry-run`` runs the same code on the CPU (float32, no memory or FLOPs figures),
which the test suite does at a tiny size.

    python benchmarks/gpu_check.py                           # writes gpu_check.json
    python benchmarks/gpu_check.py --json out.json --steps 6 --batch 16 --new-tokens 128
    python benchmarks/gpu_check.py --cpu-dry-run --hidden 32 --intermediate 64 --layers 1 --batch 2 --new-tokens 4
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

# Measure this checkout's packages even when an editable install points at another copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

#: Dense bf16 tensor-core peak, FLOP/s, by a substring of ``torch.cuda.get_device_name()`` (first match wins, so
#: the PCIe H100 comes before the SXM default).
PEAK_BF16 = (("H100 PCIe", 756e12), ("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L4", 121e12))


def peak_flops(name: str, override_tflops: float | None) -> tuple[float | None, str]:
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    for key, flops in PEAK_BF16:
        if key in name:
            return flops, f"data sheet, dense bf16, matched {key!r}"
    return None, f"unknown device {name!r}: pass --peak-tflops"


def build(args, device):
    """The policy, the reward-model oracle and the prompts, all on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from llm_backend.data import PromptDataset
    from llm_backend.oracles import RewardModelOracle
    from llm_backend.policy import TransformerPolicy
    from llm_backend.text import TextCodec, char_tokenizer

    tokenizer = char_tokenizer()
    codec = TextCodec(tokenizer)
    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, max_position_embeddings=512, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=args.hidden, intermediate_size=args.intermediate,
                                         num_hidden_layers=args.layers, num_attention_heads=16,
                                         num_key_value_heads=8, **common)).to(device)
    judge = LlamaForSequenceClassification(LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                                       num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                                                       **common)).to(device)
    policy = TransformerPolicy(model, args.new_tokens, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)
    prompts = PromptDataset([f"Question {i}: what comes after {i}?" for i in range(256)], codec, device=device)
    return policy, RewardModelOracle(judge, tokenizer, codec), prompts


def run(args, device: torch.device) -> dict:
    """Train and measure on ``device``: a GPU, or the CPU for a dry run of the same code (float32, no memory or
    FLOPs figures)."""
    from llm_backend.trainer import Trainer
    from preference_games.algorithms import make

    gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if gpu else "cpu"
    policy, oracle, prompts = build(args, device)
    n = sum(p.numel() for p in policy.parameters())
    trainer = Trainer(make("online-ipo", tau=0.1), policy, oracle, prompts, steps=args.steps, batch=args.batch,
                      lr=1e-5, eval_every=args.steps, eval_batch=args.batch, bf16=gpu)
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    rows = trainer.train().metrics[1:]  # raises FloatingPointError on a non-finite loss
    if gpu:
        torch.cuda.synchronize(device)
    peak_memory = torch.cuda.max_memory_allocated(device) if gpu else None
    timed = rows[1:]  # the first step pays CUDA's lazy initialisation
    tokens_per_s = statistics.median(row["tokens_per_s"] for row in timed)

    with torch.no_grad():  # bf16 autocast against float32 on the same fresh pairs
        x = prompts.sample(args.batch, torch.Generator().manual_seed(1))
        y = policy.sample(x, 1, torch.Generator().manual_seed(2))
        full = policy.log_prob(x, y).float()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=gpu):
            half = policy.log_prob(x, y).float()
    if not (torch.isfinite(full).all() and torch.isfinite(half).all()):
        raise FloatingPointError("a log-probability is not finite")

    peak, peak_source = peak_flops(name, args.peak_tflops) if gpu else (None, "a CPU dry run: no peak")
    result = {
        "device": name, "torch": torch.__version__, "parameters": n, "batch_pairs": args.batch,
        "new_tokens": args.new_tokens, "steps_timed": len(timed), "bf16_autocast": trainer.bf16,
        "median_step_s": statistics.median(row["seconds"] for row in timed),
        "pairs_per_s": statistics.median(row["pairs_per_s"] for row in timed), "tokens_per_s": tokens_per_s,
        "peak_memory_gib": None if peak_memory is None else peak_memory / 2**30,
        "losses": [row["loss"] for row in rows],
        "bf16_logprob_max_abs_diff": float((full - half).abs().max()),
        "peak_flops_assumed": peak, "peak_flops_source": peak_source,
        "mfu": None if peak is None else 6 * n * tokens_per_s / peak,
        "mfu_all_passes": None if peak is None else 10 * n * tokens_per_s / peak,
    }
    if not all(math.isfinite(loss) for loss in result["losses"]):
        raise FloatingPointError(f"a loss is not finite: {result['losses']}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="gpu_check.json", metavar="PATH", help="where to write the figures")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16, help="pairs per step")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak (default: by name)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run the same code on the CPU (float32; no memory or FLOPs figures): what the test "
                             "suite runs, at a tiny size, where there is no GPU")
    args = parser.parse_args(argv)
    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_check: no GPU found (torch.cuda.is_available() is False); nothing to check.")
        return 0
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is not timed)")
    start = time.perf_counter()
    try:
        result = run(args, torch.device("cpu" if args.cpu_dry_run else "cuda"))
    except FloatingPointError as error:
        print(f"gpu_check FAILED: {error}")
        return 1
    result["seconds"] = time.perf_counter() - start
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    mfu = "MFU unknown" if result["mfu"] is None else (f"MFU {result['mfu']:.1%} (all passes "
                                                        f"{result['mfu_all_passes']:.1%})")
    memory = "—" if result["peak_memory_gib"] is None else f"{result['peak_memory_gib']:.2f} GiB"
    print(f"gpu_check on {result['device']}: {result['parameters'] / 1e6:.1f}M parameters, "
          f"{result['tokens_per_s']:.0f} tokens/s, peak memory {memory}, {mfu}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
