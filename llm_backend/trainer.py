"""The trainer: any algorithm object of :mod:`preference_games.algorithms`, unchanged, on a transformer policy.

A step is the engine's :class:`~preference_games.training.TrainingStep` — pairs → the algorithm's objective →
backward (with accumulation and clipping) → the optimiser, wrapped in the algorithm's update rule — between the
algorithm's schedule hooks (INPO's and SPPO's refresh of π_t, BPO's behaviour policy every K steps, the EMA). The
trainer only supplies what a real model needs around it:

* **pairs**: ``"two-samples"`` (:meth:`PairSampler.sample`: one response per source and prompt),
  ``"tournament"`` (best and worst of K, INPO) or ``"win-rate"`` (SPPO's K-sample estimate of p(y ≻ π_t))
  — :mod:`llm_backend.pairs`; an offline algorithm's ``data`` pairs come from a preference dataset (``prompt`` /
  ``chosen`` / ``rejected``), labelled 1. Log-probs: the policy's with gradients, the reference's, previous
  iterate's and behaviour policy's without (they are frozen snapshots, whose ``log_prob`` is detached);
* **optimisation**: AdamW (or SGD), a learning-rate schedule (constant, linear or cosine decay to 0, after a
  linear warm-up), gradient accumulation and clipping, bf16 autocast on a GPU, seeds;
* **measurement**: one JSON line per step in ``metrics.jsonl``, a progress bar, ``save_pretrained`` checkpoints;
* **long runs**: atomic checkpoints that :meth:`Trainer.resume` continues exactly, and data-parallel processes
  (:mod:`llm_backend.distributed`), optionally sharded with FSDP2 (:mod:`llm_backend.fsdp`). A step's
  ``accumulate`` micro-batches are *slots*, each with its own generator (and its own walk through a dataset), so
  that N processes × A slots compute what one process computes with N·A.

Metrics (every step): ``step``, ``loss`` (the objective, mean over micro-batches), ``lr``, ``pairs`` and
``tokens`` (response tokens in the step's pairs, y and y′), ``seconds`` (the step's wall time), ``pairs_per_s`` and
``tokens_per_s``. Every ``eval_every`` steps (and at steps 0 and the last), on a fixed batch of ``eval_batch``
prompts drawn once with their own generator (so that evaluating never changes the training data or draws):

* ``kl_to_ref`` — the estimate (1/B)·Σ_b [log π(y_b|x_b) − log π_ref(y_b|x_b)], y_b ~ π: unbiased for
  E_x KL(π(·|x) ‖ π_ref(·|x)) when the policy samples itself (temperature 1, top-p 1);
* ``win_rate_vs_ref`` — (1/B)·Σ_b p(y_b ≻ y'_b | x_b) by the oracle, y_b ~ π, y'_b ~ π_ref;
* on an enumerable sequence game, exactly: ``duality_gap`` (E_x DualGap_τ at the algorithm's τ, in the game whose
  reference is π_ref enumerated) and ``kl_to_fixed_point`` (to the algorithm's fixed point, where known).

>>> from preference_games.algorithms import make
>>> from preference_games.sequences import sequence_game_by_name
>>> game = sequence_game_by_name("rps-sequences")
>>> run = train_on_game(make("online-ipo", tau=0.1), game, steps=4, batch=8, eval_every=2)
>>> [row["step"] for row in run.metrics if "duality_gap" in row]
[0, 2, 4]
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass

import numpy as np
import torch

from preference_games.algorithms.base import Algorithm
from preference_games.samplers import LABELS, Pairs, Roles
from preference_games.sequence_runs import ExactMeter, mixture_beta, single_configuration
from preference_games.sequences import SequenceGame, SequenceOracle, mixture_tv
from preference_games.training import TrainingStep, one_thread, progress_bar

from . import distributed
from .fsdp import launcher_asks, shard
from .oracles import Environment
from .pairs import tournament_pairs, win_rate_pairs
from .policy import TransformerPolicy

PAIR_MODES = ("two-samples", "tournament", "win-rate")
LR_SCHEDULES = ("constant", "linear", "cosine")
OPTIMIZERS = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "trainer_state.pt"  # in a checkpoint: everything but the model's HF files (see Trainer.save_checkpoint)
CHECKPOINT = re.compile(r"checkpoint-(\d+)")
TIMING = ("seconds", "pairs_per_s", "tokens_per_s")  # the metrics that are wall-clock measurements


def latest_checkpoint(out: str) -> str | None:
    """The complete checkpoint of the highest step under ``out`` (one whose state file was written and whose
    directory was renamed into place), or None."""
    if not os.path.isdir(out):
        return None
    found = [(int(m.group(1)), name) for name in os.listdir(out) if (m := CHECKPOINT.fullmatch(name))
             and os.path.isfile(os.path.join(out, name, STATE_FILE))]
    return os.path.join(out, max(found)[1]) if found else None


def _seed(seed: int, slot: int) -> int:
    """Slot j's generator seed: ``seed`` itself for slot 0 (a run without accumulation or processes is seeded by
    ``seed`` alone), an independent stream from (seed, j) otherwise."""
    return seed if slot == 0 else int(np.random.SeedSequence([seed, slot]).generate_state(1, np.uint64)[0])


class _Slot:
    """One micro-batch slot: its generator and, for a stateful prompt source or dataset, its own copy (its own walk
    through the data), so that which process draws a slot changes nothing about what it draws."""

    def __init__(self, index: int, seed: int, prompts, oracle, preferences):
        def own(source):  # slot 0 walks the caller's dataset; the others a copy each (a stateless source is shared)
            return copy.deepcopy(source) if index and hasattr(source, "state_dict") else source

        self.index, self.generator = index, torch.Generator().manual_seed(_seed(seed, index))
        self.env, self.preferences = Environment(own(prompts), oracle), own(preferences)

    def state_dict(self) -> dict:
        sources = (self.env.prompts, self.preferences)
        return {"generator": self.generator.get_state(),
                "sources": [s.state_dict() if hasattr(s, "state_dict") else None for s in sources]}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        for source, saved in zip((self.env.prompts, self.preferences), state["sources"]):
            if saved is not None:
                source.load_state_dict(saved)


@dataclass
class TrainingRun:
    """What :meth:`Trainer.train` returns: every metrics row (as written to ``metrics.jsonl``), the trained policy,
    the output directory (None when nothing is written) and, on an enumerable game, the exact gap at the start and
    the end and the token- vs sequence-level mixture distance of the final policy (IPO-MD, Nash-MD-PG)."""

    metrics: list[dict]
    policy: object
    out: str | None
    mixture_tv: float | None = None
    seconds: float = 0.0
    pairs: int = 0

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a metric over the rows that have it."""
        rows = [row for row in self.metrics if name in row]
        return np.array([row["step"] for row in rows]), np.array([row[name] for row in rows], dtype=float)

    @property
    def initial_duality_gap(self) -> float | None:
        steps, gaps = self.series("duality_gap")
        return float(gaps[0]) if len(gaps) else None

    @property
    def final_duality_gap(self) -> float | None:
        steps, gaps = self.series("duality_gap")
        return float(gaps[-1]) if len(gaps) else None


