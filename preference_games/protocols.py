"""The contracts between an algorithm and what it trains on: the one place where a lookup table, a small
autoregressive network and a transformer become interchangeable.

An algorithm (:mod:`preference_games.algorithms`) sees only these:

==================  ==============================================================  ===============================
protocol            promises                                                        implemented by
==================  ==============================================================  ===============================
``Policy``          ``log_prob(prompts, responses)`` [C, B], differentiable;        ``TabularLogits``,
                    ``sample(prompts, n, generator)``; ``snapshot()`` (frozen);     ``MLPPolicy``, ``FrozenPolicy``,
                    ``mixture_sampler(other, beta)``; ``configs``, ``dtype``,       ``AutoregressivePolicy``,
                    ``device``; optionally ``view()`` (:func:`live_view`)           ``llm_backend``'s
                                                                                    ``TransformerPolicy``
``EnumerablePolicy``  a ``Policy`` that also gives ``log_prob_table()`` [C, X, Y]   the tabular policies only
``PreferenceOracle``  ``prob(prompts, responses, responses2)`` in [0, 1]            ``TabularOracle``,
                                                                                    ``SequenceOracle``
``PromptSource``    ``sample(batch, generator)`` → prompts                          ``TabularOracle`` (indices from
                                                                                    d0), ``SequenceOracle``
==================  ==============================================================  ===============================

**Responses are opaque.** They are whatever a policy's ``sample`` returns — an index tensor [C, B] for a table,
token ids with lengths for a sequence model — and nothing but the policy that scores them and the oracle that judges
them looks inside. :class:`~preference_games.samplers.Pairs` carries them as they are.

**Shapes.** C is the configuration axis (policies trained side by side; 1 for a network), B the batch. Prompts and
responses are batched along [C, B]; ``log_prob`` and ``prob`` return [C, B]. ``sample(prompts, n, generator)``
returns n draws per prompt laid out along the batch axis, prompt b's draws at b·n, …, b·n + n − 1, so that with
n = 1 they line up with ``prompts``.

**dtype and device follow the policy**: samplers and recipes create their tensors with ``policy.dtype`` and on
``policy.device``; oracles return probabilities that the sampler casts to them.

**Two uses of a geometric mixture.** As an *anchor* inside the log-ratio h (INPO's π_t^{1−τ/η} π_ref^{τ/η},
Nash-MD's π_mix), the sequence-level normaliser log Z(x) cancels in h(y, y') = r(y) − r(y'), so the unnormalised
:class:`GeometricAnchor` ``(1 − w)·log π + w·log π_ref`` is exact for every policy class. As a *sampling*
distribution (IPO-MD, Nash-MD-PG), it is a capability of the policy, ``mixture_sampler(other, beta)``: exact for an
enumerable policy; for an autoregressive one the per-token mixture, which is the paper's approximation
(:mod:`preference_games.sequences` measures how far it is from the sequence-level mixture).

>>> import torch
>>> from preference_games.models import TabularLogits
>>> policy = TabularLogits.uniform(configs=1, prompts=1, actions=3)
>>> isinstance(policy, EnumerablePolicy), isinstance(policy, Policy)
(True, True)
>>> anchor = GeometricAnchor(policy.snapshot(), policy.snapshot(), 0.25)
>>> anchor.log_prob(torch.zeros(1, 1, dtype=torch.long), torch.tensor([[2]])).exp()
tensor([[0.3333]], dtype=torch.float64)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

#: A batch of responses: opaque outside the policy that made it and the oracle that judges it.
Responses = Any
#: A batch of prompts: indices [C, B] for a table, token sequences for a sequence model.
Prompts = Any


@runtime_checkable
class Policy(Protocol):
    """π(y | x): what every algorithm trains and every pair sampler draws from."""

    dtype: torch.dtype
    device: torch.device

    @property
    def configs(self) -> int:
        """C, the number of configurations held (1 for a network)."""

    def log_prob(self, prompts: Prompts, responses: Responses) -> torch.Tensor:
        """log π(y | x) [C, B]; differentiable in the policy's parameters (a frozen policy returns it detached)."""

    def sample(self, prompts: Prompts, n: int, generator: torch.Generator | None) -> Responses:
        """n responses per prompt, laid out along the batch axis (see the module docstring)."""

    def snapshot(self) -> "Policy":
        """A frozen copy: the reference, a previous iterate, a behaviour policy, an EMA."""

    def mixture_sampler(self, other: "Policy", beta) -> "Policy":
        """A policy to *sample* from whose distribution is self^{1−β} other^β (β a float or a [C] tensor): exact
        for an enumerable policy, the per-token mixture for an autoregressive one."""


