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
from scipy.linalg import lapack
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
    recomputed from the returned policy, never taken from the solver's internal state. ``iterations`` and ``matvecs``
    count every Newton step and product with S the solve took, a failed cold start and a τ-path included;
    ``method`` says how the solve started ("cold start", or the τ-path it warm-started along).
    """

    policy: TabularPolicy
    tau: float
    duality_gap: float
    gaps: np.ndarray
    iterations: int
    matvecs: int
    method: str = "cold start"


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
#: and fail between 1e-15 and 3e-13, so 1e-12 is the smallest τ at which the solver is known to work. For τ → 0,
#: nash_lp solves the limit exactly.
MIN_TAU = 1e-12

#: Besides the gap, regularized_nash requires every logit to satisfy the fixed-point equation within
#: LOGIT_TOL·max(1, max_y |log π(y)|). The gap weights each action by its mass, so on its own it would accept an
#: action of mass 1e-20 whose true mass is 1e-50 (a warm start along a τ-path does exactly that); the logit residual
#: gives every probability, however small, a relative error of about LOGIT_TOL as long as log-probabilities are
#: O(1). The scale follows the rounding floor of the residual, ~1e-16·max|Sπ|/τ ≈ 1e-16·max|log π|, which at
#: τ = 1e-7 is already 1e-9.
LOGIT_TOL = 1e-10

#: A cold start (from π_ref) that has not certified after this many Newton steps is abandoned for a warm start along
#: a τ-path. From π_ref, damped Newton needs O(max|S|/τ) steps at small τ (≈ 30 at τ = 1e-3 and none converged in
#: 200 at τ = 1e-4 on random 100-action games), while each point of a τ-path falling by AUTO_PATH_RATIO is reached
#: in a handful; the budget is enough for every cold start that converges at τ ≥ 1e-3 on those games.
COLD_START_ITER = 40
#: The automatic τ-path runs from τ₀ = max|S| (where the game is a small perturbation of π_ref and Newton converges
#: in a few steps) down to τ, each point AUTO_PATH_RATIO times smaller than the previous one.
AUTO_PATH_RATIO = 4.0


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
    probabilities are right too). ``init`` (a policy with full support on Supp(π_ref)) warm-starts the solve, which
    then gets ``max_iter`` Newton steps. Without ``init`` the solve starts cold from π_ref; at small τ that start is
    far outside Newton's fast region, so when it has not certified within ``COLD_START_ITER`` steps the solver
    warm-starts along a τ-path from max|S| down to τ (each point ``AUTO_PATH_RATIO`` smaller, ``max_iter`` steps
    each) and says so in ``method``. It raises :class:`SolverError` only if that fails too.

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
    if init is not None:
        z = game.policy(init).log_probs
        if np.any(game.support & (z == -np.inf)):
            raise ValueError("init must put positive mass on every action in the support of π_ref")
        return _newton_solve(game, tau, z, tol, max_iter, "warm start (init)")
    cold = np.where(game.support, game.ref.log_probs, -np.inf)
    try:
        return _newton_solve(game, tau, cold, tol, min(max_iter, COLD_START_ITER), "cold start")
    except _NotConverged as failure:
        if max_iter <= COLD_START_ITER:
            raise SolverError(str(failure)) from None
        spent = failure.counts
    # The cold start failed: walk down a τ-path, each point warm-started from the previous one.
    scale = float(np.abs(game.S).max())
    grid = [scale / AUTO_PATH_RATIO**j for j in range(int(np.ceil(np.log(scale / tau) / np.log(AUTO_PATH_RATIO))))]
    grid = [t for t in grid if t > tau] + [tau]
    z, iterations, matvecs = cold, spent[0], spent[1]
    for point in grid:
        try:
            eq = _newton_solve(game, point, z, tol, max_iter, "")
        except _NotConverged as failure:
            raise SolverError(f"{failure} (on the automatic tau-path from {grid[0]:.3g}, after a failed cold "
                              "start)") from None
        z, iterations, matvecs = eq.policy.log_probs, iterations + eq.iterations, matvecs + eq.matvecs
    method = (f"tau-path warm start: the cold start did not certify in {COLD_START_ITER} Newton steps, so "
              f"{len(grid)} points from tau = {grid[0]:.3g} down by {AUTO_PATH_RATIO:g}x")
    return Equilibrium(eq.policy, tau, eq.duality_gap, eq.gaps, iterations, matvecs, method)


class _NotConverged(SolverError):
    """A Newton solve ran out of steps; ``counts`` = (Newton steps, products with S) it spent."""

    def __init__(self, message: str, counts: tuple[int, int]):
        super().__init__(message)
        self.counts = counts


def _newton_solve(game: PreferenceGame, tau: float, z: np.ndarray, tol: float, max_iter: int, method: str, *,
                  logit_tol: float = LOGIT_TOL, mass_floor: float = 1e-30, dense: bool = False) -> Equilibrium:
    """Damped Newton from the normalised logits z [X, Y] (−inf off the support); see :func:`regularized_nash`.
    ``logit_tol``, ``mass_floor`` (see _Newton._dense_on_active) and ``dense`` (factorise from the first step,
    without trying GMRES) are set only by nash_lp's support search."""
    newton = _Newton(game, tau, mass_floor)
    newton.dense[:] = dense
    R, gaps = newton.evaluate(z)
    for iteration in range(max_iter + 1):
        logit_scale = np.maximum(1.0, np.abs(np.where(game.support, z, 0.0)).max(axis=-1))  # [X]
        pending = (gaps > tol) | (np.abs(R).max(axis=-1) > logit_tol * logit_scale)  # [X]
        if not pending.any():
            policy = TabularPolicy(z)
            gaps = gaps_from_log_probs(game, policy.log_probs, tau)  # the certificate of what is returned, recomputed
            return Equilibrium(policy, tau, game.expected(gaps), gaps, iteration, newton.matvecs, method)
        if iteration < max_iter:
            z, R, gaps = newton.step(z, R, active=pending)
    raise _NotConverged(
        f"regularized_nash did not converge at tau={tau:g} in {max_iter} Newton steps (worst duality gap "
        f"{gaps.max():.3g}, target {tol:g}; worst relative logit residual "
        f"{(np.abs(R).max(-1) / logit_scale).max():.3g}, target {logit_tol:g}); try a larger max_iter",
        (max_iter, newton.matvecs),
    )


