"""One process of tests/test_llm_distributed.py: train a tiny transformer on rps-sequences and save what came out.

Run under ``torchrun --nproc_per_node N`` (each process takes ``accumulate`` micro-batches) or alone (then with
N·accumulate micro-batches): argv = OUT ACCUMULATE.
"""

import json
import sys

import torch

from llm_backend import TransformerPolicy
from llm_backend.trainer import Trainer
from preference_games.algorithms import make
from preference_games.sequences import SequenceOracle, sequence_game_by_name


def main(out: str, accumulate: int) -> None:
    game = sequence_game_by_name("rps-sequences")
    policy = TransformerPolicy.for_game(game, seed=0, dtype=torch.float64, init_scale=0.1)
    oracle = SequenceOracle(game)
    trainer = Trainer(make("inpo", inner_steps=2), policy, oracle, oracle, steps=4, game=game, batch=6,
                      accumulate=accumulate, eval_batch=8, eval_every=2, lr=1e-2)
    run = trainer.train()
    if trainer.dist.main:
        torch.save({name: p.detach() for name, p in policy.named_parameters()}, f"{out}/parameters.pt")
        with open(f"{out}/metrics.json", "w") as handle:
            json.dump({"world": trainer.dist.world, "rows": run.metrics}, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
