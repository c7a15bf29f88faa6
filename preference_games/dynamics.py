"""Trajectories of an algorithm on a tabular game: exact, closed-form, sampled, and batched over configurations.

Three modes share one loop:

* ``"exact"`` — the exhaustive pair sampler: the loss is the population loss and each step is gradient descent on it
  (autograd on the logits gives the exact expected gradient);
* ``"closed-form"`` — the paper's exact map π_t ↦ π_{t+1} (OMD/INPO eq. 5, Nash-MD, SPPO eq. 60);
* ``"sampled"`` — B pairs per step drawn from a seeded torch generator, soft or Bernoulli labels, and one
  :class:`~preference_games.training.TrainingStep` (any torch optimiser) on that batch's loss. Here it trains the
  tabular policies of :mod:`~preference_games.models`; the same pairs-objective-optimiser step trains the GRU of
  :mod:`~preference_games.sequences` through :mod:`~preference_games.protocols`. No transformer runs in this package.

Batched: a :class:`~preference_games.models.TabularLogits` policy holds C configurations; parameters of the algorithm,
the learning rate and the game may each be one value per configuration, and one tensor operation advances them all.

A :class:`Trajectory` records the policy at every recorded step and, computed afterwards from those policies by the
exact engine (vectorised over the whole trajectory): the duality gap at the algorithm's τ, the unregularised gap, KL to
π_ref and KL to the algorithm's stated fixed point; and the loss the step minimised.

>>> from preference_games.algorithms import make
>>> from preference_games.games import rps_variant
>>> run = simulate(make("online-ipo", tau=0.1), rps_variant(antisymmetrize=True), steps=2000, lr=0.05)
>>> bool(run.kl_to_fixed_point[-1, 0] < 1e-12)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .algorithms.base import Algorithm, pick, values
from .algorithms.dap import Contrastive
from .equilibria import _check_tau, gaps_from_log_probs
from .games import PreferenceGame, check_seed
from .models import FrozenPolicy, TabularLogits
from .policies import _kl
from .samplers import Roles, TabularOracle
from .tabular import SOFT_LABEL_SLOPES, ExactContrastiveGradient, TabularFacts, facts
from .training import ConfigSGD, TrainingStep, exhaustive_pairs, one_thread, progress_bar, sampled_pairs

MODES = ("exact", "closed-form", "sampled")

#: Without a step count, a run stops once no probability — of the policy, of any auxiliary model (adversary,
#: reward model) or of the anchor — moves by more than this over one period of the algorithm's schedule.
STATIONARY_TOL = 1e-12
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Trajectory:
    """A recorded run. Arrays are indexed [t, c] (recorded step, configuration); policies [t, c, X, Y].

    The metrics are computed from the recorded policies by the exact engine, vectorised over time, on first use
    (a batched benchmark that only wants the final policies never pays for them):
    ``duality_gap`` is DualGap at the algorithm's τ (INPO §2.2), ``unregularized_gap`` at τ = 0, ``kl_to_ref`` and
    ``kl_to_fixed_point`` are KL(π_t ‖ ·) in expectation over prompts (``kl_from_fixed_point`` the reverse,
    KL(π* ‖ π_t)); ``fixed_point`` is None (and so are the KLs to it) where the engine has no closed form for the
    algorithm. ``stopped`` says why the run ended: ``"steps"``, ``"stationary"`` (no probability of the policy,
    auxiliary models or anchor moved more than 1e-12 over one period of the schedule) or ``"step cap"``.
    """

    algorithm: Algorithm
    mode: str
    steps: np.ndarray  # [T]
    log_probs: np.ndarray  # [T, C, X, Y]
    loss: np.ndarray | None  # [T, C]: the objective of the step that produced policy t (NaN at t = 0: no step yet)
    stopped: str
    games: tuple  # one PreferenceGame per configuration
    data: object  # the data policy μ (TabularPolicy) offline algorithms used; None: each game's π_ref

    @property
    def probs(self) -> np.ndarray:
        return np.exp(self.log_probs)

    @cached_property
    def facts(self) -> TabularFacts:
        """The algorithm's tabular facts (gap τ, fixed point, closed form): :mod:`preference_games.tabular`."""
        return facts(self.algorithm)

    @property
    def final(self) -> np.ndarray:
        """Final policy probabilities [C, X, Y]."""
        return np.exp(self.log_probs[-1])

    def average(self) -> np.ndarray:
        """The uniform average of the recorded iterates' probabilities [C, X, Y] (SPPO's and INPO Thm. 3's output);
        it is the average of *all* iterates only when every step was recorded (``record_every=1``)."""
        return self.probs.mean(axis=0)

    @cached_property
    def duality_gap(self) -> np.ndarray:
        return self._per_config(lambda game, path, c: gaps_from_log_probs(game, path, pick(self.facts.gap_tau, c)))

    @cached_property
    def unregularized_gap(self) -> np.ndarray:
        return self._per_config(lambda game, path, c: gaps_from_log_probs(game, path, 0.0))

    @cached_property
    def kl_to_ref(self) -> np.ndarray:
        return self._per_config(lambda game, path, c: _kl(path, game.ref.log_probs))

    @cached_property
    def fixed_point(self) -> np.ndarray | None:
        """[C, X, Y] log-probabilities of where the algorithm should converge, or None where that is numerical."""
        if self.facts.fixed_point is None:
            return None
        points = [self.facts.fixed_point(game, c, game.ref if self.data is None else self.data)
                  for c, game in enumerate(self.games)]
        return None if any(p is None for p in points) else np.stack([p.log_probs for p in points])

    @cached_property
    def kl_to_fixed_point(self) -> np.ndarray | None:
        """KL(π_t ‖ π*) [T, C]: the direction the duality gap bounds (KL(π‖π*) ≤ DualGap_τ/2τ)."""
        fixed = self.fixed_point
        return None if fixed is None else self._per_config(lambda game, path, c: _kl(path, fixed[c]))

    @cached_property
    def kl_from_fixed_point(self) -> np.ndarray | None:
        """KL(π* ‖ π_t) [T, C]: the direction of INPO's Theorem 4 and of mirror-descent analyses."""
        fixed = self.fixed_point
        return None if fixed is None else self._per_config(lambda game, path, c: _kl(fixed[c][None], path))

    def _per_config(self, per_prompt) -> np.ndarray:
        """[T, C] from a function of (game, path [T, X, Y], c) giving per-prompt values [T, X], averaged over d0."""
        return np.stack(
            [per_prompt(game, self.log_probs[:, c], c) @ game.prompt_probs for c, game in enumerate(self.games)],
            axis=1,
        )