class _Newton:
    """Damped Newton on the logits z [X, Y] for the fixed point z = log π_ref + S softmax(z)/τ + const."""

    def __init__(self, game: PreferenceGame, tau: float, mass_floor: float = 1e-30):
        self.game, self.tau, self.mass_floor = game, tau, mass_floor
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
        """The Newton system factorised on the actions that carry mass, A = {π > mass_floor} (1e-30 by default).

        Column y of S D_π is π_y-weighted, so for y ∉ A the column of J is e_y up to mass_floor/τ and the rows of A
        close on themselves; the rows outside A then follow by one product: d_I = −R_I + S_IA (D_π d)_A / τ. A larger
        floor makes the step inexact (Newton then converges linearly, at a rate of about mass_floor·max|S|/τ) and
        the factorisation smaller.
        """
        A = pi > self.mass_floor
        idx = np.flatnonzero(A)
        S_AA = S.take(idx, axis=0).take(idx, axis=1)  # twice as fast as S[np.ix_(A, A)] at n = 1000
        d_A = _dense_newton(S_AA[None], pi[A][None], R[A][None], self.tau)[0]
        self.matvecs += 1
        Dd = np.zeros_like(pi)
        Dd[A] = pi[A] * d_A - pi[A] * (pi[A] @ d_A)  # (D_π d) on A, zero elsewhere: S @ Dd copies no columns
        d = -R + S @ Dd / self.tau
        d[A] = d_A
        return d


