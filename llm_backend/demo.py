"""The transformer section of ``preference-games demo``: a tiny Llama trained by an engine algorithm on an enumerable
sequence game, measured exactly.

Online IPO (τ = 0.1) trains :meth:`TransformerPolicy.for_game` on ``rps-sequences`` (27 strings) through
:class:`~llm_backend.trainer.Trainer`; every ``EVAL_EVERY`` steps the policy is enumerated and its exact duality gap
computed by the engine. Then the token-level geometric mixture that IPO-MD and Nash-MD-PG sample from — the
per-token renormalised π^{1−β} π_ref^β — is compared with the sequence-level mixture the papers define,
π(y)^{1−β} π_ref(y)^β / Z, by their total variation over the 27 strings (``sequences.mixture_tv``): for the
trained policy against π_ref, and for a second, independently initialised model against π_ref.

Settings (SGD at 1e-3 decaying linearly, 256 pairs a step, soft labels, 150 steps) were chosen to finish in well
under a minute on a 2-core CPU; ``preference-games train`` runs the 2000-step version the README reports.
"""

from __future__ import annotations

import time

import torch

from preference_games.algorithms import make
from preference_games.sequences import SequenceOracle, mixture_tv, sequence_game_by_name

from .policy import TransformerPolicy
from .trainer import Trainer

GAME, TAU, STEPS, EVAL_EVERY, BATCH, LR = "rps-sequences", 0.1, 150, 25, 256, 1e-3
INIT_SCALE = 0.1  # a reference far enough from uniform that the equilibrium differs from it
BETAS = (0.25, 0.5, 0.75)


def transformer_section(folder=None) -> dict:
    """Train, measure, and (with ``folder``) draw the gap curve to ``folder/transformer_gap.png``."""
    game = sequence_game_by_name(GAME)

    def policy_at(seed: int) -> TransformerPolicy:
        return TransformerPolicy.for_game(game, seed=seed, dtype=torch.float64, init_scale=INIT_SCALE)

    policy = policy_at(0)
    oracle = SequenceOracle(game)
    algorithm = make("online-ipo", tau=TAU)
    trainer = Trainer(algorithm, policy, oracle, oracle, steps=STEPS, game=game, batch=BATCH, lr=LR,
                      optimizer="sgd", clip=None, eval_every=EVAL_EVERY)
    start = time.perf_counter()
    run = trainer.train()
    seconds = time.perf_counter() - start
    steps, gaps = run.series("duality_gap")
    section = {
        "algorithm": algorithm.describe(), "game": GAME, "model": "tiny Llama (hidden 32, 2 layers), float64",
        "parameters": sum(p.numel() for p in policy.parameters()), "steps": STEPS, "batch": BATCH,
        "duality_gap": [[int(s), float(g)] for s, g in zip(steps, gaps)],
        "initial_duality_gap": float(gaps[0]), "final_duality_gap": float(gaps[-1]), "seconds": seconds,
        "mixture_tv": {str(beta): mixture_tv(policy, trainer.ref, beta, game) for beta in BETAS},
        # the same distance for two models initialised independently (further apart than a run moves one)
        "mixture_tv_independent": {str(beta): mixture_tv(policy_at(1), trainer.ref, beta, game) for beta in BETAS},
    }
    if folder is not None:
        section["figure"] = str(_draw(section, folder))
    return section


def _draw(section: dict, folder):
    """The exact gap along the run, on log axes: ``folder/transformer_gap.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, gaps = zip(*section["duality_gap"])
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.semilogy(steps, gaps, marker="o")
    axes.set_xlabel("training step")
    axes.set_ylabel(f"exact duality gap (tau = {TAU:g})")
    axes.set_title(f"{section['algorithm']} on {section['game']}: tiny transformer")
    figure.tight_layout()
    path = folder / "transformer_gap.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