def simulate(
    algorithm: Algorithm,
    game: PreferenceGame | list[PreferenceGame],
    *,
    steps: int | None = None,
    mode: str = "exact",
    lr=0.1,
    optimizer=None,
    batch: int = 64,
    labels: str = "bernoulli",
    seed: int = 0,
    policy=None,
    data=None,
    configs: int | None = None,
    record_every: int = 1,
    max_steps: int = MAX_STEPS,
    progress: bool = False,
) -> Trajectory:
    """Run ``algorithm`` on ``game`` (or one game per configuration) and record its trajectory.

    steps: a fixed number of steps; None runs until stationary or ``max_steps``. lr: a float or one per configuration
    (plain gradient steps); ``optimizer``: instead, a factory ``params -> torch.optim.Optimizer`` (sampled or exact
    mode). Either way the algorithm's update rule (extragradient, optimistic) wraps the optimiser
    (:mod:`preference_games.training`). policy: the trained policy
    (default: a :class:`TabularLogits` at π_ref); data: the data policy μ [X, Y] (default π_ref) for offline
    algorithms. configs: the number of configurations, otherwise inferred from the parameters, ``lr`` and games.
    """
    many = game if isinstance(game, (list, tuple)) else [game]
    if not many or not all(isinstance(g, PreferenceGame) for g in many):
        wrong = next((type(g).__name__ for g in many if not isinstance(g, PreferenceGame)), "an empty list")
        raise TypeError(f"game must be a PreferenceGame or a non-empty list of them; got {wrong} (build a game from "
                        "a matrix with PreferenceGame(P))")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    known = facts(algorithm)
    for tau in values(known.gap_tau):  # every duality gap of the trajectory is measured at it: 1/τ must be finite
        _check_tau(tau)
    if mode == "closed-form" and known.closed_form is None:
        raise ValueError(f"{algorithm.name} has no closed-form map; use mode='exact' or 'sampled'")
    if steps is not None and (int(steps) != steps or steps < 0):
        raise ValueError(f"steps must be a non-negative integer; got {steps}")
    if not (int(record_every) == record_every and record_every >= 1):
        raise ValueError(f"record_every must be a positive integer; got {record_every}")
    if mode == "sampled" and not (int(batch) == batch and batch >= 1):
        raise ValueError(f"batch must be a positive integer; got {batch}")
    if steps is None and (isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1):
        raise ValueError(f"max_steps must be a positive integer; got {max_steps}")
    check_seed(seed)
    with one_thread():
        return _simulate(
            algorithm, game, steps, mode, lr, optimizer, batch, labels, seed, policy, data, configs, record_every,
            max_steps, progress,
        )