def _dense_newton(S: np.ndarray, pi: np.ndarray, R: np.ndarray, tau: float) -> np.ndarray:
    """Batched dense solve of (I − S D_π/τ) d = −R: S [X, n, n], π and R [X, n] → d [X, n].

    S D_π = S·diag(π) − (Sπ)πᵀ costs O(n²) to form. Where π = 0 (off the support) the column of J is a unit vector,
    so the support block is solved exactly as if it stood alone.
    """
    n = S.shape[-1]
    # J = I − S diag(π)/τ + (Sπ)πᵀ/τ [X, n, n], assembled in place: no S D_π, no identity matrix.
    J = S * (-pi / tau)[:, None, :]
    J += _apply(S, pi)[:, :, None] * (pi / tau)[:, None, :]
    J.reshape(len(J), -1)[:, :: n + 1] += 1.0
    try:
        return np.linalg.solve(J, -R[..., None])[..., 0]
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
    :func:`nash_lp`); ``selection`` the selection asked for where it is not. ``method`` says per prompt how the
    equilibrium was found and which point was returned; ``fallback`` [X] flags the prompts where the first route
    failed and another one answered (``method`` says which and why).
    """

    policy: TabularPolicy
    value: np.ndarray
    duality_gap: float
    gaps: np.ndarray
    unique: np.ndarray
    selection: str
    method: tuple[str, ...] = ()
    fallback: np.ndarray | None = None


#: Largest relative exploitability max_y (Sπ)(y) / max|S| of a returned τ = 0 equilibrium, i.e. DualGap_0 ≤
#: 2·tol·max|S| per prompt. Relative, because the equilibrium set of S and of c·S is the same for every c > 0:
#: an absolute bound would accept any policy of a nearly tied game (|S| ≤ 1e-10) and nothing else would change.
#: The exact solve on the support usually leaves it at rounding level (1e-16).
LP_GAP_TOL = 1e-9

SELECTIONS = ("max-entropy", "vertex")

#: Up to this many actions (on Supp π_ref) HiGHS solves the whole game; above it, the τ-path finds the support.
LP_DIRECT_MAX_ACTIONS = 200

#: Rank tolerance of the face matrix [S_TT; 1ᵀ] (singular values ≤ RANK_RTOL·σ_max count as zero), for S scaled
#: to max|S| ∈ [¼, ½). An exactly dependent face (duplicated actions, blocks of ties) leaves singular values at
#: rounding level, ~1e-16·√k; a generic one has σ_min ~ 1/k or more. The line between them is drawn far from both.
RANK_RTOL = 1e-10


def nash_lp(game: PreferenceGame, *, selection: str = "max-entropy", tol: float = LP_GAP_TOL) -> LPEquilibrium:
    """A Nash equilibrium of the unregularised game (τ = 0) per prompt, restricted to Supp(π_ref), with its certificate.

    The symmetric game with skew payoff S has value ½ (in P), and π is an equilibrium iff Sπ ≤ 0 on the support: a
    linear feasibility problem whose solution set E is a polytope. Everything below works on S scaled by a power of
    two to max|S| ∈ [¼, ½) (exact), so every tolerance is relative to the game's own scale and the answer for c·S is
    the answer for S.

    1. *A strictly complementary equilibrium* z: for every action y, z_y > 0 or (Sz)(y) < 0. One exists (the midpoint
       of two equilibria is one, and for a pair x, x' of equilibria x'ᵀSx = 0 forces (Sx)(y) = 0 on Supp x'), and its
       support T is the largest support in E while E ⊆ {x : x off T = 0, S_TT x_T = 0, 1ᵀx = 1}, the affine hull of
       E. Games of at most ``LP_DIRECT_MAX_ACTIONS`` actions get z from HiGHS on the LP min 1ᵀw s.t. w ≥ 0, Sw ≤ 0,
       w − Sw ≥ 1 (feasible by the existence argument; complementarity w_y (Sw)(y) = 0 makes one of the two ≥ 1 and
       the other 0 for every y, a margin of 1 against HiGHS's 1e-7 tolerances). Larger games follow a warm-started
       τ-path (as τ → 0 the regularised equilibrium keeps mass on the support of the limit and loses it elsewhere
       like exp(−margin/τ)). Once τ is small, each point splits the actions into clearly played, clearly beaten and
       undecided; an LP over the undecided ones alone (the played ones follow from a linear system, see
       ``_ambiguous_lp``), or failing that a guessed support corrected by exchanges, gives a candidate support T,
       on which S_TT x_T = v·1, 1ᵀx_T = 1 is solved exactly and x checked to be strictly complementary. If no point
       of the path yields one, they fall back to the LP above and say so in ``method``.
    2. *Polish*: z is projected onto the affine hull (least squares on [S_TT; 1ᵀ]), which puts the certificate at
       rounding level, and its strict complementarity is checked again.
    3. *Uniqueness* (``unique``): E is a point iff [S_TT; 1ᵀ] has full column rank (``RANK_RTOL``, scale-free):
       z lies in the relative interior of E, so dim E is that matrix's nullity.
    4. *Selection* where E is not a point: ``"max-entropy"`` (default) returns argmin KL(π‖π_ref) over E, the limit
       of the regularised equilibrium as τ → 0 (Tikhonov regularisation of a monotone problem selects the
       regulariser's minimiser over the solution set). It is computed by an active-set Newton method on the affine
       hull, with the constraints (Sx)(y) ≤ 0 of the actions outside T, and certified by first-order optimality on
       the face: the gradient log(x/π_ref) is balanced by non-negative multipliers of the active constraints, to
       1e-9 relative. ``"vertex"`` returns a basic solution of E found by HiGHS's simplex. Where a selection fails
       its check, the strictly complementary z is returned and ``method``/``fallback`` say so.

    The returned policy satisfies DualGap_0 ≤ 2·``tol``·max|S| per prompt (it raises :class:`SolverError` only if
    even HiGHS on the whole game cannot reach that).

    >>> from preference_games.games import biased_rps
    >>> eq = nash_lp(biased_rps(1, 2, 3))
    >>> eq.policy.probs.round(6).tolist(), bool(eq.unique[0]), eq.duality_gap < 1e-12
    ([[0.166667, 0.333333, 0.5]], True, True)
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}; got {selection!r}")
    if isinstance(tol, (bool, np.bool_)) or not tol > 0:
        raise ValueError(f"tol must be positive; got {tol}")
    probs = np.zeros((game.num_prompts, game.num_actions))
    unique = np.zeros(game.num_prompts, dtype=bool)
    fallback = np.zeros(game.num_prompts, dtype=bool)
    methods, scales = [], np.zeros(game.num_prompts)
    for x in range(game.num_prompts):
        support = np.flatnonzero(game.support[x])
        S = game.S[x] if len(support) == game.num_actions else game.S[x][np.ix_(support, support)]
        scales[x] = np.abs(S).max()
        pi, unique[x], method, fallback[x] = _nash_prompt(S, game.ref.probs[x, support], selection, tol)
        probs[x, support] = pi
        methods.append(method)
    policy = TabularPolicy.from_probs(probs)
    gaps = gaps_from_log_probs(game, policy.log_probs, 0.0)
    if np.any(gaps > 2 * tol * scales):
        worst = int(np.argmax(gaps / np.maximum(scales, np.finfo(float).tiny)))
        raise SolverError(f"nash_lp: certificate failed on prompt {worst} (DualGap_0 {gaps[worst]:.3g} > "
                          f"2·tol·max|S| = {2 * tol * scales[worst]:.3g}; {methods[worst]})")
    return LPEquilibrium(policy, np.full(game.num_prompts, 0.5), game.expected(gaps), gaps, unique, selection,
                         tuple(methods), fallback)


def _nash_prompt(S: np.ndarray, ref: np.ndarray, selection: str, tol: float):
    """(π, unique, method, fallback) for one prompt's game S [k, k] on Supp π_ref (``ref`` [k] > 0); see nash_lp."""
    k = len(S)
    if k == 1:
        return np.ones(1), True, "one action", False
    if not S.any():  # every policy is an equilibrium
        pi = ref.copy() if selection == "max-entropy" else np.eye(k)[0]
        return pi, False, f"S = 0: every policy is an equilibrium; {selection} selection", False
    S = _normalised_skew(S)
    notes, fallback, found = [], False, None
    if k > LP_DIRECT_MAX_ACTIONS:
        found, how = _support_from_tau_path(S, ref)
        route = f"support from the tau-path ({how}), exact solve on it"
        if found is None:
            notes.append("the tau-path did not identify the support")
            fallback = True
    if found is None:
        found = _complementary_lp(S)
        route = "HiGHS (strictly complementary LP), exact solve on its support"
    if found is None:
        # Unreached on every game we have tried: HiGHS's answer had no clear complementarity margin.
        x = _lp_on(S)
        T = x > 0
        face = _Face(S, T)
        x[T] = face.project(x[T])
        unique = face.dim == 0 and np.array_equal(T, S @ x > -_rounding(S))
        note = "HiGHS on the whole game (no strictly complementary solution found); uniqueness from its support"
        return np.clip(x, 0, None) / np.clip(x, 0, None).sum(), unique, note, True
    x, T, face = found
    if face.dim == 0:
        return x, True, f"{route}; unique" + "".join(f"; {n}" for n in notes), fallback
    selected = _max_entropy(S, x, T, face, ref) if selection == "max-entropy" else _vertex(S, T)
    if isinstance(selected, str):
        notes.append(f"{selection} selection failed ({selected}): returned the relative-interior equilibrium")
        fallback, selected = True, x
    else:
        notes.insert(0, f"{selection} selection")
    return selected, False, f"{route}; not unique (dim {face.dim})" + "".join(f"; {n}" for n in notes), fallback


def _normalised_skew(S: np.ndarray) -> np.ndarray:
    """S·2^−e with max|S·2^−e| ∈ [¼, ½): exact (a power of two), so ½ + it is a valid game and every tolerance
    applied to it is relative to the scale of S."""
    return np.ldexp(S, -(int(np.frexp(np.abs(S).max())[1]) + 1))


def _rounding(S: np.ndarray) -> float:
    """A bound well above the rounding error of (Sx)(y) for x on the simplex (max|S| < ½): k·ε·max|S| ≤ k·ε/2,
    the worst case of a k-term dot product, where the typical error is √k·ε·max|S|."""
    return len(S) * np.finfo(np.float64).eps * np.abs(S).max()


class _Face:
    """The affine hull {x_T : S_TT x_T = 0, 1ᵀx_T = 1} of the equilibrium set, from the SVD of A = [S_TT; 1ᵀ].

    ``dim`` is the nullity of A (``RANK_RTOL``); the columns of ``V`` [|T|, rank] span its row space.
    """

    def __init__(self, S: np.ndarray, T: np.ndarray):
        idx = np.flatnonzero(T)
        self.A = np.vstack([S[np.ix_(idx, idx)], np.ones((1, len(idx)))])  # [t + 1, t]
        self.b = np.r_[np.zeros(len(idx)), 1.0]
        self.U, self.sigma, Vt = np.linalg.svd(self.A, full_matrices=False)
        self.rank = int(np.sum(self.sigma > RANK_RTOL * self.sigma[0]))
        self.V = Vt[: self.rank].T
        self.dim = len(idx) - self.rank

    def project(self, x_T: np.ndarray) -> np.ndarray:
        """The point of the hull nearest x_T (least squares on the numerically non-zero singular values)."""
        r = self.rank
        return x_T - self.V @ ((self.U[:, :r].T @ (self.A @ x_T - self.b)) / self.sigma[:r])


def _strictly_complementary(S: np.ndarray, x: np.ndarray, T: np.ndarray) -> bool:
    """x > 0 on T, 0 off it, and Sx < 0 off T beyond rounding: every action is played or strictly beaten."""
    return bool(np.all(x[T] > 0) and np.all(x[~T] == 0) and np.all((S @ x)[~T] < -_rounding(S)))


def _complementary_lp(S: np.ndarray):
    """(x, T, face) for a strictly complementary equilibrium of S by HiGHS (see nash_lp, step 1), or None."""
    k = len(S)
    result = linprog(
        c=np.ones(k),
        A_ub=np.vstack([S, S - np.eye(k)]),  # Sw ≤ 0 and w − Sw ≥ 1
        b_ub=np.r_[np.zeros(k), -np.ones(k)],
        bounds=(0, None),
        method="highs",
    )
    if result.status != 0:
        return None
    w = result.x
    slack = -(S @ w)
    T = w > slack
    # Complementarity leaves one of w_y, −(Sw)(y) at 0 and the other ≥ 1: demand a clear margin on the LP's scale.
    if not np.all(np.minimum(w, slack) < 0.25) or not np.all(np.maximum(w, slack) > 0.75):
        return None
    face = _Face(S, T)
    x = np.zeros(k)
    x[T] = face.project(w[T] / w.sum())
    return (x, T, face) if _strictly_complementary(S, x, T) else None


#: The τ grid along which nash_lp looks for the support of large games.
_LP_PATH_TAUS = 1e-2 * 3.0 ** -np.arange(15)  # down to ~2e-9
#: Each point of that path only has to suggest a support, so it is solved loosely: to a duality gap of
#: SUPPORT_GAP_TOL and logits within SUPPORT_LOGIT_TOL (relative), with Newton's factorisation restricted to the
#: actions of mass above SUPPORT_MASS_FLOOR·τ (an inexact step, see _Newton._dense_on_active). The guess keeps the
#: actions with π_τ ≥ SUPPORT_RATIO·π_ref.
SUPPORT_GAP_TOL = 1e-8
SUPPORT_LOGIT_TOL = 1e-3
SUPPORT_MASS_FLOOR = 1e-3
SUPPORT_RATIO = 1e-4
#: Down to this τ the path's Newton systems go to GMRES first; below it they are factorised from the first step,
#: as GMRES would exceed its budget (on random 1000-action games GMRES takes ~23 products a step at τ = 3.3e-3, one
#: twelfth of a factorisation, and ~65 at τ = 1.1e-3, more than one).
SUPPORT_GMRES_TAU = 2e-3
#: Above this τ (for S scaled to max|S| ∈ [¼, ½)) no guess is tried: on random games every guess there was still
#: hundreds of actions off, and each try costs a factorisation.
SUPPORT_GUESS_TAU = 5e-4
#: The split of _ambiguous_lp by ℓ = log(π_τ/π_ref): played above the upper bound, beaten below the lower one.
#: On random 1000-action games at τ ≈ 4e-4 (seeds 0 and 1) every played action had ℓ > −6 and every beaten one
#: ℓ < −0.7, and about a fifth of the actions fell between the bounds; a wrong split costs one failed try, never a wrong answer.
AMBIGUOUS_LOG_RATIO = (-15.0, -0.5)
#: _ambiguous_lp is tried only with at most max(MAX_AMBIGUOUS, k // 6) undecided actions (k: the game's): HiGHS's
#: time grows steeply with them (at k = 3000: 2 s for 489, 27 s for an infeasible 926), while the path's Newton steps
#: below grow like k³.
MAX_AMBIGUOUS = 300


def _support_from_tau_path(S: np.ndarray, ref: np.ndarray):
    """((x, T, face), how) for a strictly complementary equilibrium found by support identification along a τ-path
    (see :func:`nash_lp`), ``how`` saying which point of the path gave it and by which route; (None, "") if none
    did. S is normalised (max|S| < ½), so ½ + S is a valid game."""
    sub_game = PreferenceGame(0.5 + S[None], ref[None])
    log_ref = np.log(ref)
    z, previous_tau = np.where(sub_game.support, sub_game.ref.log_probs, -np.inf), None
    for tau in _LP_PATH_TAUS:
        if previous_tau is not None:
            # Off the support log(π/π_ref) ≈ (Sπ)(y)/τ grows like 1/τ: rescale it for the actions clearly outside
            # (mass below e^−10 of their reference); on the support it converges, and is left as it is.
            ratio = z[0] - log_ref
            z = _normalised((log_ref + np.where(ratio < -10.0, (previous_tau / tau) * ratio, ratio))[None],
                            sub_game.support)
        try:
            z = _newton_solve(sub_game, tau, z, SUPPORT_GAP_TOL, 200, "", logit_tol=SUPPORT_LOGIT_TOL,
                              mass_floor=SUPPORT_MASS_FLOOR * tau, dense=tau < SUPPORT_GMRES_TAU).policy.log_probs
        except SolverError:
            return None, ""
        previous_tau = tau
        if tau > SUPPORT_GUESS_TAU:
            continue
        log_ratio = z[0] - log_ref
        found, undecided = _ambiguous_lp(S, log_ratio)
        if found is not None:
            return found, f"an LP over its {undecided} undecided actions at tau = {tau:.2g}"
        found = _active_set(S, _odd(log_ratio >= np.log(SUPPORT_RATIO), log_ratio))
        if found is not None:
            return found, f"guessed at tau = {tau:.2g}"
    return None, ""


def _odd(T: np.ndarray, score: np.ndarray) -> np.ndarray:
    """T without its lowest-``score`` member when |T| is even: a generic equilibrium has odd support (the bordered
    skew system of an even one is singular, see _solve_on_support)."""
    T = T.copy()
    if T.sum() % 2 == 0 and T.any():
        members = np.flatnonzero(T)
        T[members[np.argmin(score[members])]] = False
    return T


def _ambiguous_lp(S: np.ndarray, log_ratio: np.ndarray):
    """((x, T, face) or None, |A|): a strictly complementary equilibrium from a small LP over the |A| actions a τ-path
    point leaves undecided. ``log_ratio`` [k] is log(π_τ/π_ref) at that point; S is normalised (max|S| < ½).

    The actions are split by ``AMBIGUOUS_LOG_RATIO`` into C (taken as played), N (taken as beaten) and the rest, A.
    An equilibrium x with x_N = 0 and every action of C played has (Sx)_C = v·1 with v = 0, so with 1ᵀx = 1 the
    bordered system [[S_CC, −1], [1ᵀ, 0]] (x_C, v) = (−S_CA x_A, 1 − 1ᵀx_A) makes x_C and v affine functions of x_A.
    Then every x_A ≥ 0 with v(x_A) = 0, x_C(x_A) ≥ 0 and (Sx)(y) ≤ 0 for y ∉ C is an equilibrium: an LP in |A|
    variables (a fifth of the game on random games) that HiGHS solves in milliseconds, where the whole game takes it
    seconds. It starts with the rows of A and adds the rows of C and N only where they are violated (seldom). A
    wrong split makes the LP infeasible or its answer fail the exact check that follows (_active_set on its support),
    never returns a wrong answer: the caller then goes on down the path.
    """
    C = _odd(log_ratio > AMBIGUOUS_LOG_RATIO[1], log_ratio)  # an even C is moved into A
    A = (log_ratio >= AMBIGUOUS_LOG_RATIO[0]) & ~C
    a, c, k = np.flatnonzero(A), np.flatnonzero(C), int(C.sum())
    if not len(a) or len(a) > max(MAX_AMBIGUOUS, len(S) // 6) or not k:
        return None, len(a)
    rhs = np.zeros((k + 1, len(a) + 1))  # column 0: the constant part; column 1 + j: the coefficient of x_A[j]
    rhs[:k, 1:] = -S[np.ix_(c, a)]
    rhs[k] = np.r_[1.0, -np.ones(len(a))]
    Y = _bordered_solve(S, c, rhs)  # [k + 1, 1 + |A|]: rows 0..k−1 give x_C, row k gives v
    if Y is None:
        return None, len(a)
    R = np.flatnonzero(~C)  # the rows (Sx)(y) ≤ 0 left to check: A and N
    G = S[np.ix_(R, c)] @ Y[:k]  # [|R|, 1 + |A|]: (Sx)_R = G[:, 0] + G[:, 1:] x_A
    G[:, 1:] += S[np.ix_(R, a)]
    A_ub = np.vstack([-Y[:k, 1:], G[:, 1:]])  # x_C ≥ 0, then (Sx)_R ≤ 0
    b_ub = np.r_[Y[:k, 0], -G[:, 0]]
    rows = np.zeros(len(b_ub), dtype=bool)
    rows[k + np.searchsorted(R, a)] = True
    eta = _rounding(S)
    for _ in range(10):
        # Dual simplex without presolve: the LP is dense, presolve removes nothing and cost a third of the time.
        result = linprog(np.zeros(len(a)), A_ub=A_ub[rows], b_ub=b_ub[rows], A_eq=Y[k:, 1:], b_eq=-Y[k:, 0],
                         bounds=(0, None), method="highs-ds", options={"presolve": False})
        if result.status != 0:
            return None, len(a)
        violated = (A_ub @ result.x - b_ub > eta) & ~rows
        if not violated.any():
            break
        rows |= violated
    else:
        return None, len(a)
    x = np.zeros(len(S))
    x[a] = result.x
    x[c] = Y[:k, 0] + Y[:k, 1:] @ result.x
    # HiGHS's point is feasible to its 1e-7 tolerance, so a beaten action may carry a sliver of mass: the exact
    # solve (after the usual odd-support correction) decides.
    return _active_set(S, _odd(x > eta, x)), len(a)


#: rcond (1-norm, LAPACK's estimate) of the bordered matrix [[S_TT, −1], [1ᵀ, 0]] above which it is nonsingular
#: beyond doubt, so the equilibrium is unique without an SVD (see _active_set).
RCOND_UNIQUE = 1e-8


def _active_set(S: np.ndarray, T: np.ndarray, rounds: int = 3):
    """Correct a guessed support T by a few exchange rounds: drop actions the exact solve weights ≤ 0, add actions
    that beat the solution. Returns (x, T, face) for a strictly complementary x, or None when the guess was too far
    off or an action sits at rounding level (a degenerate game: the LP route decides it).

    Uniqueness: the bordered matrix M = [[S_TT, −1], [1ᵀ, 0]] is singular iff E is not a point (if Mv = 0 with
    v = (u, λ), then xᵀS_TT u = λ for the solution x, and xᵀS_TT = −(S_TT x)ᵀ = 0, so λ = 0 and u is a kernel
    direction of [S_TT; 1ᵀ]). A well-conditioned LU (rcond ≥ RCOND_UNIQUE) settles it; otherwise the SVD does.
    """
    T = T.copy()
    eta = _rounding(S)
    for _ in range(rounds):
        solved = _solve_on_support(S, T)
        if solved is None:
            return None
        x, rcond = solved
        if np.any(x[T] <= 0):
            T &= x > 0
            continue
        Sx = S @ x
        if np.all(Sx[~T] < -eta):
            face = _UniqueFace() if rcond >= RCOND_UNIQUE else _Face(S, T)
            if face.dim:
                x[T] = face.project(x[T])
            return (x, T, face) if _strictly_complementary(S, x, T) else None
        if not np.any(Sx[~T] > eta):
            return None  # only ties at rounding level are left: degenerate
        T |= Sx > eta
    return None


class _UniqueFace:
    """The face of a game whose bordered matrix is well conditioned: a single point."""

    dim = 0


def _solve_on_support(S: np.ndarray, T: np.ndarray):
    """(x, rcond): the solution of S_TT x_T = v·1, 1ᵀx_T = 1 with zeros off T, and the 1-norm reciprocal
    condition number of that bordered system; None if it is singular.

    For a generic skew S_TT, the system is regular exactly when |T| is odd, and then v = 0 (Kaplansky: a symmetric
    zero-sum game's generic equilibrium has odd support). x may have non-positive entries: the caller checks.
    """
    idx = np.flatnonzero(T)
    k = len(idx)
    b = np.zeros(k + 1)
    b[k] = 1.0
    solved = _bordered_solve(S, idx, b, with_rcond=True)
    if solved is None:
        return None
    solution, rcond = solved
    x = np.zeros(len(S))
    x[idx] = solution[:k]
    return x, rcond


def _bordered_solve(S: np.ndarray, idx: np.ndarray, rhs: np.ndarray, with_rcond: bool = False):
    """The solution of [[S_II, −1], [1ᵀ, 0]] u = rhs (I = ``idx``, rhs [|I| + 1] or [|I| + 1, m]), with its 1-norm
    reciprocal condition number if ``with_rcond``; None if the matrix is singular to working precision."""
    k = len(idx)
    A = np.empty((k + 1, k + 1))  # [[S_II, −1], [1ᵀ, 0]]
    A[:k, :k] = S[np.ix_(idx, idx)]
    A[:k, k] = -1.0
    A[k, :k] = 1.0
    A[k, k] = 0.0
    anorm = np.abs(A).sum(axis=0).max()
    lu, piv, info = lapack.dgetrf(A, overwrite_a=True)
    if info != 0:
        return None
    solution, info = lapack.dgetrs(lu, piv, rhs)
    rcond, _ = lapack.dgecon(lu, anorm, norm="1")
    if info != 0 or not np.all(np.isfinite(solution)) or rcond < np.finfo(np.float64).eps:
        return None
    return (solution, rcond) if with_rcond else solution


def _lp_on(S: np.ndarray, method: str = "highs") -> np.ndarray:
    """HiGHS on the symmetric game S: minimise v subject to Sx ≤ v·1, 1ᵀx = 1, x ≥ 0 (optimal v = 0); x clipped
    to the simplex. ``method`` is linprog's (``"highs"``: dual simplex; ``"highs-ipm"``: interior point)."""
    k = len(S)
    result = linprog(
        c=np.r_[np.zeros(k), 1.0],
        A_ub=np.c_[S, -np.ones(k)],
        b_ub=np.zeros(k),
        A_eq=np.r_[np.ones(k), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * k + [(None, None)],
        method=method,
    )
    if result.status != 0:
        raise SolverError(f"nash_lp: HiGHS failed: {result.message}")
    return np.clip(result.x[:k], 0.0, None) / np.clip(result.x[:k], 0.0, None).sum()


def _vertex(S: np.ndarray, T: np.ndarray):
    """A vertex of the equilibrium set E (a basic solution by HiGHS's dual simplex over E's description on T),
    polished by the exact solve of its defining equalities; or a string saying why not."""
    idx, out = np.flatnonzero(T), np.flatnonzero(~T)
    result = linprog(
        c=np.zeros(len(idx)),
        A_ub=S[np.ix_(out, idx)] if len(out) else None,
        b_ub=np.zeros(len(out)) if len(out) else None,
        A_eq=np.vstack([S[np.ix_(idx, idx)], np.ones((1, len(idx)))]),
        b_eq=np.r_[np.zeros(len(idx)), 1.0],
        bounds=(0, None),
        method="highs-ds",
    )
    if result.status != 0:
        return f"HiGHS: {result.message}"
    vertex = np.zeros(len(S))
    vertex[idx] = np.clip(result.x, 0.0, None)
    V = vertex > 0
    face = _Face(S, V)  # its support's equalities; a basic solution is their unique solution when they have rank |V|
    if face.dim == 0:
        vertex[V] = face.project(vertex[V])
    if vertex.min() < 0 or (S @ vertex).max() > _rounding(S):
        return f"the vertex polished on its support is not an equilibrium (max Sx = {(S @ vertex).max():.3g})"
    return vertex / vertex.sum()


#: _max_entropy: cap on its active-set changes and on the Newton steps of each equality-constrained solve, and the
#: tolerance of its KKT certificate (relative to the game's scale and to max(1, ‖μ‖∞) for complementarity).
MAXENT_ITER = 100
MAXENT_TOL = 1e-12
#: The largest change of any log x_y in one dual Newton step of _max_entropy, and its damping relative to the trace
#: of the Newton matrix.
MAXENT_LOG_STEP = 30.0
MAXENT_DAMPING = 1e-14


def _max_entropy(S: np.ndarray, x: np.ndarray, T: np.ndarray, face: "_Face", ref: np.ndarray):
    """argmin KL(x‖ref) over the equilibrium set E, or a string saying why its certificate failed.

    On T, E = {x ≥ 0 : Cx = d, Gx ≤ 0}: C [rank, |T|] spans the rows of [S_TT; 1ᵀ] (from the face's SVD, d = Cx for
    the strictly complementary x) and G = S_{N,T} holds the actions no equilibrium plays. The minimiser is positive
    on T (∂KL/∂x_y → −∞ as x_y → 0 and some point of E is positive on T), so its KKT conditions read

        log x = log ref − 1 + Cᵀλ − G_Wᵀμ,    μ ≥ 0,    Cx = d,    G_W x = 0,    Gx ≤ 0,

    for the set W of constraints active at it. An active-set method finds W: for a working set, the
    equality-constrained minimiser is the maximiser of the concave dual D(ν) = νᵀe − Σ_y exp(log ref_y − 1 +
    (Mᵀν)_y), M = [C; −G_W], e = (d, 0), found by Newton's method (∇D = e − Mx, ∇²D = −M diag(x) Mᵀ, least squares
    where M has dependent rows); a constraint with μ_j < 0 then leaves W, the most violated one outside W joins it.
    Working with log x keeps references of 1e-300 exact, where a Newton step in x itself loses them to cancellation.
    Certificate: stationarity holds by construction, so first-order optimality on the face reduces to Cx = d,
    Gx ≤ 0, μ ≥ 0 and μ_j (Gx)_j = 0, each checked to MAXENT_TOL; KL is convex, so that is optimality over E.
    """
    C = face.V.T  # [rank, |T|]
    d = C @ x[T]
    G = S[np.ix_(~T, T)]  # [|N|, |T|]
    # KL(x‖c·ref) − KL(x‖ref) is constant on the simplex: normalising ref on T leaves the minimiser alone and starts
    # the dual at x = ref/Σ_T ref instead of at a point that may be 1e-300 away from the simplex.
    base = np.log(ref[T]) - logsumexp(np.log(ref[T]))
    W = np.zeros(len(G), dtype=bool)
    lam, mu = np.zeros(len(C)), np.zeros(len(G))  # μ over all of G's rows, 0 off W
    for _ in range(MAXENT_ITER):
        nu, xT = _entropy_dual_newton(base, np.vstack([C, -G[W]]), np.r_[d, np.zeros(W.sum())], np.r_[lam, mu[W]])
        lam, mu[W] = nu[: len(C)], nu[len(C):]
        slack = G @ xT
        if W.any() and mu[W].min() < -MAXENT_TOL * max(1.0, float(np.abs(mu).max())):
            leaving = int(np.argmin(np.where(W, mu, np.inf)))
            W[leaving], mu[leaving] = False, 0.0
            continue
        violated = np.where(W, -np.inf, slack)
        if violated.size and violated.max() > MAXENT_TOL:
            W[int(np.argmax(violated))] = True
            continue
        break
    else:
        return f"the active set did not settle in {MAXENT_ITER} changes"
    scale = max(1.0, float(np.abs(mu).max(initial=0.0)))
    worst = max(float(np.abs(C @ xT - d).max()), float(slack.max(initial=0.0)), float(-mu.min(initial=0.0)) / scale,
                float(np.abs(mu * slack).max(initial=0.0)) / scale)
    if not worst <= MAXENT_TOL:
        return f"its first-order optimality conditions hold only to {worst:.2g}"
    selected = np.zeros(len(S))
    selected[T] = xT
    return selected / selected.sum()


def _entropy_dual_newton(base: np.ndarray, M: np.ndarray, e: np.ndarray, nu: np.ndarray):
    """(ν, x): the maximiser of D(ν) = νᵀe − Σ exp(base + Mᵀν) by Newton's method from ν, and x = exp(base + Mᵀν).

    Each step solves (M diag(x) Mᵀ + δI) Δ = e − Mx (δ = MAXENT_DAMPING·trace, which also covers dependent rows of
    M), is cut so that no log x
    moves by more than MAXENT_LOG_STEP, and is halved until D rises
    or ‖e − Mx‖∞ falls; it stops at ‖e − Mx‖∞ ≤ MAXENT_TOL/4 or when no halving helps (rounding level).
    """

    def evaluate(nu):
        with np.errstate(over="ignore"):
            x = np.exp(base + M.T @ nu)
        gradient = e - M @ x
        return x, float(nu @ e - x.sum()), gradient, float(np.abs(gradient).max(initial=0.0))

    x, value, gradient, residual = evaluate(nu)
    if not np.isfinite(value):  # the warm start overflows once the working set changed: start from ref instead
        nu = np.zeros_like(nu)
        x, value, gradient, residual = evaluate(nu)
    for _ in range(MAXENT_ITER):
        if residual <= MAXENT_TOL / 4:
            break
        H = (M * x) @ M.T
        # Levenberg–Marquardt damping: a direction only tiny coordinates see (x_y ~ 1e-100) has curvature ~ x_y and
        # would be dropped by a plain solve; damped, it gets a gradient step, which the trust region below caps.
        step = np.linalg.solve(H + MAXENT_DAMPING * np.trace(H) * np.eye(len(H)), gradient)
        # x depends on ν through exp: a Newton step that moves some log x by more than MAXENT_LOG_STEP is cut to
        # that length, a trust region in log space (the quadratic model means nothing beyond it).
        step *= min(1.0, MAXENT_LOG_STEP / max(float(np.abs(M.T @ step).max(initial=0.0)), 1e-300))
        for _ in range(60):
            trial = evaluate(nu + step)
            if np.isfinite(trial[1]) and (trial[1] > value or trial[3] < residual):
                break
            step = step / 2
        else:
            break
        nu = nu + step
        x, value, gradient, residual = trial
    return nu, x
