"""Torch policies over a finite response set: the enumerable side of :mod:`preference_games.protocols`.

Every policy here implements :class:`~preference_games.protocols.EnumerablePolicy`:

    log_prob(x, y) -> Tensor [C, B]        log π(y | x), differentiable for a trainable policy
    sample(x, n, generator) -> [C, B·n]     n response indices per prompt index (prompt b's at b·n … b·n + n − 1)
    snapshot() -> FrozenPolicy             a frozen copy: reference, previous iterate, behaviour policy
    mixture_sampler(other, beta)           the normalised geometric mixture self^{1−β} other^β, exactly
    configs, dtype, device
    log_prob_table() -> Tensor [C, X, Y]   the whole table: the exhaustive pair sampler and the closed-form maps

Prompts and responses are index tensors. The leading C is a *configuration* axis: one tabular policy holds C
independent policies (different β, τ, learning rates, seeds or games), and every operation acts on all of them at
once. Losses are sums over configurations, so one backward pass yields each configuration's own gradient.

float64 by default (the exact engine); a table built from a float32 tensor stays float32. Actions outside
``support`` (the support of π_ref, IPO-MD §2 / INPO §2.2) hold −inf log-probability, so they are never sampled and
carry no gradient.

>>> import torch
>>> policy = TabularLogits.uniform(configs=2, prompts=1, actions=3)
>>> policy.log_prob(torch.zeros(2, 1, dtype=torch.long), torch.tensor([[0], [2]])).exp()
tensor([[0.3333],
        [0.3333]], dtype=torch.float64, grad_fn=<ExpBackward0>)
"""

from __future__ import annotations

import numpy as np
import torch

DTYPE = torch.float64


def _gather(table: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """table [C, X, Y], x and y [C', B] (or [B], shared by every configuration) → table[c, x, y] as [max(C, C'), B].

    A flat ``gather`` rather than advanced indexing: half the cost, forward and backward, on the tiny tables of
    the dynamics, where this runs several times a step.
    """
    x, y = torch.broadcast_tensors(x, y)
    if x.dim() == 1:
        x, y = x[None], y[None]
    C = max(table.shape[0], x.shape[0])
    flat = table.reshape(table.shape[0], -1).expand(C, -1)  # [C, X·Y]
    return flat.gather(1, (x * table.shape[-1] + y).expand(C, -1))


def _sample(table: torch.Tensor, x: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """n draws from softmax(table[c, x]) per (c, b): long [C, B·n], prompt b's draws at b·n … b·n + n − 1."""
    C = table.shape[0]
    if x.dim() == 1:
        x = x.expand(C, -1)
    probs = table[torch.arange(C)[:, None], x].exp()  # [C, B, Y]
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, n, replacement=True, generator=generator).reshape(C, -1)  # [C, B·n]


def _as_table(log_probs, dtype=None) -> torch.Tensor:
    """A log-probability table as a [C, X, Y] tensor: accepts [Y], [X, Y] or [C, X, Y], numpy or torch. ``dtype``
    None keeps a floating torch tensor's own dtype and makes anything else float64."""
    if dtype is None:
        dtype = log_probs.dtype if torch.is_tensor(log_probs) and log_probs.is_floating_point() else DTYPE
    table = torch.as_tensor(np.array(log_probs) if not torch.is_tensor(log_probs) else log_probs, dtype=dtype)
    while table.dim() < 3:
        table = table[None]
    return table


class _TablePolicy:
    """The policy protocol derived from ``log_prob_table()`` alone: every policy here is enumerable, so ``log_prob``,
    ``sample``, ``snapshot`` and ``mixture_sampler`` read the [C, X, Y] table. Subclasses say where their
    ``dtype`` and ``device`` come from."""

    @property
    def configs(self) -> int:
        """C, the number of configurations this policy holds."""
        return self.log_prob_table().shape[0]

    def log_prob(self, x, y) -> torch.Tensor:
        return _gather(self.log_prob_table(), x, y)

    def sample(self, x, n: int, generator=None) -> torch.Tensor:
        return _sample(self.log_prob_table().detach(), x, n, generator)

    def snapshot(self) -> "FrozenPolicy":
        return FrozenPolicy.of_normalised(self.log_prob_table().detach().clone())

    def mixture_sampler(self, other, beta) -> "FrozenPolicy":
        """The normalised geometric mixture self^{1−β} other^β (IPO-MD §5.1), β a float or a [C] tensor: exact,
        since the whole table is at hand."""
        return geometric_mixture(self, other, beta)


class FrozenPolicy(_TablePolicy):
    """A fixed table of log-probabilities [C, X, Y]: π_ref, a snapshot, a behaviour policy, a data policy μ, a
    geometric mixture. Nothing here carries gradient."""

    def __init__(self, log_probs, dtype=None):
        table = _as_table(log_probs, dtype).detach()
        norm = torch.logsumexp(table, dim=-1)
        if not torch.all(torch.isfinite(norm)) or torch.any((norm.abs() > 1e-9)):
            raise ValueError("a frozen policy needs normalised log-probabilities with a non-empty support per prompt")
        self._table = table - norm[..., None]

    @classmethod
    def of_normalised(cls, table: torch.Tensor) -> "FrozenPolicy":
        """Wrap a table that is already a detached, normalised [C, X, Y] log-softmax (skips the checks: the hot path
        of snapshots and mixtures, taken every step)."""
        frozen = cls.__new__(cls)
        frozen._table = table
        return frozen

    def log_prob_table(self) -> torch.Tensor:
        return self._table

    @property
    def dtype(self) -> torch.dtype:
        return self._table.dtype

    @property
    def device(self) -> torch.device:
        return self._table.device

    def to(self, dtype=None, device=None) -> "FrozenPolicy":
        """The same policy with its table in another dtype or on another device."""
        return FrozenPolicy.of_normalised(self._table.to(dtype=dtype, device=device))

    def snapshot(self) -> "FrozenPolicy":
        return self  # already frozen

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self._table.shape)


