"""One process of tests/test_llm_distributed.py and tests/test_llm_fsdp.py: train a tiny transformer on
rps-sequences (or, with --text, on four text prompts judged by a Python function) and save what came out.

Run under ``torchrun --nproc_per_node N`` (each process takes ``accumulate`` micro-batches) or alone (then with
N·accumulate micro-batches): argv = OUT ACCUMULATE [--fsdp] [--algo NAME] [--save-every N] [--resume CHECKPOINT]
[--text].
OUT receives, from rank 0, ``parameters.pt`` (the complete trained weights) and ``metrics.json`` (the world size,
every metrics row and, for each process, the larger fraction of the parameter entries it holds of the policy and
of π_ref, measured after a draw from each).
"""

import argparse
import json
import os
import sys

import torch
import torch.distributed as dist

from llm_backend import TransformerPolicy, distributed
from llm_backend.data import PromptDataset
from llm_backend.oracles import CallableOracle
from llm_backend.text import TextCodec, char_tokenizer
from llm_backend.trainer import Trainer
from preference_games.algorithms import make
from preference_games.sequences import SequenceOracle, sequence_game_by_name


def held(policy) -> float:
    """The fraction of the policy's parameter entries this process holds (1 unless sharded)."""
    local = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in policy.parameters())
    return local / sum(p.numel() for p in policy.parameters())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("accumulate", type=int)
    parser.add_argument("--fsdp", action="store_true")  # without it, as the launcher says (accelerate's FSDP config)
    parser.add_argument("--algo", default="inpo")
    parser.add_argument("--save-every", type=int)
    parser.add_argument("--resume")
    parser.add_argument("--text", action="store_true")  # text prompts: responses end at EOS, at different lengths
    args = parser.parse_args()
    if args.text:
        codec = TextCodec(char_tokenizer())
        prompts = PromptDataset(["Say hi.", "Count to three.", "Why?", "Go on and on"], codec)
        oracle = CallableOracle(lambda prompt, a, b: float(a.count("!") > b.count("!")), codec)
        policy, game = TransformerPolicy.tiny(codec.tokenizer, 8, dtype=torch.float64), None
    else:
        game = sequence_game_by_name("rps-sequences")
        policy = TransformerPolicy.for_game(game, seed=0, dtype=torch.float64, init_scale=0.1)
        prompts = oracle = SequenceOracle(game)
    algorithm = make("inpo", inner_steps=2) if args.algo == "inpo" else make(args.algo)
    trainer = Trainer(algorithm, policy, oracle, prompts, steps=4, game=game, batch=6, accumulate=args.accumulate,
                      eval_batch=8, eval_every=2, lr=1e-2, fsdp=args.fsdp or None, out=args.out,
                      save_every=args.save_every)
    if args.resume:
        trainer.resume(args.resume)
    run = trainer.train()
    parameters = {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach()
                  for name, p in trainer.policy.named_parameters()}  # full_tensor: a collective, on every rank
    for role in (trainer.policy, trainer.ref):  # a draw gathers a sharded model; afterwards it is sharded again
        role.sample(prompts.sample(2, torch.Generator().manual_seed(0)), 2, torch.Generator().manual_seed(0))
    fractions = [max(held(trainer.policy), held(trainer.ref))]
    if trainer.dist.world > 1:
        gathered = [None] * trainer.dist.world
        dist.all_gather_object(gathered, fractions[0])
        fractions = gathered
    if trainer.dist.main:
        torch.save(parameters, f"{args.out}/parameters.pt")
        with open(f"{args.out}/metrics.json", "w") as handle:
            json.dump({"world": trainer.dist.world, "rows": run.metrics, "held": fractions}, handle)


if __name__ == "__main__":
    main()
    # Everything is written: leave the group and exit without interpreter finalisation, where gloo work handles
    # still alive can abort a finished process (pytorch/pytorch#179291; distributed._leave collects them first, which
    # has stopped it in our runs, but a red CI over a teardown race in torch would hide every real result).
    distributed._leave()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