def _positive(name: str, value, *, integer: bool = True, zero: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value >= 0 if zero else value > 0) and (not integer or int(value) == value)
    if not ok:
        kind = "integer" if integer else "number"
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} {kind}; got {value!r}")


class Trainer:
    """Trains ``policy`` with ``algorithm`` on prompts from ``prompts`` (a PromptSource) judged by ``oracle`` (a
    PreferenceOracle) for ``steps`` steps (module docstring).

    ``ref``: π_ref (default: the initial policy — a snapshot, or the base model of a LoRA policy). ``preferences``: a
    :class:`~llm_backend.data.PreferenceDataset` for an offline algorithm's ``data`` pairs; without one, ``data``
    pairs are drawn from π_ref (the engine's convention μ = π_ref, as on a sequence game). ``game``: an enumerable
    :class:`~preference_games.sequences.SequenceGame` the policy plays, for the exact metrics. ``batch`` pairs per
    micro-batch, ``accumulate`` micro-batches per step. ``lr`` with ``lr_schedule`` after ``warmup`` steps of linear
    warm-up. ``clip``: the gradient norm (None: no clipping). ``labels``: "soft" (the oracle's p) or "bernoulli".
    ``pairs``: a mode of :data:`PAIR_MODES` with ``k`` responses per prompt for the tournament and the win rate.
    ``bf16``: autocast to bfloat16 (None: on a GPU only). ``out``: a directory for ``metrics.jsonl`` and
    checkpoints (``checkpoint-<step>`` every ``save_every`` steps, and ``final``); ``tokenizer`` is saved with them.
    ``fsdp``: shard the policy and every copy of it across the processes (:mod:`llm_backend.fsdp`); None: when
    ``accelerate launch`` was given an FSDP config.
    """

    def __init__(self, algorithm: Algorithm, policy, oracle, prompts, *, steps: int, ref=None, preferences=None,
                 game: SequenceGame | None = None, batch: int = 64, accumulate: int = 1, lr: float = 1e-4,
                 optimizer: str = "adamw", weight_decay: float = 0.0, lr_schedule: str = "linear",
                 warmup: int = 0, clip: float | None = 1.0, labels: str = "soft", pairs: str = "two-samples",
                 k: int = 8, seed: int = 0, eval_every: int = 50, eval_batch: int = 64, out: str | None = None,
                 save_every: int | None = None, tokenizer=None, bf16: bool | None = None, progress: bool = False,
                 fsdp: bool | None = None):
        for name, value in (("steps", steps), ("batch", batch), ("accumulate", accumulate), ("k", k),
                            ("eval_every", eval_every), ("eval_batch", eval_batch)):
            _positive(name, value)
        _positive("warmup", warmup, zero=True)
        _positive("seed", seed, zero=True)
        _positive("lr", lr, integer=False)
        _positive("weight_decay", weight_decay, integer=False, zero=True)
        if save_every is not None:
            _positive("save_every", save_every)
        for name, value, allowed in (("optimizer", optimizer, tuple(OPTIMIZERS)), ("lr_schedule", lr_schedule,
                                     LR_SCHEDULES), ("labels", labels, LABELS), ("pairs", pairs, PAIR_MODES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
        single_configuration(algorithm)
        self._check_sources(algorithm, preferences)
        if bf16 and policy.device.type != "cuda":
            raise ValueError("bf16 autocast needs the policy on a GPU; on the CPU train in float32 or float64")
        self.algorithm, self.policy, self.oracle, self.prompts = algorithm, policy, oracle, prompts
        self.steps, self.batch, self.accumulate, self.labels = int(steps), int(batch), int(accumulate), labels
        self.pair_mode, self.k, self.eval_every, self.out = pairs, int(k), int(eval_every), out
        self.save_every, self.tokenizer, self.progress = save_every, tokenizer, progress
        self.game = game
        self.bf16 = policy.device.type == "cuda" if bf16 is None else bool(bf16)

        self.dist = distributed.context(policy.device)
        if self.dist.world > 1:
            distributed.broadcast_parameters(policy)
        aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
        self.sharded = launcher_asks() if fsdp is None else bool(fsdp)
        if self.sharded:
            # the policy's model is sharded in place (the caller's policy object holds the same, now sharded, model).
            # The auxiliary modules are copied from it before, then sharded: BPO's ensemble perturbs its copies with
            # full-size noise, which a sharded parameter does not take. Every other copy (π_ref, snapshots, the
            # EMA) is made from the sharded policy, shard by shard (llm_backend.fsdp).
            self.policy = policy = shard(policy)
            aux = {name: shard(module) for name, module in aux.items()}
        reference = getattr(policy, "reference", policy.snapshot)  # a LoRA policy's: the base, not a copy
        self.ref = reference() if ref is None else ref.snapshot()
        self.roles = Roles(policy=policy, ref=self.ref, data=self.ref, aux=aux)
        self.meter = ExactMeter(algorithm, game, self.ref) if game is not None else None
        self._eval = self._eval_batch(int(eval_batch), int(seed))
        first = self.dist.rank * self.accumulate  # this process's slots: rank·A … rank·A + A − 1
        self.slots = [_Slot(j, int(seed), prompts, oracle, preferences) for j in range(first, first + self.accumulate)]
        self._slot = 0

        params = [*policy.parameters(), *(p for module in self.roles.aux.values() for p in module.parameters())]
        options = {"lr": lr, "weight_decay": weight_decay}
        self.optimizer = OPTIMIZERS[optimizer]([p for p in params if p.requires_grad], **options)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor(lr_schedule, int(warmup)))
        world = self.dist.world
        # FSDP's reduce-scatter already averages the gradients over the processes: averaging again would divide by N²
        unreduced = world == 1 or self.sharded
        reduce = None if unreduced else (lambda params: distributed.average_gradients(params, world))
        self.step = TrainingStep(algorithm, self.roles, self._pairs, self.optimizer, accumulate=self.accumulate,
                                 clip=clip, reduce=reduce)
        self._counts = [0, 0]  # pairs and response tokens of the current step
        self.done, self.rows, self._seconds, self._pairs_total = 0, [], 0.0, 0  # what a resumed run continues

    # ------------------------------------------------------------------------------------------------ set-up
    @staticmethod
    def _check_sources(algorithm: Algorithm, preferences) -> None:
        names = {name for sampler in algorithm.samplers for name in (sampler.first, sampler.second)}
        if preferences is not None and "data" not in names:
            raise ValueError(f"{algorithm.name} does not train on a preference dataset (it samples its own pairs)")
        if preferences is not None and "data-mixture" in names:
            raise ValueError(f"{algorithm.name} samples from a mixture with the data policy μ, which a dataset of "
                             "responses cannot give")

    def _lr_factor(self, schedule: str, warmup: int):
        steps = self.steps

        def factor(t: int) -> float:  # t: optimiser steps taken so far
            if t < warmup:
                return (t + 1) / (warmup + 1)
            done = (t - warmup) / max(steps - warmup, 1)
            return {"constant": 1.0, "linear": 1.0 - done, "cosine": 0.5 * (1 + math.cos(math.pi * done))}[schedule]

        return factor

    def _eval_batch(self, size: int, seed: int):
        """Prompts for evaluation, drawn once with their own generator — a dataset's walk is put back where it was,
        so training sees the same data with or without evaluation — and the generator the evaluation samples with."""
        generator = torch.Generator().manual_seed(seed + 1_000_003)
        state = self.prompts.state_dict() if hasattr(self.prompts, "state_dict") else None
        prompts = self.prompts.sample(size, generator)
        if state is not None:
            self.prompts.load_state_dict(state)
        return prompts, generator

    # ----------------------------------------------------------------------------------------------- pairs
    def _pairs(self) -> list[Pairs]:
        """One micro-batch: the next of this process's slots draws it."""
        slot = self.slots[self._slot % len(self.slots)]
        self._slot += 1
        made = [self._pairs_of(sampler, slot) for sampler in self.algorithm.samplers]
        for pairs in made:
            self._counts[0] += int(pairs.weight.shape[-1])
            self._counts[1] += int(pairs.y.lengths.sum()) + int(pairs.y2.lengths.sum())
        return made

    def _pairs_of(self, sampler, slot: _Slot) -> Pairs:
        if slot.preferences is not None and sampler.first == sampler.second == "data":
            x, chosen, rejected = slot.preferences.sample(self.batch, slot.generator)
            shape = chosen.lengths.shape  # [1, B]
            ones = torch.ones(shape, dtype=self.policy.dtype, device=self.policy.device)
            return Pairs(x, chosen, rejected, ones / shape[-1], ones)
        if self.pair_mode == "tournament":
            return tournament_pairs(sampler, self.roles, slot.env, self.batch, self.k, slot.generator)
        if self.pair_mode == "win-rate":
            return win_rate_pairs(sampler, self.roles, slot.env, self.batch, self.k, slot.generator)
        return sampler.sample(self.roles, slot.env, self.batch, slot.generator, self.labels)

    # ------------------------------------------------------------------------------------------- measuring
    @torch.no_grad()
    def evaluate(self) -> dict:
        """``kl_to_ref`` and ``win_rate_vs_ref`` on the evaluation prompts, and the exact measures on a game."""
        prompts, generator = self._eval
        state = generator.get_state()
        y = self.policy.sample(prompts, 1, generator)
        y_ref = self.ref.sample(prompts, 1, generator)
        generator.set_state(state)  # every evaluation draws the same way: differences are the policy's
        row = {"kl_to_ref": float((self.policy.log_prob(prompts, y) - self.ref.log_prob(prompts, y)).mean()),
               "win_rate_vs_ref": float(self.oracle.prob(prompts, y, y_ref).double().mean())}
        if self.meter is not None:
            gap, kl = self.meter(self.policy)
            row["duality_gap"] = gap
            if not math.isnan(kl):
                row["kl_to_fixed_point"] = kl
        return row

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.policy.device.type, dtype=torch.bfloat16)

    # -------------------------------------------------------------------------------------------- the loop
    def train(self) -> TrainingRun:
        """Run every step; write metrics and checkpoints under ``out`` if given. A model of under a million
        parameters on the CPU trains on one thread: its tensors are too small for a second thread to help, and on a
        loaded 2-core machine the spinning workers made tiny-model steps several times slower (measured)."""
        small = self.policy.device.type == "cpu" and sum(p.numel() for p in self.policy.parameters()) < 1_000_000
        with one_thread() if small else contextlib.nullcontext():
            return self._train()

    def _train(self) -> TrainingRun:
        main, writer = self.dist.main, None
        # who evaluates: rank 0, or under FSDP every process (each forward pass all-gathers: all must run it)
        measures = main or self.sharded
        if self.out is not None and main:
            os.makedirs(self.out, exist_ok=True)
            writer = open(os.path.join(self.out, METRICS_FILE), "w")
            for row in self.rows:  # a resumed run's rows up to its checkpoint (anything logged after it is redone)
                self._record(writer, row)
        schedule = self.algorithm.schedule
        bar = progress_bar(self.steps, self.progress and main, self.algorithm.name)
        try:
            if self.done == 0:
                schedule.start(self.roles)
                self.rows = [self._record(writer, {"step": 0, **self.evaluate()} if measures else {"step": 0})]
            elif bar is not None:
                bar.update(self.done)
            for t in range(self.done, self.steps):
                self._counts, self._slot = [0, 0], 0
                start = time.perf_counter()
                schedule.before_step(t, self.roles)
                with self._autocast():
                    loss = self.step()
                self.scheduler.step()
                schedule.after_step(t, self.roles)
                loss, pairs, tokens = float(loss.sum()), *self._counts
                if self.dist.world > 1:  # the step's metrics over every process
                    loss, pairs, tokens = distributed.all_sum([loss, pairs, tokens])
                    loss, pairs, tokens = loss / self.dist.world, int(pairs), int(tokens)
                elapsed = time.perf_counter() - start
                if not math.isfinite(loss):
                    raise FloatingPointError(f"{self.algorithm.describe()}: the loss became non-finite at step "
                                             f"{t + 1}; lower the learning rate")
                self._seconds, self._pairs_total = self._seconds + elapsed, self._pairs_total + pairs
                row = {"step": t + 1, "loss": loss, "lr": self.scheduler.get_last_lr()[0], "pairs": pairs,
                       "tokens": tokens, "seconds": elapsed, "pairs_per_s": pairs / elapsed,
                       "tokens_per_s": tokens / elapsed}
                if measures and ((t + 1) % self.eval_every == 0 or t + 1 == self.steps):
                    row.update(self.evaluate())
                self.rows.append(self._record(writer, row))
                self.done = t + 1
                if self.out is not None and self.save_every and (t + 1) % self.save_every == 0:
                    self.save_checkpoint(os.path.join(self.out, f"checkpoint-{t + 1}"))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
        finally:
            if writer is not None:
                writer.close()
            if bar is not None:
                bar.close()
        if self.out is not None:
            self.save(os.path.join(self.out, "final"))
        beta = mixture_beta(self.algorithm)
        tv = None
        if self.game is not None and beta is not None and measures:
            tv = mixture_tv(self.policy, self.ref, beta, self.game)
        return TrainingRun(metrics=self.rows, policy=self.policy, out=self.out, mixture_tv=tv, seconds=self._seconds,
                           pairs=self._pairs_total)

    # ----------------------------------------------------------------------------------- checkpoint, resume
    def save_checkpoint(self, path: str) -> None:
        """Everything a run needs to continue exactly, written atomically: into ``path.partial``, then renamed to
        ``path`` once complete, so a crash mid-save leaves no directory that :func:`latest_checkpoint` would load.

        Rank 0 writes the model (``save_pretrained``, with the tokenizer) and ``trainer_state.pt``: the step, the
        metrics so far, every role (the policy, π_ref, the anchor — INPO's π_t, BPO's behaviour policy — and the
        trained auxiliary modules: an adversary, ensemble members), the schedule's own state (an EMA's average, the
        outer iteration), the optimiser, the learning-rate scheduler, an optimistic update's previous gradient and
        the global torch RNG. Every process writes its slots (generator states, data positions) to ``rank-<r>.pt``.
        Under FSDP the model files hold the complete weights, gathered onto rank 0, and every process writes its own
        trainer state (rank r > 0 to ``trainer_state-rank-<r>.pt``): its shards of every role and of the optimiser,
        which a run on as many processes loads back (:meth:`resume`).
        """
        partial = path + ".partial"
        if self.dist.main:
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(partial)
        distributed.barrier()
        self.save(partial)
        if self.dist.main or self.sharded:  # under FSDP each process holds, and writes, its own shards
            state = {"step": self.done, "rows": self.rows, "seconds": self._seconds, "pairs": self._pairs_total,
                     "world": self.dist.world, "fsdp": self.sharded, "algorithm": self.algorithm.describe(),
                     "roles": self.roles, "schedule": self.algorithm.schedule,
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "previous_gradient": getattr(self.step.optimizer, "_previous", None),
                     "torch_rng": torch.get_rng_state()}
            _write(os.path.join(partial, _state_file(self.dist.rank)), state)
        _write(os.path.join(partial, f"rank-{self.dist.rank}.pt"), [slot.state_dict() for slot in self.slots])
        distributed.barrier()
        if self.dist.main:
            shutil.rmtree(path, ignore_errors=True)  # a checkpoint of this step from an earlier, resumed attempt
            os.replace(partial, path)
        distributed.barrier()

    def resume(self, path: str) -> None:
        """Continue from the checkpoint at ``path`` (:meth:`save_checkpoint`): this trainer must be built as the
        saved one was (the same algorithm, options and world size); its policy's weights, roles, schedule,
        optimiser, scheduler, generators and data positions become the saved ones."""
        own = os.path.join(path, _state_file(self.dist.rank if self.sharded else 0))
        if not os.path.isfile(own):  # a rank r > 0 of an FSDP run, on a checkpoint written without FSDP
            raise ValueError(f"{path} holds no FSDP shards of process {self.dist.rank}: it was written without FSDP; "
                             "resume it without FSDP")
        state = torch.load(own, weights_only=False)
        saved_run, run = (state["algorithm"], state["world"], state.get("fsdp", False)), (
            self.algorithm.describe(), self.dist.world, self.sharded)
        if saved_run != run:
            def describe(name, world, sharded):
                return f"{name} on {world} process(es){' with FSDP' if sharded else ''}"

            raise ValueError(f"{path} was written by {describe(*saved_run)}; this run is {describe(*run)}")
        saved: Roles = state["roles"]
        # the trained modules keep their identity (the optimiser holds their parameters): copy the saved weights in
        self.policy.load_state_dict(saved.policy.state_dict())
        for name, module in self.roles.aux.items():
            module.load_state_dict(saved.aux[name].state_dict())
        saved.policy, saved.aux = self.policy, self.roles.aux
        self.roles.__dict__.update(saved.__dict__)  # the same Roles object: the training step holds it
        self.ref = self.roles.ref
        if self.game is not None:
            self.meter = ExactMeter(self.algorithm, self.game, self.ref)
        self.algorithm.schedule.__dict__.update(state["schedule"].__dict__)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["previous_gradient"] is not None:
            self.step.optimizer._previous = state["previous_gradient"]
        torch.set_rng_state(state["torch_rng"])
        for slot, saved_slot in zip(self.slots, torch.load(os.path.join(path, f"rank-{self.dist.rank}.pt"),
                                                           weights_only=False)):
            slot.load_state_dict(saved_slot)
        self.done, self.rows = state["step"], state["rows"]
        self._seconds, self._pairs_total = state["seconds"], state["pairs"]

    @staticmethod
    def _record(writer, row: dict) -> dict:
        if writer is not None:
            writer.write(json.dumps(row) + "\n")
            writer.flush()
        return row

    def save(self, path: str) -> None:
        """The policy (``save_pretrained``: weights, config, the policy's settings) and the tokenizer, written by
        rank 0. Every process calls it: under FSDP, gathering the complete weights onto rank 0 takes them all."""
        from transformers.utils import logging

        if not (self.dist.main or self.sharded):
            return
        if self.dist.main:
            os.makedirs(path, exist_ok=True)
        bars = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()  # HF's "Writing model shards" bar would interleave with ours on stderr
        try:
            self.policy.save_pretrained(path)  # a sharded policy gathers on every process and writes on rank 0
            if self.tokenizer is not None and self.dist.main:
                self.tokenizer.save_pretrained(path)
        finally:
            if bars:
                logging.enable_progress_bar()


