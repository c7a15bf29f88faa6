"""Exact best responses, duality gaps and Nash equilibria of (regularised) preference games.

For the game J(π1, π2) = π1ᵀPπ2 − τKL(π1‖π_ref) + τKL(π2‖π_ref) (IPO-MD eq. 9, INPO eq. 3), write P = ½ + S with S
skew. Then Pπ = ½ + Sπ on the simplex and, because πᵀSπ = 0, the duality gap of INPO §2.2,

    DualGap(π) = max_{π1} J(π1, π) − min_{π2} J(π, π2),

has the closed form (derived in ``docs/engine.md``)

    DualGap_τ(π) = 2τ KL(π ‖ BR_τ(π)),        BR_τ(π) = softmax(log π_ref + Sπ/τ)   (τ > 0)
    DualGap_0(π) = 2 max_{y ∈ Supp π_ref} (Sπ)(y) = 2 max_y p(y ≻ π) − 1          (τ = 0).

It is non-negative, convex in π, zero only at the equilibrium, and computable to full relative precision, which is
why every solver here returns it as its certificate. Over prompts, each quantity is the d0-expectation of the
per-prompt one (the maxima in the gap separate across prompts).

The regularised equilibrium (τ > 0) is the unique fixed point π* = BR_τ(π*) (IPO-MD eq. 12). We find it by damped
Newton on the logits z with residual F(z) = z − log π_ref − S softmax(z)/τ (up to a constant). Its Jacobian
I − S D_π/τ, with D_π = diag(π) − ππᵀ, is similar to I − (skew)/τ on the support, so its eigenvalues are 1 + iω and
it is invertible everywhere: a Newton step always exists, and any stationary point of ‖F‖² is the solution. Small
games solve the Newton system densely (batched over prompts); large ones by GMRES, one P-product per iteration.

>>> from preference_games.games import rps_variant
>>> eq = regularized_nash(rps_variant(antisymmetrize=True), tau=0.1)
>>> eq.duality_gap <= 1e-12
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse.linalg import LinearOperator, gmres

from .games import PreferenceGame
from .policies import TabularPolicy, _kl, logsumexp


class SolverError(RuntimeError):
    """A solver could not certify its answer. It never returns an uncertified policy instead."""


# ============================================================================================= measures
#: The smallest τ > 0 the measures accept: below it 1/τ overflows float64 (τ here is subnormal), so Sπ/τ, and with
#: it the best response and the gap, would be inf or NaN.
TINY_TAU = 1.0 / np.finfo(np.float64).max


def _check_tau(tau, smallest: float = TINY_TAU, why: str = "1/tau overflows float64 below it") -> float:
    """τ as a float if it is a finite real number, 0 or at least ``smallest`` (``why`` says why), else ValueError.

    A bool is refused although Python counts it as an int: ``tau=True`` is a slip, not τ = 1.
    """
    real = isinstance(tau, (int, float, np.integer, np.floating)) or (
        isinstance(tau, np.ndarray) and tau.ndim == 0 and tau.dtype.kind in "iuf"
    )
    if isinstance(tau, (bool, np.bool_)) or not real:
        raise ValueError(f"tau must be a real number; got {tau!r}")
    tau = float(tau)
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite number >= 0; got {tau}")
    if 0 < tau < smallest:
        raise ValueError(f"tau = {tau:g} is below the smallest supported tau > 0, {smallest:.3g} ({why}); use "
                         "tau = 0 (nash_lp) for the unregularised game")
    return tau


def _apply(S: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Sπ per prompt: S [X, Y, Y], π [X, Y] → [X, Y]. A batched matmul (BLAS); einsum here is several times slower."""
    return np.matmul(S, pi[..., None])[..., 0]


def _br_log_probs(game: PreferenceGame, pi: np.ndarray, tau: float) -> np.ndarray:
    """log BR_τ(π) = log softmax(log π_ref + Sπ/τ), float64 [X, Y], −inf off the support."""
    scores = game.ref.log_probs + _apply(game.S, pi) / tau  # [X, Y]
    return scores - logsumexp(scores, axis=-1, keepdims=True)


