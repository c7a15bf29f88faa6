"""What a snapshot and a reference cost with and without LoRA (``TransformerPolicy.snapshot`` / ``reference``).

An iterative algorithm holds frozen copies of its policy: π_ref, INPO's π_t, BPO's behaviour policy. Without LoRA
each is a deep copy of the model; with LoRA the reference is the base model with the adapter disabled (no copy) and
a snapshot is a second adapter. This script builds a Llama from a config (nothing is downloaded), takes both kinds
of snapshot, and reports the bytes each adds: the parameter bytes it allocates (exact) and the process's resident
memory before and after (a cross-check, coarse: the allocator keeps freed pages).

    python benchmarks/bench_lora_memory.py                 # a Llama of hidden 768, 12 layers, MLP 2·hidden
    python benchmarks/bench_lora_memory.py --quick         # hidden 128, 2 layers (seconds)
    python benchmarks/bench_lora_memory.py --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys

import torch

from llm_backend import TransformerPolicy
from llm_backend.policy import tiny_llama


def resident_bytes() -> int:
    """The process's resident set size (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def parameter_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def measure(hidden: int, layers: int, vocab: int, rank: int) -> dict:
    model = tiny_llama(vocab, pad_id=0, eos_id=1, hidden=hidden, layers=layers, positions=1024,
                       init_scale=0.02)
    policy = TransformerPolicy(model, 32, eos_id=1)
    model_bytes = parameter_bytes(policy.model)

    gc.collect()
    before = resident_bytes()
    copy = policy.snapshot()  # without LoRA: a deep copy of the model
    copy_resident = resident_bytes() - before
    copy_bytes = parameter_bytes(copy.model)
    del copy
    gc.collect()

    lora = policy.with_lora(r=rank)
    adapter_bytes = sum(p.numel() * p.element_size() for p in lora.parameters() if p.requires_grad)
    total = parameter_bytes(lora.model)
    before = resident_bytes()
    snapshot = lora.snapshot()  # a second adapter
    lora_resident = resident_bytes() - before
    snapshot_bytes = parameter_bytes(lora.model) - total
    reference = lora.reference()
    reference_bytes = parameter_bytes(lora.model) - total - snapshot_bytes  # the base, read as it is
    assert reference.adapter == "base" and snapshot.adapter is not None
    return {
        "hidden": hidden, "layers": layers, "vocab": vocab, "lora_rank": rank,
        "model_parameters": sum(p.numel() for p in policy.model.parameters()),
        "model_bytes": model_bytes, "adapter_bytes": adapter_bytes,
        "snapshot_bytes_copy": copy_bytes, "snapshot_bytes_lora": snapshot_bytes,
        "reference_bytes_copy": copy_bytes, "reference_bytes_lora": reference_bytes,
        "resident_growth_copy": copy_resident, "resident_growth_lora": lora_resident,
        "saving": copy_bytes / snapshot_bytes,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small model (hidden 128, 2 layers)")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    args = parser.parse_args(argv)
    size = (128, 2, 1000) if args.quick else (768, 12, 32000)
    with torch.no_grad():
        row = measure(*size, args.rank)
    mib = 2**20
    print(f"Llama hidden {row['hidden']}, {row['layers']} layers, vocab {row['vocab']}: "
          f"{row['model_parameters'] / 1e6:.1f}M parameters, float32; LoRA rank {row['lora_rank']} on every linear map")
    print("| frozen copy | without LoRA (deep copy) | with LoRA | saving |")
    print("|---|---|---|---|")
    print(f"| snapshot (π_t, behaviour policy) | {row['snapshot_bytes_copy'] / mib:,.1f} MiB | "
          f"{row['snapshot_bytes_lora'] / mib:,.2f} MiB (an adapter) | {row['saving']:,.0f}× |")
    print(f"| reference π_ref | {row['reference_bytes_copy'] / mib:,.1f} MiB | "
          f"{row['reference_bytes_lora'] / mib:,.2f} MiB (adapter disabled) | — |")
    print(f"resident memory growth (cross-check): deep copy {row['resident_growth_copy'] / mib:,.1f} MiB, "
          f"adapter snapshot {row['resident_growth_lora'] / mib:,.2f} MiB")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(row, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