@runtime_checkable
class EnumerablePolicy(Policy, Protocol):
    """A policy over a finite response set small enough to tabulate. Only the exhaustive pair sampler, the
    closed-form maps, the closed-form table gradient and the probability-based stationarity tests may use this."""

    def log_prob_table(self) -> torch.Tensor:
        """log π(y | x) for every prompt and response: [C, X, Y], normalised over Y."""


@runtime_checkable
class PreferenceOracle(Protocol):
    """p(y ≻ y' | x): a game's preference matrix, a reward model, a judge."""

    def prob(self, prompts: Prompts, responses: Responses, responses2: Responses) -> torch.Tensor:
        """[C, B] probabilities in [0, 1], with prob(x, y, y') + prob(x, y', y) = 1."""


@runtime_checkable
class PromptSource(Protocol):
    """Where prompts come from: d0."""

    def sample(self, batch: int, generator: torch.Generator | None) -> Prompts:
        """``batch`` prompts per configuration."""


class GeometricAnchor:
    """The anchor π^{1−w} other^w inside h, *unnormalised*: log a(y | x) = (1 − w)·log π(y | x) + w·log other(y | x).

    The normaliser log Z(x) of the true mixture is the same for y and y', so it cancels in
    h = [log π_θ(y) − log a(y)] − [log π_θ(y') − log a(y')]: INPO's h_t (its eq. 8, a = π_t^{1−τ/η} π_ref^{τ/η}) and
    exact Nash-MD's loss (a = π_mix) are computed exactly on any policy class, a transformer included. ``w``: a float
    or a per-configuration tensor [C, 1]. Outside a support (log-prob −inf) the anchor is −inf, never NaN.
    """

    def __init__(self, policy, other, w):
        self.policy, self.other, self.w = policy, other, w

    def _combine(self, a: torch.Tensor, b: torch.Tensor, w) -> torch.Tensor:
        # (1 − w)·(−inf) is NaN when w = 1 (0·inf): the response is outside a support either way, so −inf.
        return torch.nan_to_num((1 - w) * a + w * b, nan=-torch.inf, neginf=-torch.inf)

    def log_prob(self, prompts, responses) -> torch.Tensor:
        a = self.policy.log_prob(prompts, responses).detach()  # [C, B]
        b = self.other.log_prob(prompts, responses).detach()
        return self._combine(a, b, self.w)

    def log_prob_table(self) -> torch.Tensor:
        """[C, X, Y], unnormalised (enumerable policies only: the closed-form table gradient)."""
        w = self.w
        if torch.is_tensor(w) and w.dim():
            w = w.reshape(-1, 1, 1)
        return self._combine(self.policy.log_prob_table().detach(), self.other.log_prob_table().detach(), w)


def live_view(policy):
    """A frozen policy reading ``policy``'s weights as they are now, to draw one step's responses from:
    ``policy.view()`` where the policy offers one (a transformer, whose ``snapshot`` would copy the model every
    step), else ``policy.snapshot()`` (a table's or a small network's copy costs as little)."""
    view = getattr(policy, "view", None)
    return view() if callable(view) else policy.snapshot()


def is_enumerable(policy) -> bool:
    """Whether ``policy`` offers the whole probability table (and so the exact tools of the engine)."""
    return callable(getattr(policy, "log_prob_table", None))