def best_response(game: PreferenceGame, policy, tau: float) -> TabularPolicy:
    """The best response to π in the τ-regularised game: argmax_{π1} J(π1, π).

    τ > 0: π_ref(y)·exp(p(y ≻ π)/τ)/Z (IPO-MD eq. 12 with π on the right held fixed). τ = 0: the pure policy on the
    first action of ``Supp(π_ref)`` that maximises p(y ≻ π).

    >>> from preference_games.games import rock_paper_scissors
    >>> best_response(rock_paper_scissors(), [1.0, 0.0, 0.0], tau=0.0).probs.tolist()   # paper beats rock
    [[0.0, 1.0, 0.0]]
    """
    tau = _check_tau(tau)
    pi = game.policy(policy).probs
    if tau > 0:
        return TabularPolicy(_br_log_probs(game, pi, tau))
    scores = np.where(game.support, _apply(game.S, pi), -np.inf)
    pure = np.zeros_like(pi)
    pure[np.arange(game.num_prompts), np.argmax(scores, axis=-1)] = 1.0
    return TabularPolicy.from_probs(pure)


def duality_gap(game: PreferenceGame, policy, tau: float, *, per_prompt: bool = False):
    """DualGap_τ(π) of INPO §2.2 in closed form (see the module docstring); τ = 0 gives the unregularised gap.

    Returns the d0-expectation over prompts (a float), or the float64 [X] array with ``per_prompt=True``.

    >>> from preference_games.games import rock_paper_scissors
    >>> duality_gap(rock_paper_scissors(), [1.0, 0.0, 0.0], tau=0.0)   # paper beats pure rock surely: 2·1 − 1
    1.0
    """
    tau = _check_tau(tau)
    pol = game.policy(policy)
    gaps = gaps_from_log_probs(game, pol.log_probs, tau)
    return gaps if per_prompt else game.expected(gaps)


def gaps_from_log_probs(game: PreferenceGame, log_pi: np.ndarray, tau: float) -> np.ndarray:
    """DualGap_τ per prompt for raw log-probabilities of any leading shape: [..., X, Y] → [..., X].

    The vectorised form of :func:`duality_gap` for whole trajectories; no validation of ``log_pi`` (rows must be
    normalised and live on Supp(π_ref)).
    """
    pi = np.exp(log_pi)
    if tau > 0:
        return 2.0 * tau * _kl(log_pi, _br_log_probs(game, pi, tau))
    scores = np.where(game.support, _apply(game.S, pi), -np.inf)
    return np.maximum(2.0 * scores.max(axis=-1), 0.0)  # ≥ 0 exactly; rounding could leave −1e-17


def exploitability(game: PreferenceGame, policy) -> float:
    """max_y p(y ≻ π) − ½ in expectation over prompts: how far a best responder beats an even match against π.

    Equal to DualGap_0(π)/2.
    """
    return duality_gap(game, policy, 0.0) / 2.0


# ====================================================================================== regularised Nash
@dataclass(frozen=True)
class Equilibrium:
    """A solved game: the policy and its own certificate.

    ``duality_gap`` is DualGap_τ of ``policy`` in expectation over prompts and ``gaps`` per prompt [X]; both are
    recomputed from the returned policy, never taken from the solver's internal state.
    """

    policy: TabularPolicy
    tau: float
    duality_gap: float
    gaps: np.ndarray
    iterations: int
    matvecs: int


#: Up to this many actions the Newton system is factorised densely, batched over prompts. Above it each prompt
#: first tries matrix-free GMRES with a budget of n / GMRES_BUDGET_DIVISOR products with S and switches to a dense
#: factorisation of the active block, for the rest of that solve, when GMRES would need more (small τ). One LU of an
#: n × n block costs several hundred products on a 2-core machine (≈ n/2.4 at n = 1000, n/17 at n = 3000, where the
#: product is memory-bound), so a GMRES solve that fits the budget is always the cheaper one, and one that does not
#: is abandoned before it has cost a large fraction of the factorisation it falls back to.
DENSE_NEWTON_MAX_ACTIONS = 256
GMRES_BUDGET_DIVISOR = 20

