"""One training step for every backend: pairs → objective → backward → update.

The exact dynamics (:mod:`preference_games.dynamics`) and the sampled runs on an autoregressive policy
(:mod:`preference_games.sequence_runs`) advance an algorithm through :class:`TrainingStep`, and a transformer trainer
is meant to do the same: there is no other copy of the update rules. The loop around it calls the algorithm's schedule hooks
(``schedule.before_step`` before, ``schedule.after_step`` after) and decides when to stop.

Update rules are optimiser *wrappers*, not flags (as in optax): any ``torch.optim.Optimizer`` — plain gradient
descent, Adam on a transformer — can be wrapped in

* :class:`Extragradient` (Korpelevich): step to θ_{½} = step(θ_t, g(θ_t)), then θ_{t+1} = step(θ_t, g(θ_{½})) from
  the *start*, with the optimiser's state restored in between;
* :class:`Optimistic` (Popov's optimistic gradient): the optimiser steps on 2 g_t − g_{t−1}.

:class:`ConfigSGD` is plain gradient descent with one learning rate per configuration (the leading axis of every
parameter of a tabular policy), so a batch of C configurations with C learning rates is one optimiser.

>>> import torch
>>> from preference_games.algorithms import make
>>> from preference_games.games import rock_paper_scissors
>>> from preference_games.models import TabularLogits
>>> from preference_games.samplers import Roles, TabularOracle
>>> oracle = TabularOracle(rock_paper_scissors())
>>> policy = TabularLogits.from_log_probs(torch.log(torch.tensor([[[0.5, 0.3, 0.2]]], dtype=torch.float64)))
>>> roles = Roles(policy=policy, ref=oracle.ref)
>>> algorithm = make("online-ipo", tau=0.1)
>>> step = TrainingStep(algorithm, roles, exhaustive_pairs(algorithm, roles, oracle), ConfigSGD(policy.parameters(), 0.1))
>>> bool(step().item() > 0)
True
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch

UPDATES = ("gradient", "extragradient", "optimistic")


class ConfigSGD:
    """θ ← θ − lr·g, with ``lr`` a float or one rate per configuration ([C]: scales each parameter's leading axis).

    The optimiser interface the wrappers and :class:`TrainingStep` use (``param_groups``, ``state``, ``step``,
    ``zero_grad``, ``state_dict``, ``load_state_dict``) without subclassing ``torch.optim.Optimizer``, whose per-step
    hooks and profiler records cost ~20–40 µs: a tenth of a tabular step, which is all this optimiser is for.
    """

    def __init__(self, params, lr):
        rates = torch.as_tensor(np.asarray(lr, dtype=np.float64).reshape(-1))
        if not bool(torch.all(torch.isfinite(rates) & (rates > 0))):
            raise ValueError(f"lr must be positive and finite; got {np.asarray(lr).tolist()}")
        self.param_groups = [{"params": list(params), "lr": rates}]
        self.state: dict = {}  # stateless: nothing for Extragradient to restore

    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                rates = group["lr"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if rates.numel() == 1:
                        p.sub_(float(rates) * p.grad)
                    else:  # [C] rates against a [C, ...] parameter
                        p.sub_(rates.to(p).reshape((-1,) + (1,) * (p.dim() - 1)) * p.grad)
        return loss

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Extragradient:
    """Korpelevich's extragradient around any optimiser: ``step(closure)`` evaluates the gradient at the start,
    takes a trial step, evaluates the gradient there (``closure`` again, on fresh pairs when sampled), restores the
    parameters *and* the optimiser's state, and steps from the start with the second gradient. Returns the loss at
    the start."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer

    def _params(self):
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def step(self, closure: Callable):
        loss = closure()
        start = [p.detach().clone() for p in self._params()]
        # the optimiser's state as it was (none yet on a first step, and never for plain SGD: nothing to copy)
        state = copy.deepcopy(self.optimizer.state_dict()) if self.optimizer.state else None
        self.optimizer.step()  # the trial (extrapolated) point
        self.optimizer.zero_grad()
        closure()  # the gradient at the trial point
        with torch.no_grad():
            for p, p0 in zip(self._params(), start):
                p.copy_(p0)
        if state is not None:
            self.optimizer.load_state_dict(state)
        else:
            self.optimizer.state.clear()  # whatever the trial step created (Adam's moments) must not count
        self.optimizer.step()
        return loss

    def zero_grad(self):
        self.optimizer.zero_grad()


class Optimistic:
    """Optimistic gradient around any optimiser: it steps on 2 g_t − g_{t−1} (g_{−1} = g_0)."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self._previous = None

    def step(self, closure: Callable):
        loss = closure()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        previous = self._previous or grads
        self._previous = grads
        with torch.no_grad():
            for p, g, g_prev in zip(params, grads, previous):
                p.grad = 2 * g - g_prev
        self.optimizer.step()
        return loss

    def zero_grad(self):
        self.optimizer.zero_grad()


def wrap(optimizer: torch.optim.Optimizer, update: str):
    """The optimiser with the algorithm's update rule ("gradient", "extragradient" or "optimistic") around it."""
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}; got {update!r}")
    return {"gradient": lambda o: o, "extragradient": Extragradient, "optimistic": Optimistic}[update](optimizer)


