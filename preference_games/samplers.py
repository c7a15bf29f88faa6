"""Where the pair (y, y') comes from, and how it is labelled. Nothing here looks inside a prompt or a response.

An algorithm names the distributions its two responses are drawn from: ``"policy"`` (the current policy under a
stop-gradient), ``"mixture"`` (the normalised geometric mixture π^{1−β} π_ref^β), ``"ref"``, ``"data"`` (a fixed
data policy μ), ``"data-mixture"`` (π^{1−β} μ^β), ``"anchor"`` (a frozen snapshot kept by the algorithm's schedule)
or ``"anchor-mixture"`` (anchor^{1−β} π_ref^β). A :class:`PairSampler` turns those names into :class:`Pairs` in one
of two ways that share every other line of code:

* **exhaustive** (exact): every (x, y, y') with Y, Y' in Supp(π_ref), weighted by its probability
  d0(x)·μ1(y|x)·μ2(y'|x), labelled by the exact preference p(y ≻ y' | x). A loss summed with these weights *is* the
  population loss, and autograd on it gives the exact expected gradient (the trick behind ``dynamics``).
  It needs an :class:`~preference_games.protocols.EnumerablePolicy` and a :class:`TabularOracle`.
* **sampled**: B prompts from the oracle's prompt source (d0), one response from each side per prompt (each side
  asks its policy, or the policy's ``mixture_sampler``, to ``sample``; both sides in one call when they are one
  distribution), weight 1/B, and either the soft label p (IPO-MD Algorithm 2) or a Bernoulli draw from it (the
  λ_p data of eq. 8). Any
  :class:`~preference_games.protocols.Policy` and any oracle that is also a prompt source will do: a table, or an
  autoregressive network on a :class:`~preference_games.sequences.SequenceGame` (and, through the same protocols,
  a transformer).

Shapes: C configurations (policies trained side by side; 1 for a network), B pairs. ``weight`` and ``pref`` are
[C, B] in the policy's dtype and on its device; prompts and responses are whatever the prompt source and the
policies produce ([C, B] indices on a table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .games import PreferenceGame
from .models import DTYPE, FrozenPolicy
from .protocols import live_view

SOURCES = ("policy", "mixture", "ref", "data", "data-mixture", "anchor", "anchor-mixture")
LABELS = ("bernoulli", "soft")


@dataclass(frozen=True)
class Pairs:
    """A batch of pairs: prompts x, responses y and y2 (opaque: indices [C, B] on a table, token batches on a
    sequence model), weight (probability or 1/B) and pref = label or p(y ≻ y2 | x), both [C, B] in the policy's
    dtype. Weights sum to 1 per configuration.
    """

    x: object
    y: object
    y2: object
    weight: torch.Tensor
    pref: torch.Tensor


class TabularOracle:
    """The preference oracle and prompt source of a tabular game (or of C games of one shape, one per
    configuration): ``prob(x, y, y2)`` = P[x, y, y2] exactly; ``sample`` draws prompt indices from d0 for each of
    ``configs`` configurations."""

    def __init__(self, games: PreferenceGame | list[PreferenceGame], configs: int = 1):
        games = [games] if isinstance(games, PreferenceGame) else list(games)
        first = games[0]
        for game in games[1:]:
            if game.P.shape != first.P.shape:
                raise ValueError("games batched together must have the same numbers of prompts and actions")
            if not np.array_equal(game.support, first.support):
                raise ValueError("games batched together must have the same support of the reference policy")
        self.games = games
        self.configs = max(int(configs), len(games))
        self.P = torch.as_tensor(np.stack([g.P for g in games]), dtype=DTYPE)  # [G, X, Y, Y], G = 1 or C
        # One reference and prompt distribution when all games share them ([1, X, Y] and [X]), else one per game
        # ([G, X, Y] and [G, X]); both broadcast against [C, ...] tables. The pair grid needs one shared support.
        shared = all(np.array_equal(g.ref.log_probs, first.ref.log_probs)
                     and np.array_equal(g.prompt_probs, first.prompt_probs) for g in games[1:])
        ref_games = games[:1] if shared else games
        self.prompt_probs = torch.tensor(np.stack([g.prompt_probs for g in ref_games]), dtype=DTYPE)  # [G', X]
        if shared:
            self.prompt_probs = self.prompt_probs[0]  # [X]
        self.ref = FrozenPolicy(np.stack([g.ref.log_probs for g in ref_games]))  # [G', X, Y]
        self.support = torch.as_tensor(first.support)  # [X, Y]
        both = self.support[:, :, None] & self.support[:, None, :]  # [X, Y, Y]
        self.pair_grid = torch.nonzero(both, as_tuple=True)  # (x, y, y2) [B] each: every pair inside Supp(π_ref)
        # d0(x) on supported pairs: [X, Y, Y], or [G, X, Y, Y] with one prompt distribution per game
        self.pair_prompt_weight = self.prompt_probs[..., :, None, None] * both
        self.full_support = bool(self.support.all())

    @property
    def num_prompts(self) -> int:
        return self.P.shape[1]

    @property
    def num_actions(self) -> int:
        return self.P.shape[2]

    def sample(self, batch: int, generator: torch.Generator | None) -> torch.Tensor:
        """``batch`` prompt indices from d0 for every configuration: long [C, B] (each configuration its own)."""
        return torch.multinomial(self.prompt_probs.expand(self.configs, -1), batch, replacement=True,
                                 generator=generator)

    def prob(self, x: torch.Tensor, y: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
        """p(y ≻ y2 | x) for index tensors [C, B] (or [B]): float64 [C, B] (or [G, B])."""
        G = self.P.shape[0]
        if x.dim() == 1:
            return self.P[:, x, y, y2]  # [G, B]
        g = torch.arange(x.shape[0]) if G > 1 else torch.zeros(x.shape[0], dtype=torch.long)
        return self.P[g[:, None], x, y, y2]

    def preference_against(self, table: torch.Tensor) -> torch.Tensor:
        """p(y ≻ π) = (Pπ)(y) for a log-probability table [C, X, Y]: [C, X, Y]."""
        return torch.matmul(self.P, table.exp()[..., None])[..., 0]  # [G, X, Y, Y] @ [C, X, Y, 1]


@dataclass
class Roles:
    """The policies an algorithm can see: the trained ``policy``, the reference ``ref``, an optional data policy
    ``data`` (μ), the ``anchor`` its schedule keeps (previous iterate, behaviour policy, EMA), and ``aux``, extra
    trained modules (an adversary, a reward model, ensemble members). All are
    :class:`~preference_games.protocols.Policy` objects; only the frozen ones are ever sampled from."""

    policy: object
    ref: object
    data: object | None = None
    anchor: object | None = None
    aux: dict | None = None
    iteration: int = 0  # outer iterations so far (anchor refreshes), for schedules such as INPO's η_t

    @property
    def configs(self) -> int:
        return self.policy.configs


class PairSampler:
    """Pairs from the distributions named ``first`` and ``second`` (see the module docstring); ``beta`` is the
    weight of π_ref (or μ) in a mixture source: a float, a [C] tensor, or a function of the roles that returns one
    (a schedule, e.g. Nash-MD's β_t = 2/(t + 2) over outer iterations)."""

    def __init__(self, first: str = "policy", second: str | None = None, beta=None):
        second = first if second is None else second
        for name in (first, second):
            if name not in SOURCES:
                raise ValueError(f"unknown pair source {name!r}; choose from {SOURCES}")
        if any(name.endswith("mixture") for name in (first, second)):
            if beta is None:
                raise ValueError("a mixture source needs beta")
        self.first, self.second = first, second
        # a tensor once (the mixture is rebuilt every step); a schedule is evaluated when the mixture is built
        as_is = beta is None or callable(beta)
        self.beta = beta if as_is else torch.as_tensor(np.asarray(beta, dtype=np.float64), dtype=DTYPE)

    def __repr__(self) -> str:
        return f"PairSampler({self.first!r}, {self.second!r})"

    def sources(self, roles: Roles):
        """The two distributions, built once when both sides name the same one."""
        first = self.source(roles, self.first)
        return first, first if self.second == self.first else self.source(roles, self.second)

    def source(self, roles: Roles, name: str):
        """The (frozen) distribution behind a source name."""
        if name == "policy":
            return live_view(roles.policy)
        beta = self.beta(roles) if callable(self.beta) else self.beta
        if name == "mixture":
            return roles.policy.mixture_sampler(roles.ref, beta)
        if name == "ref":
            return roles.ref
        if name in ("data", "data-mixture") and roles.data is None:
            raise ValueError(f"pair source {name!r} needs a data policy μ")
        if name == "data":
            return roles.data
        if name == "data-mixture":
            return roles.policy.mixture_sampler(roles.data, beta)
        if roles.anchor is None:
            raise ValueError(f"pair source {name!r} needs an algorithm schedule that keeps an anchor")
        return roles.anchor if name == "anchor" else roles.anchor.mixture_sampler(roles.ref, beta)

    def exhaustive(self, roles, oracle: TabularOracle) -> Pairs:
        """Every supported (x, y, y2) with weight d0(x) μ1(y|x) μ2(y2|x) and the exact label p(y ≻ y2 | x)."""
        first, second = self.sources(roles)
        t1, t2 = first.log_prob_table(), second.log_prob_table()  # [C, X, Y]
        C = max(t1.shape[0], t2.shape[0], roles.configs)
        x, y, y2 = oracle.pair_grid  # [B] each
        log_w = torch.log(oracle.prompt_probs)[..., x] + t1[:, x, y] + t2[:, x, y2]  # [C', B]
        weight = log_w.exp().expand(C, -1)
        pref = oracle.prob(x, y, y2).to(weight.dtype).expand(C, -1)
        expand = lambda v: v.expand(C, -1)  # noqa: E731  (the grid is shared by every configuration)
        return Pairs(expand(x), expand(y), expand(y2), weight, pref)

    def sample(self, roles, oracle, batch: int, generator: torch.Generator, labels: str) -> Pairs:
        """``batch`` prompts from the oracle's prompt source, one response per side from each policy's ``sample``
        (both sides in one ``sample(x, 2)`` call when they name the same distribution: y = draws 0, 2, 4, …,
        y2 = draws 1, 3, 5, …, which needs responses indexable along [C, B], as tensors and ``Tokens`` are);
        soft or Bernoulli labels from the oracle. ``oracle``: a PreferenceOracle that is also a PromptSource."""
        if labels not in LABELS:
            raise ValueError(f"labels must be one of {LABELS}; got {labels!r}")
        policy = roles.policy
        x = oracle.sample(batch, generator)  # [C, B] prompts
        first, second = self.sources(roles)
        if first is second:
            # One distribution: both sides in one call decode 2B sequences at once, where two calls would run the
            # model's step loop twice over B (for a transformer the same cost per step for B or 2B rows at small
            # sizes, so half the sampling time). Prompt b's two draws sit at 2b and 2b + 1.
            both = first.sample(x, 2, generator)  # [C, 2B]
            y, y2 = both[:, 0::2], both[:, 1::2]  # [C, B] each
        else:
            y = first.sample(x, 1, generator)  # [C, B] responses, one per prompt
            y2 = second.sample(x, 1, generator)
        p = oracle.prob(x, y, y2).to(policy.dtype).expand(roles.configs, -1)  # [C, B]
        # Bernoulli draws on the CPU generator: the labels of a seeded run do not depend on the device
        pref = p if labels == "soft" else torch.bernoulli(p.cpu(), generator=generator).to(p.device)
        weight = torch.full_like(p, 1.0 / batch)
        return Pairs(x, y, y2, weight, pref.to(policy.device))