#: The smallest τ regularized_nash accepts. Its Newton matrix I − S D_π/τ is invertible only thanks to the
#: identity (D_π 1 = 0, so S D_π is singular), and the identity drowns in rounding once ‖S D_π‖/τ nears
#: 1/ε ≈ 4.5e15: numpy then reports a "singular matrix" at about τ = 1e-16 (measured on the built-in games), and
#: below 1e-200 the iterates overflow. Warm-started τ-paths on seeded random 8-action games still certify at 1e-12
#: and fail between 1e-15 and 3e-13, so 1e-12 is the smallest τ at which the solver is known to work (cold starts
#: at small τ can still fail: they raise SolverError, and tau_path is the remedy). For τ → 0, nash_lp solves the
#: limit exactly.
MIN_TAU = 1e-12

#: Besides the gap, regularized_nash requires every logit to satisfy the fixed-point equation within
#: LOGIT_TOL·max(1, max_y |log π(y)|). The gap weights each action by its mass, so on its own it would accept an
#: action of mass 1e-20 whose true mass is 1e-50 (a warm start along a τ-path does exactly that); the logit residual
#: gives every probability, however small, a relative error of about LOGIT_TOL as long as log-probabilities are
#: O(1). The scale follows the rounding floor of the residual, ~1e-16·max|Sπ|/τ ≈ 1e-16·max|log π|, which at
#: τ = 1e-7 is already 1e-9.
LOGIT_TOL = 1e-10


def regularized_nash(
    game: PreferenceGame,
    tau: float,
    *,
    init=None,
    tol: float = 1e-12,
    max_iter: int = 200,
) -> Equilibrium:
    """The regularised Nash equilibrium π* = softmax(log π_ref + Pπ*/τ) (IPO-MD eq. 12 / Prop. 4.1; INPO §2.2), τ > 0.

    Solved by damped Newton (module docstring) until, on every prompt, the duality gap of the returned policy is at
    most ``tol`` and every logit solves the fixed-point equation to ``LOGIT_TOL`` relative precision (so tiny
    probabilities are right too); raises :class:`SolverError` if that does not happen within ``max_iter``
    Newton steps. ``init`` (a policy with full support on Supp(π_ref)) warm-starts the solve; :func:`tau_path` uses it.

    What the certificate proves: for every π, DualGap_τ(π) ≥ J(π*, π) − J(π, π*) = 2τ KL(π‖π*) (expand both J with
    log π* = log π_ref + Sπ*/τ − log Z; ``docs/engine.md``), so the returned π satisfies
    KL(π‖π*) ≤ duality_gap/(2τ) and ‖π − π*‖₁ ≤ √(duality_gap/τ) per prompt, with no trust in the solver needed.

    >>> from preference_games.games import rock_paper_scissors
    >>> eq = regularized_nash(rock_paper_scissors(), tau=0.05)
    >>> np.allclose(eq.policy.probs, 1 / 3), eq.duality_gap < 1e-12
    (True, True)
    """
    tau = _check_tau(tau, MIN_TAU, "the solver's Newton system is singular to working precision below it")
    if tau == 0:
        raise ValueError("regularized_nash needs tau > 0; use nash_lp for the unregularised game")
    if isinstance(tol, (bool, np.bool_)) or not tol > 0:
        raise ValueError(f"tol must be positive; got {tol}")
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative integer; got {max_iter!r}")
    newton = _Newton(game, tau)
    if init is None:
        z = np.where(game.support, game.ref.log_probs, -np.inf)
    else:
        z = game.policy(init).log_probs
        if np.any(game.support & (z == -np.inf)):
            raise ValueError("init must put positive mass on every action in the support of π_ref")
    R, gaps = newton.evaluate(z)
    for iteration in range(max_iter + 1):
        logit_scale = np.maximum(1.0, np.abs(np.where(game.support, z, 0.0)).max(axis=-1))  # [X]
        pending = (gaps > tol) | (np.abs(R).max(axis=-1) > LOGIT_TOL * logit_scale)  # [X]
        if not pending.any():
            policy = TabularPolicy(z)
            gaps = gaps_from_log_probs(game, policy.log_probs, tau)  # the certificate of what is returned, recomputed
            return Equilibrium(policy, tau, game.expected(gaps), gaps, iteration, newton.matvecs)
        if iteration < max_iter:
            z, R, gaps = newton.step(z, R, active=pending)
    raise SolverError(
        f"regularized_nash did not converge at tau={tau:g} in {max_iter} Newton steps (worst duality gap "
        f"{gaps.max():.3g}, target {tol:g}; worst relative logit residual {(np.abs(R).max(-1) / logit_scale).max():.3g}, target {LOGIT_TOL:g}); "
        "try a tau-path warm start (tau_path) or a larger max_iter"
    )