def _state_file(rank: int) -> str:
    """Rank r's part of a checkpoint's trainer state: rank 0's is the whole state, except under FSDP, where every
    process writes its own shards of the roles and of the optimiser (``ShardedPolicy`` pickles its local shards)."""
    return STATE_FILE if rank == 0 else f"trainer_state-rank-{rank}.pt"


def _write(path: str, value) -> None:
    """torch.save, flushed to the disk before the checkpoint directory is renamed into place."""
    with open(path, "wb") as handle:
        torch.save(value, handle)
        handle.flush()
        os.fsync(handle.fileno())


def train_on_game(algorithm: Algorithm, game: SequenceGame, *, steps: int, hidden: int = 32, layers: int = 2,
                  init_scale: float | None = None, seed: int = 0, dtype: torch.dtype = torch.float64,
                  **options) -> TrainingRun:
    """A fresh tiny transformer (:meth:`TransformerPolicy.for_game`, seeded by ``seed``) trained on an enumerable
    sequence game with its exact oracle, measured exactly (``options`` go to :class:`Trainer`)."""
    policy = TransformerPolicy.for_game(game, hidden=hidden, layers=layers, seed=seed, dtype=dtype,
                                        init_scale=init_scale)
    oracle = SequenceOracle(game)
    return Trainer(algorithm, policy, oracle, oracle, steps=steps, game=game, seed=seed, **options).train()
