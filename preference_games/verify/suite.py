"""The games every check runs on: the named games plus N seeded random games from four families.

Families (round-robin in :meth:`Suite.random`, or one family on request):

* ``intransitive`` — skew part uniform in [−½, ½] with no Condorcet winner, 3–6 actions;
* ``bradley-terry`` — p(i ≻ j) = σ(r_i − r_j), rewards N(0, 1.5²), 2–6 actions (transitive);
* ``cyclic`` — the cyclic tournament on 3–7 actions with a random strength in (0.2, 1];
* ``contextual`` — 2–3 prompts of random intransitive 3–5-action games with a Dirichlet prompt distribution.

Every random game gets a full-support reference policy, Dirichlet(1.5) — uniform for about a quarter of them — so that
the claims are tested away from the uniform reference that makes many of them trivial. A random game's name says how
to rebuild it (``Suite(seed=S).random(family)[i]``; ``family-k#i``: ``Suite(seed=S).random(family, actions=k)[i]``),
so every counterexample a check prints is reproducible.

Checks that need games of their own draw them here too, seeded from the suite's seed: games of one size
(``random(family, actions=k)``, e.g. 3-action games for IPO-MD App. F), :meth:`Suite.two_action_games` (Thm. G.6)
and :func:`with_unregularised_references` (Lemma G.5).
:meth:`Suite.rng` gives each check its own seeded generator.

>>> suite = Suite(games=8, seed=0)
>>> [g.name for g in suite.random()[:2]]
['intransitive#0 (seed 0)', 'bradley-terry#1 (seed 0)']
>>> len(suite.games()) == len(suite.named()) + 8
True
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..equilibria import nash_lp
from ..games import PreferenceGame, bradley_terry, by_name, cyclic, random_intransitive

FAMILIES = ("intransitive", "bradley-terry", "cyclic", "contextual")

#: The built-in games every check also runs on, with the family each belongs to.
NAMED = {"rps": "cyclic", "rps-variant": "intransitive", "biased-rps": "intransitive", "cyclic": "cyclic",
         "bradley-terry": "bradley-terry", "condorcet": "intransitive"}


class Suite:
    """The named games and ``games`` seeded random ones (``seed``)."""

    def __init__(self, games: int = 200, seed: int = 0):
        if int(games) != games or games < 0:
            raise ValueError(f"the number of random games must be a non-negative integer; got {games}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed}")
        self.n, self.seed = int(games), int(seed)

    def __repr__(self) -> str:
        return f"Suite(games={self.n}, seed={self.seed})"

    @lru_cache(maxsize=None)
    def named(self, family: str | None = None) -> tuple[PreferenceGame, ...]:
        """The built-in games (RPS, the Appendix F variant repaired, biased RPS, cyclic(5), Bradley–Terry(5),
        Condorcet(5)), or those of one family."""
        _check_family(family)
        return tuple(by_name(name, antisymmetrize=True) for name, fam in NAMED.items() if family in (None, fam))

    @lru_cache(maxsize=None)
    def random(self, family: str | None = None, actions: int | None = None) -> tuple[PreferenceGame, ...]:
        """``games`` seeded random games: the families in turn, or all of one family; ``actions``: all of that size
        (a family's game of a fixed size is drawn from a stream of its own and named ``family-actions#i``)."""
        _check_family(family)
        if actions is not None and family is None:
            raise ValueError("a fixed number of actions needs a family")
        return tuple(_random_game(family or FAMILIES[i % len(FAMILIES)], i, self.seed, actions)
                     for i in range(self.n))

    def games(self, family: str | None = None) -> tuple[PreferenceGame, ...]:
        """The named games and the random ones (of one family, or of all in turn)."""
        return self.named(family) + self.random(family)

    def rng(self, *tags: int) -> np.random.Generator:
        """The generator ``default_rng([seed, *tags])``: one stream per check (its own tags), so each check's random
        draws are reproducible alone and do not depend on which other checks ran."""
        return np.random.default_rng([self.seed, *tags])

    def two_action_games(self) -> list[tuple[PreferenceGame, float]]:
        """(game, τ) pairs for IPO-MD Thm. G.6: P[0, 1] = p on a grid of 401 points in [0, 1] (uniform π_ref,
        τ = 0.1), then ``n`` seeded random ones, game i from ``rng(6, i)`` — p uniform, π_ref Dirichlet(1.5), τ
        log-uniform in [0.01, 10] — named "2-action#i (seed S)"."""
        out = []
        for p in np.linspace(0.0, 1.0, 401):
            out.append((PreferenceGame([[0.5, p], [1 - p, 0.5]], name=f"2-action p = {p:g}"), 0.1))
        for i in range(self.n):
            rng = self.rng(6, i)
            p, ref = rng.uniform(), rng.dirichlet([1.5, 1.5])
            tau = float(np.exp(rng.uniform(np.log(0.01), np.log(10))))
            out.append((PreferenceGame([[0.5, p], [1 - p, 0.5]], ref, name=f"2-action#{i} (seed {self.seed})"), tau))
        return out

def with_unregularised_references(games) -> list[PreferenceGame]:
    """For each game whose unregularised equilibrium NE_0 (``nash_lp``'s max-entropy selection) covers
    Supp(π_ref): the same game with π_ref = NE_0, named "<name> with π_ref = NE_0"."""
    extra = []
    for game in games:
        ne = nash_lp(game).policy
        if np.all(ne.support | ~game.support):
            extra.append(PreferenceGame(game.P, ne, game.prompt_probs, actions=game.actions,
                                        name=f"{game.name} with π_ref = NE_0"))
    return extra


def _check_family(family):
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown game family {family!r}; choose one of: {', '.join(FAMILIES)}")


#: The numbers of actions each family draws from (both ends included), and the fewest it can have.
SIZES = {"intransitive": (3, 6), "bradley-terry": (2, 6), "cyclic": (3, 7), "contextual": (3, 5)}


def _random_game(family: str, i: int, seed: int, actions: int | None = None) -> PreferenceGame:
    low, high = SIZES[family]
    if actions is not None and (int(actions) != actions or actions < low):
        raise ValueError(f"the {family} family needs an integer number of actions >= {low}; got {actions}")
    stream = [seed, FAMILIES.index(family), i] + ([] if actions is None else [int(actions)])
    rng = np.random.default_rng(stream if actions is None else stream + [0])  # fixed-size draws: stream + [0]
    name = f"{family}#{i} (seed {seed})" if actions is None else f"{family}-{actions}#{i} (seed {seed})"
    n = int(rng.integers(low, high + 1)) if actions is None else int(actions)
    if family == "intransitive":
        P = random_intransitive(n, seed=int(rng.integers(2**32))).P
    elif family == "bradley-terry":
        P = bradley_terry(rng.normal(scale=1.5, size=n)).P
    elif family == "cyclic":
        P = cyclic(n, strength=float(rng.uniform(0.2, 1.0))).P
    else:
        P = random_intransitive(n, seed=int(rng.integers(2**32)), num_prompts=int(rng.integers(2, 4))).P
    X, Y = P.shape[:2]
    # A uniform reference for a quarter of the games, decided on a stream of its own (not by i mod 4, which in the
    # round-robin would pick one family; not from ``rng``, so the other games keep their draws).
    uniform = np.random.default_rng(stream + [1]).random() < 0.25
    ref = np.full((X, Y), 1.0 / Y) if uniform else rng.dirichlet(np.full(Y, 1.5), size=X)
    prompt_probs = rng.dirichlet(np.ones(X)) if X > 1 else None
    return PreferenceGame(P, ref, prompt_probs, name=name)