def _simulate(algorithm, game, steps, mode, lr, optimizer, batch, labels, seed, policy, data, configs, record_every,
              max_steps, progress) -> Trajectory:
    games = [game] if isinstance(game, PreferenceGame) else list(game)
    C = _configurations(configs, algorithm, lr, games, policy)
    games = games * C if len(games) == 1 else games
    oracle = TabularOracle(games if len({id(g) for g in games}) > 1 else games[:1], configs=C)
    if policy is None:  # start at π_ref (each configuration at its own game's)
        policy = TabularLogits.from_log_probs(oracle.ref.log_prob_table().expand(C, -1, -1).numpy())
    with torch.no_grad():
        inside = torch.isfinite(policy.log_prob_table()) | ~oracle.support  # [C, X, Y]
    if not bool(inside.all()):  # every algorithm lives on Supp(π_ref): a hole there makes its losses infinite
        raise ValueError("the policy must put positive probability on every action in the support of π_ref")
    data_policy = games[0].policy(data) if data is not None else None  # default μ = π_ref (per game)
    data_table = oracle.ref if data is None else FrozenPolicy(data_policy.log_probs)
    # the frozen roles take the trained policy's dtype and device, so a float32 policy trains on float32 losses
    ref, data_table = (frozen.to(policy.dtype, policy.device) for frozen in (oracle.ref, data_table))
    roles = Roles(policy=policy, ref=ref, data=data_table)
    roles.aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
    algorithm.schedule.start(roles)
    generator = torch.Generator().manual_seed(int(seed))
    step_fn = _Stepper(algorithm, roles, oracle, mode, lr, optimizer, batch, labels, generator)

    total = steps if steps is not None else max_steps
    recorded_steps, tables, losses = [0], [_table(policy)], []
    stopped = "steps" if steps is not None else "step cap"
    bar = progress_bar(total, progress, algorithm.name)
    # Stationary means nothing moved over one whole period of the schedule (an outer iteration for anchored
    # algorithms: inside one, the policy can rest at the inner minimiser while the next anchor would move it), in
    # the policy, the auxiliary models or the anchor (an EMA anchor can still be catching up).
    period = algorithm.schedule.period
    previous = None
    for step in range(total):
        algorithm.schedule.before_step(step, roles)
        record = (step + 1) % record_every == 0 or step + 1 == total
        step_fn.want_loss = record or steps is None  # a stationary stop records the step it happens on
        loss = step_fn(step)  # [C] tensor; None in closed-form mode
        algorithm.schedule.after_step(step, roles)
        if steps is None and (step + 1) % period == 0:  # reading tables costs a copy: only when it decides anything
            now = _state(roles)
            if previous is not None and _moved(now, previous) <= STATIONARY_TOL:
                stopped, record = "stationary", True
            previous = now
        if record:
            recorded_steps.append(step + 1)
            tables.append(_table(policy))
            losses.append(None if loss is None else loss.numpy())
        if bar is not None:
            bar.update(1)
        if stopped == "stationary":
            break
    if bar is not None:
        bar.close()
    log_probs = np.stack(tables)  # [T, C, X, Y]
    loss_array = None if mode == "closed-form" else np.stack([np.full(C, np.nan, log_probs.dtype)] + losses)
    return Trajectory(algorithm, mode, np.array(recorded_steps), log_probs, loss_array, stopped, tuple(games), data_policy)


