"""Train an :class:`~preference_games.sequences.AutoregressivePolicy` on a sequence game with any algorithm, and
measure it exactly.

The loop is the one every non-tabular backend runs: the algorithm's schedule hooks around the shared
:class:`~preference_games.training.TrainingStep` on *sampled* pairs (prompts from the game's prompt source, responses
from the policy's ``sample`` or ``mixture_sampler``, labels from its oracle). Nothing in it asks which algorithm it
runs. Every ``eval_every`` steps the policy is enumerated over all the game's strings (the exact bridge) and the
engine computes, against π_ref = the *initial* policy:

* ``duality_gap`` — E_x DualGap_τ(π) at the algorithm's τ (zero only at the regularised equilibrium NE_τ);
* ``kl_to_fixed_point`` — E_x KL(π ‖ π*), π* the algorithm's stated fixed point on the enumerated game, where the
  engine has one. For mixture-sampling algorithms (IPO-MD, Nash-MD-PG) that point is for the *sequence-level*
  mixture of the paper, while the policy samples the token-level one: the KL then also measures that approximation;
* ``mixture_tv`` — for those algorithms, E_x TV(token-level mixture, sequence-level mixture) at the final policy.

Defaults, measured on rps-sequences (tests/test_sequence_runs.py, README "Sequence games"): plain SGD at 1e-3
decaying linearly to zero, 256 pairs a step, soft labels (IPO-MD Algorithm 2: the oracle's p itself), a GRU with
``head_scale=4`` so that the initial policy — the reference — is far enough from uniform for NE_τ to differ from it.
Why these: the field an online algorithm follows is a game's, with a rotation around the equilibrium; Adam's
normalised steps overshoot it (online IPO's exact population gradient under Adam at 3e-3 threw the gap from 0.018 to
0.97 in 50 steps, while SGD at 1e-3 took it to 3e-5), and the per-pair IPO gradient is noisy (targets ±1/(2τ)), so
64 pairs a step left the gap bouncing at 4–10× below its start where 256 pairs reach ~100×; the decay lets the last
iterate settle instead of bouncing in a noise ball of its own making.

>>> from preference_games.algorithms import make
>>> from preference_games.sequences import sequence_game_by_name
>>> run = train(make("online-ipo", tau=0.1), sequence_game_by_name("rps-sequences"), steps=20, eval_every=10)
>>> run.steps.tolist(), bool(run.initial_duality_gap > 0)
([0, 10, 20], True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .algorithms.base import Algorithm, values
from .equilibria import duality_gap
from .policies import _kl
from .samplers import LABELS, Roles
from .sequences import AutoregressivePolicy, SequenceGame, SequenceOracle, _enumerated, mixture_tv, tabular_game
from .tabular import facts
from .training import TrainingStep, one_thread, progress_bar, sampled_pairs

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
DEFAULT_LR = 1e-3
DEFAULT_BATCH = 256
DEFAULT_HEAD_SCALE = 4.0


@dataclass(frozen=True)
class SequenceRun:
    """A training run on a sequence game, measured exactly at ``steps`` [T] (step 0 is the initial policy).

    ``duality_gap`` [T], ``kl_to_fixed_point`` [T] (None where the engine has no fixed point for the algorithm),
    ``loss`` [T] (the objective of the step that led there; NaN at step 0), ``mixture_tv`` (final policy; None when
    the algorithm samples no mixture), ``seconds`` (training only, evaluation excluded) and ``pairs`` trained on.
    """

    algorithm: Algorithm
    game: SequenceGame
    steps: np.ndarray
    duality_gap: np.ndarray
    kl_to_fixed_point: np.ndarray | None
    loss: np.ndarray
    mixture_tv: float | None
    seconds: float
    pairs: int
    policy: AutoregressivePolicy

    @property
    def initial_duality_gap(self) -> float:
        return float(self.duality_gap[0])

    @property
    def final_duality_gap(self) -> float:
        return float(self.duality_gap[-1])

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else float("nan")


def single_configuration(algorithm: Algorithm) -> None:
    """A network is one configuration: refuse an algorithm given several values of a parameter (a sweep)."""
    if any(len(values(v)) > 1 for v in algorithm.params.values() if not isinstance(v, str) and v is not None):
        raise ValueError(f"{algorithm.describe()}: a network policy is one configuration; give each parameter one "
                         "value")


class ExactMeter:
    """The exact measures of a policy trained by ``algorithm`` on an enumerable ``game`` against the reference
    ``ref``: ``meter(policy)`` enumerates it and returns (E_x DualGap_τ, E_x KL(π ‖ π_fixed)) in
    :func:`~preference_games.sequences.tabular_game` — τ the algorithm's gap τ (``tabular.facts``), π_fixed its
    fixed point (the KL is NaN where the engine knows none). Shared by :func:`train` and ``llm_backend``'s trainer.
    """

    def __init__(self, algorithm: Algorithm, game: SequenceGame, ref):
        self.game, self.tabular = game, tabular_game(game, ref)
        known = facts(algorithm)
        self.tau = float(values(known.gap_tau)[0])
        self.fixed = known.fixed_point(self.tabular, 0, self.tabular.ref) if known.fixed_point else None

    def __call__(self, policy) -> tuple[float, float]:
        enumerated = _enumerated(policy, self.game)
        gap = float(duality_gap(self.tabular, enumerated, self.tau))
        if self.fixed is None:
            return gap, np.nan
        return gap, float(self.tabular.expected(_kl(enumerated.log_probs, self.fixed.log_probs)))


def mixture_beta(algorithm: Algorithm) -> float | None:
    """β of the first mixture source the algorithm samples from the policy (IPO-MD, Nash-MD-PG), else None."""
    for sampler in algorithm.samplers:
        if "mixture" in (sampler.first, sampler.second) and not callable(sampler.beta):
            return float(sampler.beta)
    return None


def train(algorithm: Algorithm, game: SequenceGame, *, steps: int = 2000, lr: float = DEFAULT_LR,
          batch: int = DEFAULT_BATCH, labels: str = "soft", seed: int = 0, hidden: int = 32,
          head_scale: float = DEFAULT_HEAD_SCALE, eval_every: int = 100, optimizer: str = "sgd",
          clip: float | None = None, progress: bool = False) -> SequenceRun:
    """Train a fresh :class:`AutoregressivePolicy` (seeded by ``seed``, float64) on ``game`` with ``algorithm`` for
    ``steps`` sampled steps of ``optimizer`` ("sgd" or "adam") at ``lr`` decaying linearly to 0, ``batch`` pairs
    each, gradients clipped to norm ``clip`` if given; see the module docstring for the defaults and what is
    measured."""
    for name, value, low in (("steps", steps, 1), ("batch", batch, 1), ("eval_every", eval_every, 1),
                             ("hidden", hidden, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be a positive integer; got {value}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number; got {lr}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}; got {optimizer!r}")
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}; got {labels!r}")
    single_configuration(algorithm)

    with one_thread():
        return _train(algorithm, game, steps, lr, batch, labels, seed, hidden, head_scale, eval_every, optimizer, clip,
                      progress)


def _train(algorithm, game, steps, lr, batch, labels, seed, hidden, head_scale, eval_every, optimizer, clip,
           progress) -> SequenceRun:
    policy = AutoregressivePolicy.for_game(game, hidden=hidden, seed=seed, dtype=torch.float64,
                                           head_scale=head_scale)
    ref = policy.snapshot()  # π_ref: the initial policy
    meter = ExactMeter(algorithm, game, ref)
    oracle = SequenceOracle(game)
    roles = Roles(policy=policy, ref=ref, data=ref)
    roles.aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
    algorithm.schedule.start(roles)
    params = [*policy.parameters(), *(p for module in roles.aux.values() for p in module.parameters())]
    optimizer = OPTIMIZERS[optimizer](params, lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 - t / steps)
    generator = torch.Generator().manual_seed(int(seed))
    step = TrainingStep(algorithm, roles, sampled_pairs(algorithm, roles, oracle, batch, generator, labels),
                        optimizer, clip=clip)

    recorded, gaps, kls, losses = [0], *([value] for value in meter(policy)), [np.nan]
    bar = progress_bar(steps, progress, algorithm.name)
    seconds = 0.0
    for t in range(steps):
        start = time.perf_counter()
        algorithm.schedule.before_step(t, roles)
        loss = step()
        decay.step()
        algorithm.schedule.after_step(t, roles)
        seconds += time.perf_counter() - start
        if not torch.all(torch.isfinite(loss)):
            raise FloatingPointError(f"{algorithm.describe()}: the loss became non-finite at step {t + 1}; "
                                     "lower --lr")
        if (t + 1) % eval_every == 0 or t + 1 == steps:
            gap, kl = meter(policy)
            recorded.append(t + 1)
            gaps.append(gap)
            kls.append(kl)
            losses.append(float(loss.sum()))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    beta = mixture_beta(algorithm)
    return SequenceRun(
        algorithm=algorithm, game=game, steps=np.array(recorded), duality_gap=np.array(gaps),
        kl_to_fixed_point=None if meter.fixed is None else np.array(kls), loss=np.array(losses),
        mixture_tv=None if beta is None else mixture_tv(policy, ref, beta, game), seconds=seconds,
        pairs=steps * batch * len(algorithm.samplers), policy=policy,
    )