def geometric_mixture(policy, other, beta) -> FrozenPolicy:
    """π^{1−β} other^β / Z per prompt and configuration, on the intersection of the supports (IPO-MD §5.1).

    ``beta``: a float or a tensor [C]. Computed from the frozen tables of both (the mixture is a sampling
    distribution; no gradient flows through it).
    """
    a, b = policy.log_prob_table().detach(), other.log_prob_table().detach()
    beta = _per_config(beta, max(a.shape[0], b.shape[0])).to(a.dtype)
    # (1 − β)·(−inf) is −inf when the weight is positive and NaN when it is 0 (0·(−inf)): either way the action is
    # outside one of the supports, so NaN → −inf gives exactly the intersection of the supports.
    mixed = torch.nan_to_num((1 - beta) * a + beta * b, nan=-torch.inf, neginf=-torch.inf)
    return FrozenPolicy.of_normalised(torch.log_softmax(mixed, dim=-1))


def _per_config(value, C: int) -> torch.Tensor:
    """A float or a [C] array (or [C, 1]) as a tensor that broadcasts against [C, X, Y]."""
    value = torch.as_tensor(np.asarray(value, dtype=np.float64) if not torch.is_tensor(value) else value, dtype=DTYPE)
    if value.numel() == 1:
        return value.reshape(())
    value = value.reshape(-1)
    if value.shape != (C,):
        raise ValueError(f"a per-configuration parameter must have shape ({C},); got {tuple(value.shape)}")
    return value[:, None, None]


