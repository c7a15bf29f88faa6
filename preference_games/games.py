"""Preference games: a validated preference matrix per prompt, a reference policy and a prompt distribution.

A preference game over a finite action set Y has a matrix ``P[i, j] = p(i ≻ j)`` with ``P + Pᵀ = 1``. With a
reference policy π_ref and a KL temperature τ ≥ 0 it defines the symmetric constant-sum game

    J(π1, π2) = E_x[ π1ᵀ P π2 − τ KL(π1‖π_ref) + τ KL(π2‖π_ref) ]

(IPO-MD paper, eq. 9; INPO paper, eq. 3; both call our τ "τ"). π1 maximises, π2 minimises. τ is not part of the
game object: it is an argument of every solver, so one game serves a whole τ-path.

Notation (``../shared/DESIGN.md``): ``tau`` is the KL coefficient; ``beta`` is reserved for the geometric-mixture
weight and never means the KL coefficient here.

Example
-------
>>> game = rock_paper_scissors()
>>> game.num_actions, game.num_prompts
(3, 1)
>>> float(game.P[0, 0, 2])    # rock beats scissors
1.0
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from .policies import TabularPolicy, real_array

#: Largest |P + Pᵀ − 1| accepted without ``antisymmetrize=True``. It admits float round-off in files (for example
#: 0.1 and 0.9 written by another program) and nothing a person would call a different matrix.
CONSTANT_SUM_ATOL = 1e-9


#: Building a game holds several [X, Y, Y] arrays at once: the random draw or the caller's matrix, the validated
#: copy, masks, the pair sums, S and P. Measured: building the random, cyclic and bradley-terry games with 4000
#: actions peaks at 6.5-7.5 times the memory of P, and solving the 2000-action random game at τ = 0.1 adds nothing
#: to that peak. So a game needs about this many times the memory of P.
GAME_ARRAYS = 8


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not say (``os.sysconf`` is POSIX)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_game_size(num_actions: int, num_prompts: int = 1) -> None:
    """Refuse, before anything is allocated, a game whose arrays cannot fit in this machine's memory.

    The limit is physical memory, not the memory free right now: the latter changes from one second to the next
    (so whether a command ran would depend on what else was running), while a game needing more than the whole
    machine can never be built, and numpy would only fail deep inside with an allocation error (or the OS would
    swap until killed). What fits physically but not beside other programs still fails with MemoryError.
    """
    total = physical_memory()
    need = 8 * num_prompts * num_actions**2  # bytes of P alone
    if total is not None and GAME_ARRAYS * need > total:
        largest = math.isqrt(total // (GAME_ARRAYS * 8 * num_prompts))
        prompts = f" × {num_prompts} prompts" if num_prompts > 1 else ""
        raise ValueError(
            f"a {num_actions}-action game{prompts} needs {need / 2**30:.3g} GiB for P alone and about {GAME_ARRAYS} "
            f"times that to build and solve; this machine has {total / 2**30:.3g} GiB (largest game here: about "
            f"{largest} actions)"
        )


def _where(x: int, i: int, j: int, num_prompts: int) -> str:
    return f"P[{i}, {j}]" if num_prompts == 1 else f"P[{x}][{i}, {j}]"


def _describe_violations(bad: np.ndarray, describe, k: int = 3) -> str:
    """Name up to ``k`` entries flagged in the bool [X, Y, Y] mask ``bad``, worst (by ``describe``'s score) first."""
    found = sorted((describe(x, i, j) for x, i, j in np.argwhere(bad)), key=lambda item: -item[0])
    text = ", ".join(message for _, message in found[:k])
    return text + (f" and {len(found) - k} more" if len(found) > k else "")


def _validated_skew_part(P, antisymmetrize: bool) -> np.ndarray:
    """Return the skew part ``S = (P − Pᵀ)/2`` of a valid game matrix as float64 [X, Y, Y], or raise ``ValueError``.

    The game then stores ``P = ½ + S``. For a valid matrix this moves entries by at most
    ``CONSTANT_SUM_ATOL / 2`` and makes the skew part ``S = P − ½`` exactly antisymmetric, which the solvers and the
    duality-gap formula rely on (they use ``Pπ = ½ + Sπ`` for every π on the simplex).
    """
    P = real_array(P, "preference matrix")
    if P.ndim not in (2, 3) or P.shape[-1] != P.shape[-2]:
        raise ValueError(f"preference matrix must be square (Y, Y) or a stack (X, Y, Y); got shape {P.shape}")
    if P.size == 0:
        raise ValueError("preference matrix is empty")
    check_game_size(P.shape[-1], 1 if P.ndim == 2 else P.shape[0])
    if not np.all(np.isfinite(P)):
        bad = np.argwhere(~np.isfinite(P))[0]
        raise ValueError(f"preference matrix has a non-finite entry at {tuple(int(b) for b in bad)}")
    if P.ndim == 2:
        P = P[None]
    X = P.shape[0]
    outside = (P < 0) | (P > 1)
    if np.any(outside):
        where = _describe_violations(
            outside, lambda x, i, j: (abs(P[x, i, j] - 0.5), f"{_where(x, i, j, X)} = {P[x, i, j]:.6g}")
        )
        raise ValueError(f"preference probabilities must lie in [0, 1]: {where}")
    pair_sum = P + np.swapaxes(P, 1, 2)
    upper = np.triu(np.ones(P.shape[1:], dtype=bool))  # each pair once; the diagonal must be ½
    off = (np.abs(pair_sum - 1.0) > CONSTANT_SUM_ATOL) & upper
    if not antisymmetrize and np.any(off):
        def describe(x, i, j):
            if i == j:
                return abs(pair_sum[x, i, i] - 1), f"{_where(x, i, i, X)} = {P[x, i, i]:.6g} (must be 0.5)"
            text = f"{_where(x, i, j, X)} + {_where(x, j, i, X)} = {pair_sum[x, i, j]:.6g}"
            return abs(pair_sum[x, i, j] - 1), text

        raise ValueError(
            f"preference matrix is not constant-sum (P + Pᵀ = 1 within {CONSTANT_SUM_ATOL:g}): "
            f"{_describe_violations(off, describe)}; "
            "pass antisymmetrize=True (CLI: --antisymmetrize) to use (P − Pᵀ + 1)/2"
        )
    return 0.5 * (P - np.swapaxes(P, 1, 2))


def _probability_vector(values, shape: tuple[int, ...], what: str) -> np.ndarray:
    values = real_array(values, what)
    if values.shape != shape:
        raise ValueError(f"{what} must have shape {shape}; got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{what} must be finite and non-negative")
    totals = values.sum(axis=-1)
    if np.any(np.abs(totals - 1.0) > 1e-9):
        worst = int(np.argmax(np.abs(totals - 1.0)))
        raise ValueError(f"{what} must sum to 1 (row {worst} sums to {totals.flat[worst]:.12g})")
    return values / totals[..., None]


class PreferenceGame:
    """A batch of preference games, one per prompt, with a reference policy and a prompt distribution.

    Attributes
    ----------
    P : float64 [X, Y, Y]
        ``P[x, i, j] = p(i ≻ j | x)``, exactly constant-sum after construction.
    ref : TabularPolicy [X, Y]
        π_ref. Its zeros restrict every policy to ``Supp(π_ref)`` (IPO-MD §2 and INPO §2.2 both restrict the policy
        class this way); solvers return exact zeros there.
    prompt_probs : float64 [X]
        The prompt distribution d0; every scalar measure is an expectation under it.
    actions : tuple of str
        Action labels, for printing.

    Construction validates the matrix: square, finite, entries in [0, 1] and ``|P + Pᵀ − 1| ≤ 1e-9``; otherwise a
    ``ValueError`` names the worst entries. ``antisymmetrize=True`` instead replaces P by ``(P − Pᵀ + 1)/2``. That
    repair is the matrix the data actually sees: the λ_p labelling of IPO-MD eq. 8 orders a pair (y, y') by one coin
    with probability p(y ≻ y'), and when pairs are drawn in random order the chance that y ends up preferred is
    ``½ p(y ≻ y') + ½ (1 − p(y' ≻ y))``, which is exactly ``(P − Pᵀ + 1)/2``.

    >>> float(PreferenceGame([[0.5, 0.7], [0.3, 0.5]]).P[0, 0, 1])
    0.7
    >>> PreferenceGame([[0.5, 0.7], [0.2, 0.5]])
    Traceback (most recent call last):
    ...
    ValueError: preference matrix is not constant-sum (P + Pᵀ = 1 within 1e-09): P[0, 1] + P[1, 0] = 0.9; pass antisymmetrize=True (CLI: --antisymmetrize) to use (P − Pᵀ + 1)/2
    """

    def __init__(
        self,
        P,
        ref=None,
        prompt_probs=None,
        *,
        antisymmetrize: bool = False,
        actions: Sequence[str] | None = None,
        name: str = "game",
    ):
        S = _validated_skew_part(P, antisymmetrize)
        X, Y, _ = S.shape
        if ref is None:
            ref = TabularPolicy.uniform(X, Y)
        elif not isinstance(ref, TabularPolicy):
            ref_probs = real_array(ref, "reference policy")
            if ref_probs.ndim == 1:
                ref_probs = np.broadcast_to(ref_probs, (X,) + ref_probs.shape)
            ref = TabularPolicy.from_probs(_probability_vector(ref_probs, (X, Y), "reference policy"))
        if ref.shape != (X, Y):
            raise ValueError(f"reference policy must have shape {(X, Y)}; got {ref.shape}")
        if prompt_probs is None:
            prompt_probs = np.full(X, 1.0 / X)
        prompt_probs = _probability_vector(prompt_probs, (X,), "prompt distribution")
        if actions is None:
            actions = tuple(str(i) for i in range(Y))
        actions = tuple(str(a) for a in actions)
        if len(actions) != Y:
            raise ValueError(f"expected {Y} action names; got {len(actions)}")
        self.S = S  # [X, Y, Y] exactly antisymmetric; Pπ = ½ + Sπ for every π on the simplex
        self.P = 0.5 + S  # [X, Y, Y]
        self.P.flags.writeable = False
        self.S.flags.writeable = False
        self.ref = ref
        self.prompt_probs = prompt_probs
        self.prompt_probs.flags.writeable = False
        self.actions = actions
        self.name = name

    def __repr__(self) -> str:
        return f"PreferenceGame({self.name!r}, prompts={self.num_prompts}, actions={self.num_actions})"

    # ----------------------------------------------------------------------------------------------- shape
    @property
    def num_prompts(self) -> int:
        return self.P.shape[0]

    @property
    def num_actions(self) -> int:
        return self.P.shape[1]

    @property
    def support(self) -> np.ndarray:
        """bool [X, Y]: the actions π_ref can play; every policy of the game lives there."""
        return self.ref.support

    def with_ref(self, ref) -> "PreferenceGame":
        """The same preferences and prompts with another reference policy."""
        return PreferenceGame(self.P, ref, self.prompt_probs, actions=self.actions, name=self.name)

    # ------------------------------------------------------------------------------------------ quantities
    def preference_against(self, policy) -> np.ndarray:
        """p(y ≻ π) = (P π)(y) for every action: float64 [X, Y] (IPO-MD eq. 12 shorthand)."""
        pi = self.policy(policy).probs
        return np.einsum("xij,xj->xi", self.P, pi)

    def win_rate(self, policy1, policy2) -> np.ndarray:
        """π1ᵀ P π2 per prompt: the probability that π1's response is preferred, float64 [X]."""
        pi1, pi2 = self.policy(policy1).probs, self.policy(policy2).probs
        return np.einsum("xi,xij,xj->x", pi1, self.P, pi2)

    def expected(self, per_prompt: np.ndarray) -> float:
        """E_{x ~ d0}[value[x]] for a per-prompt array [X]."""
        return float(self.prompt_probs @ per_prompt)

    def policy(self, policy) -> TabularPolicy:
        """Coerce probabilities ([Y] for a one-prompt game, or [X, Y]) to a policy of this game, checking its shape
        and that it puts no mass outside ``Supp(π_ref)``."""
        if not isinstance(policy, TabularPolicy):
            probs = real_array(policy, "policy")
            if probs.ndim == 1:
                probs = probs[None]
            policy = TabularPolicy.from_probs(
                _probability_vector(probs, (self.num_prompts, self.num_actions), "policy")
            )
        if policy.shape != (self.num_prompts, self.num_actions):
            raise ValueError(
                f"policy has shape {policy.shape}; this game needs {(self.num_prompts, self.num_actions)}"
            )
        if np.any(policy.support & ~self.support):
            x, y = np.argwhere(policy.support & ~self.support)[0]
            raise ValueError(f"policy puts mass on action {y} (prompt {x}) outside the support of π_ref")
        return policy

    # -------------------------------------------------------------------------------------- combination
    @staticmethod
    def stack(games: Sequence["PreferenceGame"], prompt_probs=None, name: str = "contextual") -> "PreferenceGame":
        """A contextual game with one prompt per single-prompt game (all with the same number of actions)."""
        if not games:
            raise ValueError("stack needs at least one game")
        sizes = {g.num_actions for g in games}
        if len(sizes) != 1:
            raise ValueError(f"games to stack must have the same number of actions; got {sorted(sizes)}")
        P = np.concatenate([g.P for g in games])
        ref = TabularPolicy(np.concatenate([g.ref.log_probs for g in games]))
        return PreferenceGame(P, ref, prompt_probs, actions=games[0].actions, name=name)


# ================================================================================================ constructors
ROCK_PAPER_SCISSORS = ("rock", "paper", "scissors")


def rock_paper_scissors() -> PreferenceGame:
    """Classic rock-paper-scissors as a preference game: the winner is preferred with probability 1.

    Its unique equilibrium is uniform, and with a uniform reference the regularised equilibrium is uniform at every τ.
    """
    P = [[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]]
    return PreferenceGame(P, actions=ROCK_PAPER_SCISSORS, name="rps")


#: The matrix printed in Appendix F of the IPO-MD paper (Calandriello et al. 2024) for Figure 9. It is *not*
#: constant-sum: P[0, 1] + P[1, 0] = 0.9 and P[1, 2] + P[2, 1] = 0.9.
IPO_MD_FIGURE9_PRINTED = ((0.5, 0.8, 0.1), (0.1, 0.5, 0.8), (0.9, 0.1, 0.5))


def rps_variant(*, antisymmetrize: bool = False) -> PreferenceGame:
    """The rock-paper-scissors variant of IPO-MD Appendix F (Figure 9; τ = 0.1, uniform π_ref in the paper).

    The printed matrix violates P + Pᵀ = 1 in two pairs, so this raises unless ``antisymmetrize=True``, which uses
    ``(P − Pᵀ + 1)/2`` — the matrix λ_p-labelled data drawn from the printed probabilities actually has:

        [[0.5 , 0.85, 0.1 ],
         [0.15, 0.5 , 0.85],
         [0.9 , 0.15, 0.5 ]]

    The paper does not name the actions. In this matrix action 0 beats 1, 1 beats 2 and 2 beats 0, so the names
    that keep rock-paper-scissors' meaning are (rock, scissors, paper) — the reverse cycle of
    :func:`rock_paper_scissors`' order.
    """
    return PreferenceGame(
        IPO_MD_FIGURE9_PRINTED, antisymmetrize=antisymmetrize, actions=RPS_VARIANT_ACTIONS, name="rps-variant"
    )


RPS_VARIANT_ACTIONS = ("rock", "scissors", "paper")

#: Figure 9's settings (IPO-MD App. F, on ``rps_variant(antisymmetrize=True)`` with a uniform π_ref), shared by
#: ``plotting.figure9_run`` and the ``ipo-md/app-F-*`` checks: the paper's τ = 0.1; the β values, the start and the
#: step size of the exact dynamics are ours (the text gives none of them). The start is away from the uniform π_ref
#: because π_ref is close to every fixed point, so paths from it would be invisible.
FIGURE9_TAU = 0.1
FIGURE9_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
FIGURE9_START = (0.8, 0.1, 0.1)
FIGURE9_LR = 0.05


def biased_rps(a: float, b: float, c: float) -> PreferenceGame:
    """Rock-paper-scissors whose unregularised equilibrium is (a, b, c)/(a + b + c).

    The skew part is ``S = [[0, −c, b], [c, 0, −a], [−b, a, 0]] / (2 max(a, b, c))``; S (a, b, c)ᵀ = 0, so the
    policy ∝ (a, b, c) equalises every action, and it is the only equilibrium when a, b, c > 0.
    """
    weights = real_array([a, b, c], "biased_rps weights")
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise ValueError(f"biased_rps needs positive weights; got {tuple(weights)}")
    A = np.array([[0.0, -c, b], [c, 0.0, -a], [-b, a, 0.0]]) / (2.0 * weights.max())
    return PreferenceGame(0.5 + A, actions=ROCK_PAPER_SCISSORS, name=f"biased-rps({a:g},{b:g},{c:g})")


def bradley_terry(rewards, ref=None) -> PreferenceGame:
    """The Bradley–Terry game p(i ≻ j) = σ(r_i − r_j) (IPO-MD eq. 1). Rewards [Y] or, per prompt, [X, Y].

    Transitive: the action with the largest reward is a Condorcet winner and the unregularised equilibrium.
    """
    r = real_array(rewards, "rewards")
    if r.ndim == 1:
        r = r[None]
    if r.ndim != 2 or not np.all(np.isfinite(r)):
        raise ValueError("rewards must be a finite [Y] or [X, Y] array")
    check_game_size(r.shape[1], r.shape[0])
    diff = r[:, :, None] - r[:, None, :]
    P = 0.5 * (1.0 + np.tanh(0.5 * diff))  # σ(d) written so that σ(d) + σ(−d) = 1 holds to rounding
    return PreferenceGame(P, ref, name="bradley-terry")


def tournament(beats) -> PreferenceGame:
    """A deterministic tournament: ``beats[i][j]`` true means i is always preferred to j; neither way is a tie (½)."""
    B = np.array(beats, dtype=bool)
    if B.ndim != 2 or B.shape[0] != B.shape[1]:
        raise ValueError(f"beats must be a square boolean matrix; got shape {B.shape}")
    if np.any(B & B.T):
        i, j = np.argwhere(B & B.T)[0]
        raise ValueError(f"beats says both {i} ≻ {j} and {j} ≻ {i}")
    return PreferenceGame(0.5 + 0.5 * (B.astype(float) - B.T.astype(float)), name="tournament")


def cyclic(n: int, strength: float = 1.0) -> PreferenceGame:
    """The cyclic game on n actions: i beats the next ⌈n/2⌉ − 1 actions around the circle with probability
    ½ + strength/2, loses to the previous ones, and ties with the opposite action when n is even.

    Every row is a rotation of the first, so S·1 = 0 and the uniform policy is an equilibrium (the unique one for
    odd n). n = 3 with strength 1 is rock-paper-scissors up to relabelling.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"cyclic needs a positive integer number of actions; got {n}")
    if not 0 < strength <= 1:
        raise ValueError(f"cyclic strength must lie in (0, 1]; got {strength}")
    n = int(n)
    check_game_size(n)
    offset = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n  # j − i mod n
    sign = np.sign(n / 2 - offset) * (offset > 0)  # +1 for the next half, −1 for the previous, 0 opposite/self
    return PreferenceGame(0.5 + 0.5 * strength * sign, name=f"cyclic({n})")


def _has_condorcet_winner(P: np.ndarray) -> bool:
    beats_all = (P > 0.5) | np.eye(P.shape[-1], dtype=bool)
    return bool(np.any(beats_all.all(axis=-1)))


def random_intransitive(n: int, seed: int = 0, num_prompts: int = 1) -> PreferenceGame:
    """Seeded random games with no Condorcet winner: skew part uniform in [−½, ½], redrawn (from the same
    generator, so still reproducible) while some action beats all others. Needs n ≥ 3."""
    if int(n) != n or n < 3:
        raise ValueError(f"an intransitive game needs at least 3 actions; got {n}")
    check_game_size(int(n), num_prompts)
    rng = np.random.default_rng(check_seed(seed))
    games = []
    for _ in range(num_prompts):
        while True:
            P = _random_constant_sum(rng, int(n))
            if not _has_condorcet_winner(P):
                break
        games.append(P)
    return PreferenceGame(np.stack(games), name=f"random-intransitive({n}, seed={seed})")


def condorcet(n: int, seed: int = 0) -> PreferenceGame:
    """A seeded random game in which action 0 beats every other action (a Condorcet winner), while the others
    may form cycles. Its unregularised equilibrium is the pure policy on action 0."""
    if int(n) != n or n < 2:
        raise ValueError(f"a Condorcet game needs at least 2 actions; got {n}")
    check_game_size(int(n))
    rng = np.random.default_rng(check_seed(seed))
    P = _random_constant_sum(rng, int(n))
    P[0, 1:] = 0.5 + np.abs(P[0, 1:] - 0.5) + 1e-3 * (P[0, 1:] == 0.5)
    P[1:, 0] = 1.0 - P[0, 1:]
    return PreferenceGame(P, name=f"condorcet({n}, seed={seed})")


def check_seed(seed) -> int:
    """``seed`` if it is a seed for ``np.random.default_rng`` (a non-negative integer), else a ``ValueError`` that
    names it (numpy's own error does not say which argument it is about)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def _random_constant_sum(rng: np.random.Generator, n: int) -> np.ndarray:
    upper = np.triu(rng.uniform(-0.5, 0.5, size=(n, n)), k=1)
    return 0.5 + upper - upper.T


# ===================================================================================================== registry
def named_games() -> dict[str, str]:
    """Names accepted by :func:`by_name` (and the CLI's ``--game``) with a one-line description."""
    return {
        "rps": "rock-paper-scissors (3 actions)",
        "rps-variant": "IPO-MD Appendix F variant of RPS (needs antisymmetrize: the printed matrix is not constant-sum)",
        "biased-rps": "RPS with unregularised equilibrium (1, 2, 3)/6",
        "bradley-terry": "Bradley-Terry game with rewards 0..n-1 scaled to [0, 2] (n actions, default 5)",
        "cyclic": "cyclic tournament on n actions (default 5); uniform equilibrium",
        "random": "seeded random intransitive game on n actions (default 10)",
        "condorcet": "seeded random game where action 0 is a Condorcet winner (n actions, default 5)",
    }


def by_name(name: str, *, actions: int | None = None, seed: int = 0, antisymmetrize: bool = False) -> PreferenceGame:
    """Build a built-in game by its CLI name (see :func:`named_games`).

    >>> by_name("cyclic", actions=7).num_actions
    7
    """
    fixed_size = {"rps": 3, "rps-variant": 3, "biased-rps": 3}
    if name not in named_games():
        raise ValueError(f"unknown game {name!r}; choose one of: {', '.join(named_games())}")
    check_seed(seed)  # also for the games that draw nothing: a bad seed is a mistake wherever it is given
    if name in fixed_size and actions not in (None, fixed_size[name]):
        raise ValueError(f"game {name!r} has exactly {fixed_size[name]} actions")
    if name == "rps":
        return rock_paper_scissors()
    if name == "rps-variant":
        return rps_variant(antisymmetrize=antisymmetrize)
    if name == "biased-rps":
        return biased_rps(1.0, 2.0, 3.0)
    n = actions if actions is not None else (10 if name == "random" else 5)
    if name == "bradley-terry":
        if int(n) != n or n < 1:
            raise ValueError(f"bradley-terry needs a positive integer number of actions; got {n}")
        return bradley_terry(np.linspace(0.0, 2.0, int(n)))
    if name == "cyclic":
        return cyclic(n)
    if name == "random":
        return random_intransitive(n, seed=seed)
    return condorcet(n, seed=seed)
