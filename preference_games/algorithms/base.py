"""The algorithm recipe: what an alignment algorithm is, independent of the policy it trains.

An :class:`Algorithm` is a short recipe of small parts (in the spirit of optax's ``chain``):

* ``samplers`` — where its pairs come from: one :class:`~preference_games.samplers.PairSampler` per batch it
  needs (RLHF needs two: data pairs for the reward model, on-policy samples for the policy);
* ``objective(roles, *pairs) -> [C]`` — a weighted sum of a pure loss from :mod:`preference_games.losses`, built
  from log-probabilities the roles provide;
* ``schedule`` — which frozen snapshot (the ``anchor``) refreshes when: never, every K steps (INPO's outer iterations,
  BPO's annotation phases), or as an EMA of the weights; its hooks run before and after every update;
* ``update`` — the update rule wrapped around the optimiser: plain, extragradient or optimistic
  (:mod:`preference_games.training`).

Nothing in a recipe asks what kind of policy it trains, and nothing in it needs the probability table: closed-form
maps, fixed points and the τ of the duality gap are tabular facts, kept in :mod:`preference_games.tabular`.
Parameters (τ, β, η, …) are floats, or arrays of one value per configuration when many configurations run side by
side.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..models import DTYPE
from ..policies import real_array
from ..protocols import is_enumerable
from ..training import UPDATES


def per_config(value) -> torch.Tensor:
    """A parameter as a tensor that broadcasts against [C, B] pair tensors: a scalar, or [C, 1] for a [C] array."""
    value = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=DTYPE)
    return value if value.dim() == 0 else value.reshape(-1, 1)


def values(value) -> list[float]:
    """A float or an array of per-configuration values, as a list of floats."""
    return np.atleast_1d(np.asarray(value, dtype=np.float64)).tolist()


def pick(value, config: int) -> float:
    """The value of a (possibly per-configuration) parameter for one configuration."""
    listed = values(value)
    return listed[config] if len(listed) > 1 else listed[0]


def check_range(name: str, value, low: float, high: float = np.inf, *, open_low: bool = False) -> None:
    """Raise a one-line ValueError unless every value is a real number (not a bool, not complex, not text), finite
    and in [low, high] (above low with ``open_low``)."""
    for v in real_array(value, name).reshape(-1).tolist():
        if not (np.isfinite(v) and (v > low if open_low else v >= low) and v <= high):
            bound = f"in [{low:g}, {high:g}]" if high < np.inf else f"{'>' if open_low else '>='} {low:g}"
            raise ValueError(f"{name} must be a finite number {bound}; got {v:g}")


def check_beta(beta) -> None:
    check_range("beta", beta, 0.0, 1.0)


def check_tau(tau) -> None:
    """τ > 0 with a finite 1/τ: every loss divides by it (the IPO target 1/(2τ)), so a subnormal τ would turn the
    loss into inf − inf = NaN instead of an error."""
    check_range("tau", tau, 0.0, open_low=True)
    for v in values(tau):
        if not np.isfinite(1.0 / v):
            raise ValueError(f"tau = {v:g} is too small: 1/tau overflows float64")


def weighted(pairs, per_pair: torch.Tensor) -> torch.Tensor:
    """Σ_b weight·loss per configuration: [C, B] → [C]. Zero-weight pairs contribute exactly zero."""
    return (pairs.weight * per_pair).sum(-1)


class Schedule:
    """No anchor: the algorithm uses only the current policy, π_ref and μ.

    ``period``: the number of steps after which the algorithm's update rule repeats (an outer iteration); a run is
    stationary only if nothing moves over a whole period.
    """

    period = 1

    def start(self, roles) -> None:
        roles.iteration = 0

    def before_step(self, step: int, roles) -> None:
        pass

    def after_step(self, step: int, roles) -> None:
        """Called after each update (e.g. to write an ensemble's merged weights into the policy)."""

    def __repr__(self) -> str:
        return "no anchor"


class EveryK(Schedule):
    """The anchor is a snapshot of the policy taken every ``k`` steps (step 0 included); each refresh starts a new
    outer iteration (``roles.iteration``). k = 1 makes the anchor the previous iterate."""

    def __init__(self, k: int):
        if int(k) != k or k < 1:
            raise ValueError(f"the anchor refresh interval must be a positive integer; got {k}")
        self.k = int(k)
        self.period = self.k

    def start(self, roles) -> None:
        roles.iteration = -1

    def before_step(self, step: int, roles) -> None:
        if step % self.k == 0:
            roles.anchor = roles.policy.snapshot()
            roles.iteration += 1

    def __repr__(self) -> str:
        return f"anchor = snapshot every {self.k} steps"


class UntilConverged(Schedule):
    """The anchor is a snapshot of the policy, refreshed whenever the inner problem is solved (INPO Algorithm 1's
    argmin "run to convergence"); each refresh starts a new outer iteration, and a run under it is stationary once a
    refresh no longer changes the anchor.

    "Solved" means an update that moved nothing by more than ``tol``: no probability, on an enumerable policy (the
    quantity the exact engine measures); no parameter, on any other policy, where the probabilities of all responses
    cannot be read (for a network the two agree up to the Lipschitz constant of the parameterisation).
    """

    def __init__(self, tol: float = 1e-12):
        check_range("tol", tol, 0.0, open_low=True)
        self.tol = float(tol)
        self._before = None

    def start(self, roles) -> None:
        roles.iteration = -1
        self._refresh(roles)

    @staticmethod
    def _state(policy) -> list[torch.Tensor]:
        if is_enumerable(policy):
            return [policy.log_prob_table().detach().exp()]
        return [p.detach().clone() for p in policy.parameters()]

    def before_step(self, step: int, roles) -> None:
        self._before = self._state(roles.policy)

    def after_step(self, step: int, roles) -> None:
        moved = max(float((a - b).abs().max()) for a, b in zip(self._state(roles.policy), self._before))
        if moved <= self.tol:
            self._refresh(roles)

    @staticmethod
    def _refresh(roles) -> None:
        roles.anchor = roles.policy.snapshot()
        roles.iteration += 1

    def __repr__(self) -> str:
        return f"anchor = snapshot whenever an update moves nothing by more than {self.tol:g}"


def anchor_schedule(inner_steps) -> Schedule:
    """``EveryK(inner_steps)``, or ``UntilConverged()`` for ``inner_steps=None``."""
    return UntilConverged() if inner_steps is None else EveryK(inner_steps)


class EMA(Schedule):
    """The anchor is an exponential moving average of the policy's weights, θ' ← rate·θ + (1 − rate)·θ', updated
    after every step and starting from the initial weights (BPO eq. 6; BPO calls the rate τ)."""

    def __init__(self, rate: float):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"the EMA rate must lie in [0, 1]; got {rate}")
        self.rate = float(rate)
        self._average = None

    def start(self, roles) -> None:
        roles.iteration = 0
        self._average = copy.deepcopy(roles.policy).requires_grad_(False)
        roles.anchor = self._average.snapshot()

    def before_step(self, step: int, roles) -> None:
        if step > 0:
            with torch.no_grad():
                for average, current in zip(self._average.parameters(), roles.policy.parameters()):
                    average.lerp_(current, self.rate)
            roles.anchor = self._average.snapshot()

    def __repr__(self) -> str:
        return f"anchor = EMA of the weights (rate {self.rate:g})"


@dataclass(frozen=True)
class Algorithm:
    """A named alignment algorithm (see the module docstring). Construct one with
    :func:`preference_games.algorithms.make`."""

    name: str
    paper: str
    params: dict
    samplers: tuple
    objective: Callable
    schedule: Schedule = field(default_factory=Schedule)
    auxiliary: Callable | None = None  # policy -> {name: trained module}, e.g. an adversary or a reward model
    update: str = "gradient"
    uses_data: bool = False

    def __post_init__(self):
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}")

    def describe(self) -> str:
        values = ", ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        return f"{self.name}({values})"


def _show(value) -> str:
    if value is None or isinstance(value, str):
        return str(value)
    array = np.asarray(value)
    return f"{float(array):g}" if array.ndim == 0 else f"[{len(array)} values]"