class _Newton:
    """Damped Newton on the logits z [X, Y] for the fixed point z = log π_ref + S softmax(z)/τ + const."""

    def __init__(self, game: PreferenceGame, tau: float):
        self.game, self.tau = game, tau
        self.support = game.support  # [X, Y]
        self.log_ref = np.where(self.support, game.ref.log_probs, 0.0)  # finite everywhere
        self.matvecs = 0  # products with S, the unit of cost in benchmarks/
        self.dense = np.zeros(game.num_prompts, dtype=bool)  # per prompt: GMRES ran over budget, factorise instead

    def evaluate(self, z: np.ndarray):
        """For normalised logits z: the centred residual R [X, Y] (zero off the support) and the gap [X]."""
        pi = np.exp(z)  # [X, Y]
        scores = self.log_ref + _apply(self.game.S, pi) / self.tau  # log π_ref + Sπ/τ
        self.matvecs += 1
        F = np.where(self.support, np.where(self.support, z, 0.0) - scores, 0.0)
        R = np.where(self.support, F - F.sum(-1, keepdims=True) / self.support.sum(-1, keepdims=True), 0.0)
        log_br = np.where(self.support, scores, -np.inf)
        gaps = 2.0 * self.tau * _kl(z, log_br - logsumexp(log_br, axis=-1, keepdims=True))
        return R, gaps

    def step(self, z: np.ndarray, R: np.ndarray, active: np.ndarray):
        """One Newton step on the ``active`` prompts with Armijo backtracking on ½‖R‖², per prompt.

        Newton is a descent direction for ½‖R‖² with slope −‖R‖²; the step halves until the merit falls by a
        fraction of that. When no step length lowers the merit we are at rounding level, and the full step is kept:
        the duality gap, not the merit, decides convergence.
        """
        d = self._direction(z, R, active)  # [X, Y], zero off the support and on inactive prompts
        merit = 0.5 * np.sum(R**2, axis=-1)  # [X]
        step = np.ones(len(z))
        pending = active.copy()
        new = None  # (z, R, gaps) of the full step, overwritten per prompt where a shorter step passes Armijo
        for _ in range(40):
            candidate = _normalised(z + (step * active)[:, None] * d, self.support)
            cand_R, cand_gaps = self.evaluate(candidate)
            if new is None:
                new = (candidate, cand_R, cand_gaps)
            ok = pending & (0.5 * np.sum(cand_R**2, axis=-1) <= (1.0 - 1e-4 * step) * merit)
            for kept, tried in zip(new, (candidate, cand_R, cand_gaps)):
                kept[ok] = tried[ok]
            pending &= ~ok
            if not pending.any():
                break
            step[pending] *= 0.5
        return new

    def _direction(self, z: np.ndarray, R: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Solve J d = −R per active prompt, J = I − S D_π/τ and D_π = diag(π) − ππᵀ (the softmax Jacobian)."""
        pi = np.exp(z)  # [X, Y]
        if self.game.num_actions <= DENSE_NEWTON_MAX_ACTIONS:
            return np.where(self.support & active[:, None], _dense_newton(self.game.S, pi, R, self.tau), 0.0)
        d = np.zeros_like(R)
        for x in np.flatnonzero(active):
            k = self.support[x]
            S = self.game.S[x] if k.all() else self.game.S[x][np.ix_(k, k)]  # skip an O(n²) copy per step
            solved = None if self.dense[x] else self._gmres(S, pi[x, k], -R[x, k])
            if solved is None:  # GMRES would cost more than a factorisation: factorise from now on
                self.dense[x] = True
                solved = self._dense_on_active(S, pi[x, k], R[x, k])
            d[x, k] = solved
        return d

    def _gmres(self, S: np.ndarray, pi: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
        """Matrix-free GMRES, one product with S per iteration, within the budget of a dense solve; None if over."""
        n = len(pi)

        def apply(v):  # (I − S D_π/τ) v
            self.matvecs += 1
            return v - S @ (pi * v - pi * (pi @ v)) / self.tau

        operator = LinearOperator((n, n), matvec=apply, dtype=np.float64)
        # Eisenstat–Walker forcing: a loose solve far from the root, a tight one near it (quadratic convergence).
        rtol = min(0.1, float(np.linalg.norm(rhs)))
        budget = max(10, n // GMRES_BUDGET_DIVISOR)
        d, info = gmres(operator, rhs, rtol=rtol, atol=0.0, restart=budget, maxiter=1)
        return d if info == 0 else None

    def _dense_on_active(self, S: np.ndarray, pi: np.ndarray, R: np.ndarray) -> np.ndarray:
        """The Newton system factorised on the actions that carry mass, A = {π > 1e-30}.

        Column y of S D_π is π_y-weighted, so for y ∉ A the column of J is e_y up to 1e-30/τ and the rows of A close
        on themselves; the rows outside A then follow by one product: d_I = −R_I + S_IA (D_π d)_A / τ.
        """
        A = pi > 1e-30
        d_A = _dense_newton(S[np.ix_(A, A)][None], pi[A][None], R[A][None], self.tau)[0]
        self.matvecs += 1
        Dd = pi[A] * d_A - pi[A] * (pi[A] @ d_A)  # (D_π d) on A
        d = -R + S[:, A] @ Dd / self.tau
        d[A] = d_A
        return d


def _dense_newton(S: np.ndarray, pi: np.ndarray, R: np.ndarray, tau: float) -> np.ndarray:
    """Batched dense solve of (I − S D_π/τ) d = −R: S [X, n, n], π and R [X, n] → d [X, n].

    S D_π = S·diag(π) − (Sπ)πᵀ costs O(n²) to form. Where π = 0 (off the support) the column of J is a unit vector,
    so the support block is solved exactly as if it stood alone.
    """
    n = S.shape[-1]
    SD = S * pi[:, None, :] - _apply(S, pi)[:, :, None] * pi[:, None, :]  # [X, n, n]
    try:
        return np.linalg.solve(np.eye(n) - SD / tau, -R[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a ValueError subclass: left alone, it would read as bad input
        raise SolverError(f"regularized_nash: the Newton system is singular to working precision at tau={tau:g} "
                          "(|S D_pi|/tau is too large for the identity to survive rounding); try a tau-path warm "
                          "start (tau_path) or a larger tau") from None


def _normalised(z: np.ndarray, support: np.ndarray) -> np.ndarray:
    z = np.where(support, z, -np.inf)
    return z - logsumexp(z, axis=-1, keepdims=True)


def tau_path(game: PreferenceGame, taus, *, tol: float = 1e-12, progress: bool = False) -> list[Equilibrium]:
    """Regularised equilibria along a strictly decreasing grid of τ > 0, each warm-started from the previous one.

    The path τ ↦ π*_τ is smooth, so the previous solution is inside Newton's fast region for the next τ when the
    grid is not too coarse (a factor of 2–10 per step works).

    >>> from preference_games.games import bradley_terry
    >>> path = tau_path(bradley_terry([0.0, 1.0, 2.0]), [1.0, 0.1, 0.01])
    >>> [round(float(eq.policy.probs[0, 2]), 4) for eq in path]   # mass on the Condorcet winner grows as τ falls
    [0.4038, 0.8918, 1.0]
    """
    taus = [_check_tau(t) for t in np.atleast_1d(np.asarray(taus, dtype=np.float64))]
    if not taus or taus[-1] <= 0 or any(b >= a for a, b in zip(taus, taus[1:])):
        raise ValueError("tau_path needs a non-empty, strictly decreasing grid of positive taus")
    path, init = [], None
    for tau in _progress(taus, progress, "tau path"):
        eq = regularized_nash(game, tau, init=init, tol=tol)
        path.append(eq)
        init = eq.policy
    return path


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False)


# ================================================================================== unregularised Nash (τ = 0)
@dataclass(frozen=True)
class LPEquilibrium:
    """An equilibrium of the unregularised game (τ = 0) and its certificate.

    ``value`` is the game value per prompt (½: the game is symmetric); ``duality_gap`` the d0-expected
    DualGap_0 of ``policy``; ``unique`` per prompt whether the equilibrium set is a single point (see
    :func:`nash_lp`); ``selection`` how a point was chosen where it is not.
    """

    policy: TabularPolicy
    value: np.ndarray
    duality_gap: float
    gaps: np.ndarray
    unique: np.ndarray
    selection: str


#: Largest DualGap_0 a returned τ = 0 equilibrium may have. HiGHS works to ~1e-7 feasibility; the support-polishing
#: step usually brings the gap to rounding level, and the certificate is returned either way.
LP_GAP_TOL = 1e-9

SELECTIONS = ("max-entropy", "vertex")


def nash_lp(game: PreferenceGame, *, selection: str = "max-entropy", tol: float = LP_GAP_TOL) -> LPEquilibrium:
    """A Nash equilibrium of the unregularised game (τ = 0) per prompt, restricted to Supp(π_ref), with its certificate.

    The symmetric game with skew payoff S has value ½ (in P), and π is an equilibrium iff Sπ ≤ 0 on the support: a
    linear feasibility problem. Games with at most ``LP_DIRECT_MAX_ACTIONS`` actions go to scipy's HiGHS whole.
    Larger ones are solved only on their support, found from the τ-path: as τ → 0 the regularised equilibrium keeps
    mass on the support of the limit equilibrium and loses it elsewhere like exp(−margin/τ), so along a warm-started
    path τ = 10⁻², 10⁻²/3, … we guess T = {π_τ/π_ref ≥ 10⁻⁴}, solve S_TT x = 0, 1ᵀx = 1 exactly and stop as soon as
    x > 0 and Sx ≤ tol/2 everywhere. If the path never certifies (degenerate games), a double oracle over HiGHS
    finishes: solve the LP on the candidate actions, add every action that beats the result, repeat. The returned
    policy satisfies DualGap_0 ≤ ``tol``, else :class:`SolverError`.

    Uniqueness: if π's support T equals its set of best responses B = {y : (Sπ)(y) = 0} and S_TT has a
    one-dimensional kernel, π is the only equilibrium (any other π' has Supp π' ⊆ B and S_TT π'_T = 0). Otherwise
    two LPs over the equilibrium set, maximising and minimising a random linear function, decide (a difference
    proves non-uniqueness; equality means a single point with probability one).

    ``selection`` when the set is not a single point: ``"max-entropy"`` (default) returns argmin KL(π‖π_ref) over the
    equilibrium set, which is the limit of the regularised equilibrium as τ → 0 (Tikhonov regularisation of a monotone
    problem selects the regulariser's minimiser); ``"vertex"`` returns the basic solution HiGHS found.

    >>> from preference_games.games import biased_rps
    >>> eq = nash_lp(biased_rps(1, 2, 3))
    >>> eq.policy.probs.round(6).tolist(), bool(eq.unique[0]), eq.duality_gap < 1e-12
    ([[0.166667, 0.333333, 0.5]], True, True)
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}; got {selection!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive; got {tol}")
    probs = np.zeros((game.num_prompts, game.num_actions))
    unique = np.zeros(game.num_prompts, dtype=bool)
    for x in range(game.num_prompts):
        support = np.flatnonzero(game.support[x])
        S = game.S[x][np.ix_(support, support)]
        ref = game.ref.probs[x, support]
        if len(support) <= LP_DIRECT_MAX_ACTIONS:
            pi = _double_oracle(S, np.ones(len(support), dtype=bool), tol)
        else:
            pi = _support_from_tau_path(S, ref, tol)
        unique[x] = _is_unique(S, pi)
        if not unique[x] and selection == "max-entropy":
            pi = _max_entropy(S, pi, ref)
        probs[x, support] = pi
    policy = TabularPolicy.from_probs(probs)
    gaps = gaps_from_log_probs(game, policy.log_probs, 0.0)
    if np.any(gaps > tol):
        raise SolverError(f"nash_lp: certificate failed (worst DualGap_0 {gaps.max():.3g} > {tol:g})")
    return LPEquilibrium(policy, np.full(game.num_prompts, 0.5), game.expected(gaps), gaps, unique, selection)


#: Up to this many actions HiGHS solves the whole game in well under a second; above it, the τ-path finds the support.
LP_DIRECT_MAX_ACTIONS = 200


#: The τ grid along which nash_lp looks for the support of large games.
_LP_PATH_TAUS = 1e-2 * 3.0 ** -np.arange(15)  # down to ~2e-9


def _support_from_tau_path(S: np.ndarray, ref: np.ndarray, tol: float) -> np.ndarray:
    """An equilibrium of the sub-game S found by support identification along a τ-path (see :func:`nash_lp`)."""
    sub_game = PreferenceGame(0.5 + S[None], ref[None])
    log_ref = np.log(ref)
    candidates = np.ones(len(S), dtype=bool)
    policy, previous_tau = None, None
    for tau in _LP_PATH_TAUS:
        if policy is not None:
            # Off the support log(π/π_ref) grows like 1/τ: rescaling it is the right warm start for those actions.
            policy = TabularPolicy.from_logits(log_ref + (previous_tau / tau) * (policy.log_probs[0] - log_ref))
        try:
            policy = regularized_nash(sub_game, tau, init=policy).policy
        except SolverError:
            break
        previous_tau = tau
        candidates = policy.probs[0] >= 1e-4 * ref
        x = _active_set(S, candidates, tol)
        if x is not None:
            return x
    return _double_oracle(S, candidates, tol)


def _active_set(S: np.ndarray, T: np.ndarray, tol: float, rounds: int = 8) -> np.ndarray | None:
    """Correct a guessed support T by a few exchange rounds: drop actions the exact solve weights ≤ 0, add actions
    that beat the solution. Returns a certified x (Sx ≤ tol/2), or None when the guess was too far off."""
    T = T.copy()
    for _ in range(rounds):
        x = _solve_on_support(S, T)
        if x is None:
            return None
        if np.any(x[T] <= 0):
            T &= x > 0
            continue
        violation = S @ x
        if violation.max() <= tol / 2:
            return x
        T |= violation > tol / 2
    return None


def _solve_on_support(S: np.ndarray, T: np.ndarray) -> np.ndarray | None:
    """The solution of S_TT x_T = v·1, 1ᵀx_T = 1 with zeros off T, or None if that bordered system is singular.

    For a generic skew S_TT, the system is regular exactly when |T| is odd, and then v = 0 (Kaplansky: a symmetric
    zero-sum game's generic equilibrium has odd support). x may have non-positive entries: the caller checks.
    """
    idx = np.flatnonzero(T)
    k = len(idx)
    A = np.zeros((k + 1, k + 1))  # [[S_TT, −1], [1ᵀ, 0]]
    A[:k, :k] = S[np.ix_(idx, idx)]
    A[:k, k] = -1.0
    A[k, :k] = 1.0
    b = np.zeros(k + 1)
    b[k] = 1.0
    try:
        solution = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(solution)) or np.abs(A @ solution - b).max() > 1e-12:
        return None
    x = np.zeros(len(S))
    x[idx] = solution[:k]
    return x


def _double_oracle(S: np.ndarray, candidates: np.ndarray, tol: float) -> np.ndarray:
    """An x ∈ Δ with Sx ≤ tol/2, by HiGHS on the candidate actions, growing them by every action that beats x."""
    candidates = candidates.copy()
    n = len(S)
    for _ in range(n):
        T = np.flatnonzero(candidates)
        x = np.zeros(n)
        x[T] = _lp_on(S[np.ix_(T, T)])
        polished = _solve_on_support(S, x > 1e-9)  # HiGHS works to ~1e-7; the exact solve on its support is exact
        if polished is not None and polished.min() >= 0 and (S @ polished).max() <= max((S @ x).max(), 0.0):
            x = polished
        violation = S @ x  # [n]: (Sx)(y) > 0 means y beats x
        if violation.max() <= tol / 2:
            return x
        if not np.any(violation[~candidates] > tol / 2):
            raise SolverError(f"nash_lp: HiGHS solution violates its own constraints by {violation.max():.3g}")
        candidates |= violation > tol / 2
    raise SolverError("nash_lp: double oracle did not converge")  # unreachable: the candidates grow every round


def _lp_on(S: np.ndarray) -> np.ndarray:
    """HiGHS on the symmetric game S: minimise v subject to Sx ≤ v·1, 1ᵀx = 1, x ≥ 0 (optimal v = 0)."""
    k = len(S)
    result = linprog(
        c=np.r_[np.zeros(k), 1.0],
        A_ub=np.c_[S, -np.ones(k)],
        b_ub=np.zeros(k),
        A_eq=np.r_[np.ones(k), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * k + [(None, None)],
        method="highs",
    )
    if result.status != 0:
        raise SolverError(f"nash_lp: HiGHS failed: {result.message}")
    return np.clip(result.x[:k], 0.0, None) / np.clip(result.x[:k], 0.0, None).sum()


def _is_unique(S: np.ndarray, x: np.ndarray, atol: float = 1e-9) -> bool:
    T = x > atol
    B = S @ x >= -atol
    if np.array_equal(T, B):
        singular = np.linalg.svd(S[np.ix_(T, T)], compute_uv=False)
        if T.sum() == 1 or singular[-2] > atol:  # rank k − 1: the kernel is the line through x_T
            return True
    # Every equilibrium lives on B; compare the range of a random linear function over the equilibrium set.
    idx = np.flatnonzero(B)
    c = np.random.default_rng(0).normal(size=len(idx))
    extremes = [_linear_over_equilibria(S, idx, sign * c) for sign in (1.0, -1.0)]
    return abs(extremes[0] + extremes[1]) <= 1e-7


def _linear_over_equilibria(S: np.ndarray, idx: np.ndarray, c: np.ndarray) -> float:
    """min cᵀx over {x ∈ Δ(idx) : Sx ≤ 0}."""
    result = linprog(
        c=c,
        A_ub=S[:, idx],
        b_ub=np.zeros(len(S)),
        A_eq=np.ones((1, len(idx))),
        b_eq=[1.0],
        bounds=[(0, None)] * len(idx),
        method="highs",
    )
    if result.status != 0:
        raise SolverError(f"nash_lp: HiGHS failed on the uniqueness check: {result.message}")
    return result.fun


def _max_entropy(S: np.ndarray, x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """argmin KL(x‖ref) over the equilibrium set {x ∈ Δ : Sx ≤ 0} (every equilibrium lives on B(x))."""
    from scipy.optimize import minimize

    idx = np.flatnonzero(S @ x >= -1e-9)
    log_ref = np.log(ref[idx])

    def objective(v):
        v = np.clip(v, 1e-300, None)
        return np.sum(v * (np.log(v) - log_ref)), np.log(v) - log_ref + 1.0

    result = minimize(
        objective,
        x[idx],
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * len(idx),
        constraints=[
            {"type": "eq", "fun": lambda v: v.sum() - 1.0, "jac": lambda v: np.ones((1, len(v)))},
            {"type": "ineq", "fun": lambda v: -(S[:, idx] @ v), "jac": lambda v: -S[:, idx]},
        ],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    selected = np.zeros_like(x)
    selected[idx] = np.clip(result.x, 0.0, None) / np.clip(result.x, 0.0, None).sum()
    return selected