def sampled_pairs(algorithm, roles, oracle, batch: int, generator: torch.Generator, labels: str) -> Callable:
    """A pair source for :class:`TrainingStep`: fresh sampled pairs from every one of the algorithm's samplers."""
    return lambda: [s.sample(roles, oracle, batch, generator, labels) for s in algorithm.samplers]


def exhaustive_pairs(algorithm, roles, oracle) -> Callable:
    """A pair source for :class:`TrainingStep`: every pair with its exact probability (enumerable policies): the
    objective is then the population loss and its gradient the exact expected gradient."""
    return lambda: [s.exhaustive(roles, oracle) for s in algorithm.samplers]


class TrainingStep:
    """One update of every trained module (the policy and the algorithm's auxiliary models).

    ``pairs()`` returns the pairs of one micro-batch (one Pairs per sampler); ``optimizer`` is a torch optimiser
    over the trained parameters, wrapped here in the algorithm's update rule. Per call: ``accumulate`` micro-batches,
    each objective divided by ``accumulate`` and backpropagated (configurations are independent: the objective is
    summed over them, so each gets its own gradient); the gradient norm clipped to ``clip`` (per the whole model:
    only meaningful for one configuration); then the update. Returns the objective [C] (the mean over micro-batches,
    detached). ``gradient``, when given, replaces the first two stages: a function returning (loss [C] or None, a
    tensor to call ``backward`` on, its gradient) — the exact dynamics' closed-form table gradient; when that tensor
    is a parameter itself (a leaf), its gradient is set directly. ``reduce``, when given, is called on the list of
    parameters once their gradients are complete and before clipping: a data-parallel run averages them across
    processes there.
    """

    def __init__(self, algorithm, roles, pairs: Callable, optimizer, *, accumulate: int = 1, clip: float | None = None,
                 gradient: Callable | None = None, reduce: Callable | None = None):
        if int(accumulate) != accumulate or accumulate < 1:
            raise ValueError(f"accumulate must be a positive integer; got {accumulate}")
        if clip is not None and not (np.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a positive number; got {clip}")
        self.algorithm, self.roles, self.pairs = algorithm, roles, pairs
        self.optimizer = wrap(optimizer, algorithm.update)
        self.accumulate, self.clip, self.gradient, self.reduce = int(accumulate), clip, gradient, reduce
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def _closure(self):
        for p in self.params:
            p.grad = None
        if self.gradient is not None:
            loss, tensor, grad = self.gradient()
            if tensor.is_leaf:  # a parameter's own gradient: set it (a backward pass would only copy it, ~40 µs)
                tensor.grad = grad
            else:
                tensor.backward(grad)  # the chain rule from log π to the parameters, whatever the policy class
        else:
            total = 0.0
            for _ in range(self.accumulate):
                loss = self.algorithm.objective(self.roles, *self.pairs()) / self.accumulate  # [C]
                loss.sum().backward()
                total = total + loss.detach()
            loss = total
        if self.reduce is not None:
            self.reduce(self.params)
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        return None if loss is None else loss.detach()

    def __call__(self):
        return self.optimizer.step(self._closure)


@contextmanager
def one_thread():
    """Run on one intra-op thread. The engine's tensors are tiny (tables, a small GRU), so threads only add
    synchronisation; on a loaded 2-core machine the spinning workers of a second thread made tabular steps up to 15×
    slower, and a GRU sequence run 50× slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def progress_bar(total: int, enabled: bool, name: str):
    """A tqdm bar on stderr, or None when disabled."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=name, leave=False)