class TabularLogits(_TablePolicy, torch.nn.Module):
    """A trainable lookup-table policy: free logits [C, X, Y], π = softmax over ``support``.

    The parameterisation of the IPO-MD and INPO tabular experiments (their Appendix F / §5 toy games): one free logit
    per action and prompt, so gradient descent on a loss moves each probability independently.
    """

    def __init__(self, logits, support=None):
        super().__init__()
        logits = _as_table(logits)
        if support is None:
            support = torch.ones_like(logits, dtype=torch.bool)
        support = torch.as_tensor(np.asarray(support) if not torch.is_tensor(support) else support, dtype=torch.bool)
        support = support.expand_as(logits).clone()
        if not torch.all(support.any(-1)):
            raise ValueError("every prompt needs at least one action in the support")
        # contiguous: a table built from an expanded array comes out transposed in memory, and the softmax over its
        # last axis, taken several times a step, then runs ~20% slower (measured)
        self.logits = torch.nn.Parameter(torch.where(support, logits, 0.0).contiguous())
        self.register_buffer("support", support)
        self._full_support = bool(support.all())  # then the mask is a no-op: skip it on the hot path

    @classmethod
    def uniform(cls, configs: int, prompts: int, actions: int, support=None, dtype=DTYPE) -> "TabularLogits":
        return cls(torch.zeros(configs, prompts, actions, dtype=dtype), support)

    @classmethod
    def from_log_probs(cls, log_probs) -> "TabularLogits":
        """Start from given log-probabilities [C, X, Y] (−inf marks actions outside the support)."""
        table = _as_table(log_probs)
        return cls(torch.where(torch.isfinite(table), table, 0.0), torch.isfinite(table))

    def log_prob_table(self) -> torch.Tensor:
        masked = self.logits if self._full_support else torch.where(self.support, self.logits, -torch.inf)
        return torch.log_softmax(masked, dim=-1)  # [C, X, Y]

    @property
    def configs(self) -> int:
        return self.logits.shape[0]  # without computing the table

    @property
    def dtype(self) -> torch.dtype:
        return self.logits.dtype

    @property
    def device(self) -> torch.device:
        return self.logits.device

    @torch.no_grad()
    def assign(self, log_probs) -> None:
        """Set the policy to given log-probabilities (closed-form updates write through here)."""
        table = _as_table(log_probs).expand_as(self.logits)
        self.logits.copy_(torch.where(self.support, table, 0.0))


class MLPPolicy(_TablePolicy, torch.nn.Module):
    """A policy that is *not* a lookup table: a small network from prompt features to action logits, its weights
    shared across prompts.

    logits(x) = W₂ tanh(W₁ f(x) + b₁) + b₂ for features f [X, F]. It exists to keep the algorithm interface honest —
    every algorithm runs on it unchanged (tests/test_algorithms.py) — and as the simplest stand-in for a neural
    policy. One configuration (C = 1). ``support`` [X, Y] masks actions outside Supp(π_ref).
    """

    def __init__(self, features, num_actions: int, hidden: int = 16, support=None, seed: int = 0):
        super().__init__()
        features = torch.as_tensor(np.asarray(features), dtype=DTYPE)
        if features.dim() != 2:
            raise ValueError(f"prompt features must have shape [X, F]; got {tuple(features.shape)}")
        generator = torch.Generator().manual_seed(seed)
        X, F = features.shape
        self.register_buffer("features", features)
        self.hidden = torch.nn.Linear(F, hidden, dtype=DTYPE)
        self.out = torch.nn.Linear(hidden, num_actions, dtype=DTYPE)
        with torch.no_grad():
            for layer in (self.hidden, self.out):
                layer.weight.normal_(0.0, 1.0 / np.sqrt(layer.in_features), generator=generator)
                layer.bias.zero_()
            self.out.weight.mul_(0.01)  # start near the uniform policy
        if support is None:
            support = torch.ones(X, num_actions, dtype=torch.bool)
        self.register_buffer("support", torch.as_tensor(np.asarray(support), dtype=torch.bool).reshape(X, num_actions))

    def log_prob_table(self) -> torch.Tensor:
        logits = self.out(torch.tanh(self.hidden(self.features)))  # [X, Y]
        return torch.log_softmax(torch.where(self.support, logits, -torch.inf), dim=-1)[None]  # [1, X, Y]

    @property
    def dtype(self) -> torch.dtype:
        return self.out.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.out.weight.device