def _configurations(configs, algorithm: Algorithm, lr, games, policy) -> int:
    """C from the per-configuration parameters, ``lr``, the games and the policy; they must agree."""
    numeric = [v for v in algorithm.params.values() if not isinstance(v, str)]
    sizes = {len(values(v)) for v in numeric} | {len(values(lr)) if lr is not None else 1}
    sizes |= {len(games)} | ({policy.configs} if policy is not None else set())
    sizes.discard(1)
    if configs is not None:
        sizes.add(int(configs))
    if len(sizes) > 1:
        raise ValueError(f"per-configuration parameters disagree on the number of configurations: {sorted(sizes)}")
    C = sizes.pop() if sizes else 1
    if policy is not None and policy.configs != C:
        raise ValueError(f"the policy holds {policy.configs} configuration(s) but the run has {C}")
    return C


def _state(roles) -> list[np.ndarray]:
    modules = [roles.policy, *roles.aux.values()] + ([roles.anchor] if roles.anchor is not None else [])
    return [_table(module) for module in modules]


def _moved(now: list[np.ndarray], before: list[np.ndarray]) -> float:
    return max(np.abs(np.exp(a) - np.exp(b)).max() for a, b in zip(now, before))


def _table(policy) -> np.ndarray:
    with torch.no_grad():
        return policy.log_prob_table().detach().numpy().copy()


class _Stepper:
    """One step of the chosen mode: the closed-form map, or :class:`~preference_games.training.TrainingStep` (the
    training step every backend shares) on exhaustive or sampled pairs."""

    def __init__(self, algorithm, roles, oracle, mode, lr, optimizer, batch, labels, generator):
        self.algorithm, self.roles, self.oracle, self.mode = algorithm, roles, oracle, mode
        self.want_loss = True  # the run loop clears it on steps whose loss nobody records
        if mode == "closed-form":
            self.closed_form = facts(algorithm).closed_form
            return
        params = [p for p in roles.policy.parameters()] + [
            p for module in roles.aux.values() for p in module.parameters()
        ]
        if optimizer is not None and len(values(lr)) > 1:
            raise ValueError("a per-configuration lr applies to the built-in updates; a torch optimizer sets its own")
        optimizer = optimizer(params) if optimizer is not None else ConfigSGD(params, values(lr))
        if mode == "exact":
            pairs = exhaustive_pairs(algorithm, roles, oracle)
        else:
            pairs = sampled_pairs(algorithm, roles, oracle, batch, generator, labels)
        self.train = TrainingStep(algorithm, roles, pairs, optimizer, gradient=self._closed_form_gradient())

    def _closed_form_gradient(self):
        """Exact mode, one sampler, no auxiliary models, a contrastive objective with one of the built-in pair losses
        (whose gradient has a closed form, :class:`~preference_games.tabular.ExactContrastiveGradient`): a function
        giving (loss, tensor, its gradient) for :class:`~preference_games.training.TrainingStep`; else None
        (autograd on the pairs). On a
        :class:`TabularLogits` policy the tensor is the logits themselves, whose gradient is given outright (the
        fused exact step: no backward pass); on any other enumerable policy it is the log-probability table, and
        the step backpropagates through the policy's own parameterisation."""
        objective, policy = self.algorithm.objective, self.roles.policy
        if self.mode != "exact" or self.roles.aux or len(self.algorithm.samplers) != 1:
            return None
        if not isinstance(objective, Contrastive) or objective.pair_loss not in SOFT_LABEL_SLOPES:
            return None
        exact = ExactContrastiveGradient(objective, self.algorithm.samplers[0], self.oracle, policy.dtype,
                                         policy.device)
        if isinstance(policy, TabularLogits):
            def gradient():
                loss, grad = exact.logit_gradient(self.roles, policy, self.want_loss)
                return loss, policy.logits, grad

            return gradient

        def gradient():
            table = policy.log_prob_table()  # [C, X, Y], with the graph to the parameters
            loss, grad = exact.table_gradient(self.roles, table.detach(), self.want_loss)
            return loss, table, grad.to(table.dtype).expand_as(table)

        return gradient

    def __call__(self, step: int) -> torch.Tensor | None:
        if self.mode == "closed-form":
            self.roles.policy.assign(self.closed_form(self.roles, self.oracle, step))
            return None
        return self.train()
