"""Exact tools the checks share: population losses and their logit gradients, and games batched as numpy arrays.

The population loss of an algorithm is its objective on the exhaustive pairs (every (x, y, y') weighted by its
probability), so autograd on the logits gives the exact expected gradient — no sampling anywhere
(:func:`population_gradient`, :func:`gradients_at`). For closed forms and dynamics written in numpy, :class:`Batch`
stacks games as arrays, one entry per configuration, with the log-softmax (:func:`log_softmax`), P(y ≻ π), geometric
mixture, KL and duality gap the checks need.

>>> from preference_games.algorithms import make
>>> from preference_games.games import rps_variant
>>> from preference_games.equilibria import regularized_nash
>>> game = rps_variant(antisymmetrize=True)
>>> star = regularized_nash(game, 0.1).policy.log_probs
>>> _, grad = population_gradient(make("online-ipo", tau=0.1), [game], star[None])
>>> bool(abs(grad).max() < 1e-12)            # IPO-MD Prop. 4.1: the equilibrium is stationary
True
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..algorithms import make
from ..games import PreferenceGame
from ..models import FrozenPolicy, TabularLogits
from ..policies import _kl
from ..samplers import Roles, TabularOracle


def population_gradient(algorithm, games: list[PreferenceGame], log_probs, *, data=None, anchor=None):
    """The algorithm's population loss [C] and its gradient with respect to the logits [C, X, Y] at the policies
    ``log_probs`` [C, X, Y], configuration c on ``games[c]`` (one game for all, or one per configuration, all of one
    shape and support: see :func:`by_shape`). ``data``: μ [X, Y] for offline algorithms (default: each game's π_ref);
    ``anchor``: log-probabilities [C, X, Y] of the frozen snapshot for anchored algorithms (INPO's π_t, BPO's
    behaviour policy; default: the policy itself)."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    oracle = TabularOracle(list(games))
    policy = TabularLogits.from_log_probs(log_probs)
    data_policy = oracle.ref if data is None else FrozenPolicy(games[0].policy(data).log_probs)  # default: each π_ref
    roles = Roles(policy=policy, ref=oracle.ref, data=data_policy,
                  anchor=policy.snapshot() if anchor is None else FrozenPolicy(anchor), aux={})
    roles.aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
    pairs = [s.exhaustive(roles, oracle) for s in algorithm.samplers]
    loss = algorithm.objective(roles, *pairs)
    (grad,) = torch.autograd.grad(loss.sum(), [policy.logits])
    return loss.detach().numpy(), grad.numpy()


def gradients_at(name: str, games, taus, solve):
    """Yield (τ, game, π, ∇) for every τ in ``taus`` and game: π = ``solve(game, τ)`` (a TabularPolicy, e.g. the
    regularised equilibrium) and ∇ [X, Y] the exact population gradient of ``make(name, tau=τ)`` at π, one
    :func:`population_gradient` call per τ and shape group (:func:`by_shape`)."""
    for tau in taus:
        algorithm = make(name, tau=tau)
        for indices in by_shape(games).values():
            group = [games[i] for i in indices]
            solutions = [solve(g, tau) for g in group]
            _, grad = population_gradient(algorithm, group, np.stack([s.log_probs for s in solutions]))
            yield from ((tau, g, s, gr) for g, s, gr in zip(group, solutions, grad))


def by_shape(games) -> dict[tuple, list[int]]:
    """Indices of ``games`` grouped by (prompts, actions, support of π_ref): each group can run as one batch (one
    :func:`population_gradient` or :func:`~preference_games.dynamics.simulate` call, a configuration per game)."""
    groups = defaultdict(list)
    for i, game in enumerate(games):
        groups[(game.num_prompts, game.num_actions, game.support.tobytes())].append(i)
    return dict(groups)


def random_policies(game: PreferenceGame, count: int, rng: np.random.Generator, scale: float = 2.0) -> np.ndarray:
    """``count`` random policies of the game with full support on Supp(π_ref): log-probabilities [count, X, Y]
    (logits N(0, scale²), −inf outside the support)."""
    logits = rng.normal(scale=scale, size=(count,) + game.ref.shape)
    logits = np.where(game.support, logits, -np.inf)
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


def log_softmax(z: np.ndarray, support: np.ndarray | None = None) -> np.ndarray:
    """Log-probabilities from log-weights ``z`` over the last axis, z − max − log Σ exp(z − max); with ``support``
    (bool, broadcasting against z) −inf outside it.

    :func:`random_policies` and a few per-game normalisations in the checks (``z − logaddexp.reduce(z)``) round
    differently in the last bit; they keep their form because the seeded random policies they draw, and so the
    documented round-off-level errors, depend on it."""
    if support is not None:
        z = np.where(support, z, -np.inf)
    top = z.max(axis=-1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(axis=-1, keepdims=True))


def column(value) -> np.ndarray:
    """A scalar parameter, or one per entry [C], shaped to broadcast against tables [C, X, Y]."""
    value = np.asarray(value, dtype=np.float64)
    return value if value.ndim == 0 else value[:, None, None]


@dataclass(frozen=True)
class Batch:
    """Games as stacked arrays, one entry per configuration (a game may repeat), all with X prompts:

    * ``P`` [C, X, Y, Y] — p(y ≻ y'); ``S`` [C, X, Y, Y] — its skew part P − ½, as the games store it;
    * ``log_ref`` [C, X, Y] — log π_ref, −inf outside the support; ``support`` [C, X, Y] (bool); ``d0`` [C, X].

    Built by :meth:`of` from games of one shape, or (``pad=True``) of any numbers of actions: a game with fewer than
    Y actions is padded with actions outside its support (probability 0 throughout, P = ½, S = 0), so that games of
    different sizes run as one batch. Every method acts on tables [..., C, X, Y] (leading axes broadcast) and masks
    by the support.
    """

    games: tuple
    P: np.ndarray
    S: np.ndarray
    log_ref: np.ndarray
    support: np.ndarray
    d0: np.ndarray

    @classmethod
    def of(cls, games, *, pad: bool = False) -> Batch:
        """The batch of ``games``, one entry each; ``pad``: allow different numbers of actions (see the class)."""
        games = tuple(games)
        # stack each distinct game once, then index: a batch often repeats every game once per configuration
        distinct = list({id(g): g for g in games}.values())
        position = {id(g): j for j, g in enumerate(distinct)}
        widths = {g.num_actions for g in distinct}
        if len({g.num_prompts for g in distinct}) != 1 or (len(widths) > 1 and not pad):
            raise ValueError("a batch needs games with one number of prompts"
                             + ("" if pad else " and one number of actions (or pad=True)"))
        X, Y = distinct[0].num_prompts, max(widths)
        P, S = np.full((len(distinct), X, Y, Y), 0.5), np.zeros((len(distinct), X, Y, Y))
        log_ref, support = np.full((len(distinct), X, Y), -np.inf), np.zeros((len(distinct), X, Y), dtype=bool)
        for j, g in enumerate(distinct):
            n = g.num_actions
            P[j, :, :n, :n], S[j, :, :n, :n] = g.P, g.S
            log_ref[j, :, :n], support[j, :, :n] = g.ref.log_probs, g.support
        d0 = np.stack([g.prompt_probs for g in distinct])
        entries = np.array([position[id(g)] for g in games])
        return cls(games, P[entries], S[entries], log_ref[entries], support[entries], d0[entries])

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.games]

    def head(self, n: int) -> Batch:
        """The first ``n`` entries, as a batch (views, no copies)."""
        return replace(self, games=self.games[:n], P=self.P[:n], S=self.S[:n], log_ref=self.log_ref[:n],
                       support=self.support[:n], d0=self.d0[:n])

    def padded(self, log_probs) -> np.ndarray:
        """Log-probabilities [X, Y_c], one per entry, stacked to [C, X, Y] (−inf on the padding)."""
        out = np.full((len(log_probs),) + self.log_ref.shape[1:], -np.inf)
        for c, lp in enumerate(log_probs):
            out[c, ..., :lp.shape[-1]] = lp
        return out

    def inside(self, table: np.ndarray) -> np.ndarray:
        """``table`` with 0 outside the support, so that weighted sums never form 0·(±inf) = nan."""
        return np.where(self.support, table, 0.0)

    def normalise(self, table: np.ndarray) -> np.ndarray:
        """Log-probabilities from log-weights: :func:`log_softmax` over the support (−inf outside it)."""
        return log_softmax(table, self.support)

    def mixture(self, log_pi: np.ndarray, beta) -> np.ndarray:
        """log π_β, π_β ∝ π^{1−β} π_ref^β per prompt (β the weight of π_ref; a float or one per entry [C])."""
        beta = column(beta)
        return self.normalise((1.0 - beta) * self.inside(log_pi) + beta * self.inside(self.log_ref))

    def win(self, log_pi: np.ndarray) -> np.ndarray:
        """p(y ≻ π) = (Pπ)(y)."""
        return np.matmul(self.P, np.exp(log_pi)[..., None])[..., 0]

    def expected(self, per_prompt: np.ndarray) -> np.ndarray:
        """d0-expectation over prompts: [..., C, X] → [..., C]."""
        return (per_prompt * self.d0).sum(axis=-1)

    def kl(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        """Σ_x d0(x) KL(p(·|x) ‖ q(·|x)) (``policies._kl``): [..., C]."""
        return self.expected(_kl(log_p, log_q))

    def gap0(self, log_pi: np.ndarray) -> np.ndarray:
        """The unregularised duality gap Σ_x d0(x)·(2 max_{y ∈ Supp} p(y ≻ π) − 1) (docs/engine.md): [..., C]."""
        best = np.where(self.support, self.win(log_pi), -np.inf).max(axis=-1)
        return self.expected(np.maximum(2.0 * best - 1.0, 0.0))


def batches(games) -> list[Batch]:
    """The games as shape groups (:func:`by_shape`), one :class:`Batch` each."""
    return [Batch.of([games[i] for i in indices]) for indices in by_shape(games).values()]
