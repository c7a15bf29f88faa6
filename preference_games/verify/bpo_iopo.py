"""Checks of BPO (Xu et al., ``../shared/papers/bpo-behavior-llm-online-alignment.txt``) and IOPO (Wang et al.,
``../shared/papers/iopo-indirect-online-preference-optimization.txt``).

Our notation (``docs/paper_notes.md`` §4–§5, ``docs/algorithms.md`` §5–§7): BPO's β and IOPO's β are our ``tau``
(the loss coefficient; neither algorithm has a π_ref term); BPO's behaviour policy π_β is our anchor π_b; IOPO's
protagonist π_μ is the trained policy π, its adversary π_ν is ν, ε the clip, and Q (eq. 13) the data mean of
σ(τh)/r. Pairs for IOPO come from the data policy μ, here each game's π_ref.

BPO has no published result to check; its check is our derived claim that it loses the anchor to π_ref. IOPO's
Theorems 1–3 are checked on exact tabular runs (the population loss, no sampling).

The long runs are numpy re-implementations of the engine's exact steps (the hand-derived logit gradients below),
batched per shape group; every check replays their first steps with the engine (``simulate``) and raises (verdict
``error``) on any difference above round-off, so the numpy dynamics are the engine's.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import expit

from ..algorithms import make
from ..dynamics import simulate
from ..equilibria import nash_lp, regularized_nash
from .core import FAILS, HOLDS, Outcome, check
from .exact import Batch, batches, population_gradient, random_policies
from .mirror_descent import sppo_map
from .suite import Suite
from .worst import Worst, namer

BPO = "BPO (Xu et al.)"
IOPO = "IOPO (Wang et al.)"

#: BPO's loss coefficient (the paper's β = 0.1) and the step and length of the on-policy runs.
BPO_TAU = 0.1
BPO_LR = 0.2
BPO_STEPS = 1000
#: Phases of BPO with each phase solved exactly (= SPPO with η = τ).
BPO_PHASES = 200
#: Gradient identities are compared on the unit scale τ·∇ (IPO gradients scale like 1/τ). The tolerance is the
#: unregularised LP certificate (DualGap_0 ≤ 1e-9), which bounds the rest-point residual at NE_0; the pure
#: identities sit at round-off (~1e-15), far below it.
BPO_TOL = 1e-9
#: Engine steps replayed to validate the numpy dynamics.
REPLAY = 20


# ================================================================================================ BPO tools
def ipo_gradient(batch: Batch, log_pi: np.ndarray, log_anchor: np.ndarray, log_source: np.ndarray,
                 tau: float) -> np.ndarray:
    """The logit gradient of the soft-labelled IPO population loss with pairs from ν (``log_source``) and h taken
    against the anchor a: 2 d0(x) ν(z) [2(u(z) − E_ν u) − (2 p(z ≻ ν) − 1)/τ], u = log π − log a.

    From ∂L/∂θ(z) = Σ_{y'} G(z, y') − Σ_y G(y, z) with G = w[p ℓ'(h) − (1 − p) ℓ'(−h)] = w[2h − (2p − 1)/τ],
    w = d0 ν(y) ν(y') (ℓ(h) = (h − 1/(2τ))²), and G(y, z) = −G(z, y). On-policy (a = ν = π, u ≡ 0) it is
    −(2/τ) d0 π (2 p(z ≻ π) − 1)."""
    nu = np.exp(log_source)
    u = batch.inside(log_pi - log_anchor)
    centred = u - (nu * u).sum(axis=-1, keepdims=True)
    return 2.0 * batch.d0[..., None] * nu * (2.0 * centred - (2.0 * batch.win(log_source) - 1.0) / tau)


def on_policy_bpo(batch: Batch, steps: int, lr: float, tau: float) -> np.ndarray:
    """On-policy BPO(IPO) (F = T: the behaviour policy is the current one) from π_ref: log π after each step
    [steps + 1, G, X, Y]. Plain gradient steps on the logits, as ``simulate`` takes them."""
    path = [batch.log_ref]
    for _ in range(steps):
        log_pi = path[-1]
        path.append(batch.normalise(batch.inside(log_pi) - lr * ipo_gradient(batch, log_pi, log_pi, log_pi, tau)))
    return np.stack(path)


def require_replay(batch: Batch, name: str, params: dict, numpy_path: np.ndarray, lr: float) -> None:
    """Replay the first REPLAY steps with the engine and raise if the numpy ones differ by more than 1e-12 in log π:
    a check resting on wrong dynamics must report ``error``, not a verdict about the paper."""
    run = simulate(make(name, **params), list(batch.games), steps=REPLAY, lr=lr)
    error = np.abs(np.where(batch.support, run.log_probs - numpy_path[: REPLAY + 1], 0.0)).max()
    if error > 1e-12:
        raise RuntimeError(f"numpy {name} dynamics differ from the engine's by {error:.3g} on {batch.names[0]}'s group")


# ================================================================================================ BPO
@check("bpo/fixed-point", paper=BPO, location="eq. 5, Algorithm 1 (F = T); derived, docs/paper_notes.md §4",
       quick=False,
       statement="BPO loses the anchor to π_ref: the on-policy BPO(IPO) step is −(2/τ)d0·π(2p(y ≻ π) − 1) (no "
                 "π_ref), so its rest points, like the EMA variant's, are the π with p(y ≻ π) = ½ on Supp π (NE_0 "
                 "among them) and NE_τ is one only if π_ref ∈ NE_0; each phase solved exactly is SPPO (eq. 60) "
                 "with η = τ")
def bpo_fixed_point(suite):
    """Our derived claim (BPO itself states no fixed point), τ = BPO_TAU, on every game, batched per shape group:
    (i) the engine's exact gradient (``population_gradient``) of make("bpo") at a random π with anchor π, and of
    make("bpo-ema") with its EMA anchor equal to π (a rest point of the EMA), against the closed form in the
    statement; and of make("bpo") at a random π against a random anchor a, against :func:`ipo_gradient` (the
    formula the numpy runs use); (ii) the closed form at NE_0 (``nash_lp``) vanishes, to the LP certificate;
    (iii) at NE_τ it vanishes exactly in the games where π_ref is itself an unregularised equilibrium
    (DualGap_0(π_ref) ≤ BPO_TOL) and in no other; (iv) with anchor π_b the gradient vanishes at the SPPO step
    π_b exp(p(y ≻ π_b)/τ)/Z (the IPO loss is convex in the logits, so this is the phase's minimiser).
    Errors are τ·|∇| (unit scale); tolerance BPO_TOL; the first REPLAY engine steps of on-policy BPO must match the
    numpy run (else the check raises). Reported (what the rest points do to the dynamics): on-policy BPO at lr
    BPO_LR for BPO_STEPS steps and phase-solved BPO for BPO_PHASES phases, from π_ref — their KL to π_ref against
    NE_τ's, their unregularised gap, and how far the gap still swings over the second half of the run."""
    games = suite.games()
    rng = suite.rng(5)
    on_policy = make("bpo", tau=BPO_TAU, total_steps=1, annotations=1)
    ema = make("bpo-ema", tau=BPO_TAU)
    worst = Worst("error", "closest", start=-np.inf)
    mismatched = []
    farther, gaps, swings, phase_gaps, phase_swings = [], [], [], [], []
    for batch in batches(games):
        group = list(batch.games)
        pi, anchor = (np.concatenate([random_policies(g, 1, rng) for g in group]) for _ in range(2))
        closed = -(2.0 / BPO_TAU) * batch.d0[..., None] * np.exp(pi) * (2.0 * batch.win(pi) - 1.0)
        _, grad = population_gradient(on_policy, group, pi, anchor=pi)
        _, grad_ema = population_gradient(ema, group, pi, anchor=pi)
        _, grad_anchored = population_gradient(on_policy, group, pi, anchor=anchor)
        identity = np.maximum.reduce([np.abs(grad - closed), np.abs(grad_ema - closed),
                                      np.abs(grad_anchored - ipo_gradient(batch, pi, anchor, anchor, BPO_TAU))])
        ne0 = np.stack([nash_lp(g).policy.log_probs for g in group])
        rest0 = 2.0 * batch.d0[..., None] * np.exp(ne0) * np.abs(2.0 * batch.win(ne0) - 1.0)  # τ·|closed form|
        star = np.stack([regularized_nash(g, BPO_TAU).policy.log_probs for g in group])
        at_star = (2.0 * batch.d0[..., None] * np.exp(star) * np.abs(2.0 * batch.win(star) - 1.0)).max(axis=(1, 2))
        ref_is_ne0 = batch.gap0(batch.log_ref) <= BPO_TOL
        mismatched.append((at_star <= BPO_TOL) != ref_is_ne0)
        worst.update("closest", -np.where(ref_is_ne0, np.inf, at_star), namer(batch.games))
        _, grad_phase = population_gradient(on_policy, group, sppo_map(batch, anchor, BPO_TAU), anchor=anchor)
        path = on_policy_bpo(batch, BPO_STEPS, BPO_LR, BPO_TAU)
        require_replay(batch, "bpo", {"tau": BPO_TAU, "total_steps": REPLAY, "annotations": REPLAY}, path, BPO_LR)
        worst.update("error", np.maximum.reduce([BPO_TAU * identity.max(axis=(1, 2)), rest0.max(axis=(1, 2)),
                                                 BPO_TAU * np.abs(grad_phase).max(axis=(1, 2))]), namer(batch.games))
        farther.append(batch.kl(path[-1], batch.log_ref) > batch.kl(star, batch.log_ref))
        gap = batch.gap0(path[BPO_STEPS // 2:])
        gaps.append(gap[-1])
        swings.append(gap.max(axis=0) - gap.min(axis=0))
        phases = [batch.log_ref]
        for _ in range(BPO_PHASES):
            phases.append(sppo_map(batch, phases[-1], BPO_TAU))
        phase_gap = batch.gap0(np.stack(phases[BPO_PHASES // 2:]))
        phase_gaps.append(phase_gap[-1])
        phase_swings.append(phase_gap.max(axis=0) - phase_gap.min(axis=0))
    error, where = worst["error"]
    mismatch = int(np.concatenate(mismatched).sum())
    closest = worst.value["closest"]
    farther, gaps, swings = np.concatenate(farther), np.concatenate(gaps), np.concatenate(swings)
    phase_gaps, phase_swings = np.concatenate(phase_gaps), np.concatenate(phase_swings)
    ok = error <= BPO_TOL and mismatch == 0
    return Outcome(
        f"identities and rest points: max τ·|∇| error {error:.1e} ({where}); NE_τ is a rest point exactly where "
        f"π_ref ∈ NE_0 ({mismatch} exceptions; elsewhere τ·|∇| at NE_τ ≥ {-closest:.2e}). Dynamics from π_ref: "
        f"on-policy BPO (lr {BPO_LR:g}, {BPO_STEPS} steps) ends farther from π_ref than NE_τ in "
        f"{int(farther.sum())}/{len(farther)} games, DualGap_0 median {np.median(gaps):.3g} (max {gaps.max():.3g}), "
        f"gap still swinging by > 0.05 over the second half in {int((swings > 0.05).sum())}; phase-solved BPO "
        f"({BPO_PHASES} phases) DualGap_0 median {np.median(phase_gaps):.3g}, swinging in "
        f"{int((phase_swings > 0.05).sum())}",
        error, BPO_TOL, HOLDS if ok else FAILS, len(games),
        counterexample="" if ok else f"{where}: error {error:.3g}; {mismatch} games where NE_τ's rest status "
                                     f"disagrees with π_ref ∈ NE_0")


# ================================================================================================ IOPO tools
#: IOPO's paper settings β = 0.1 (our τ) and ε = 0.3; our exact runs: plain steps of lr 1 on the logits (a step of
#: about τ·lr/2 = 0.05 in the logits at the start), N_μ = N_ν = 1, 300 iterations (600 steps).
IOPO_TAU, IOPO_EPSILON = 0.1, 0.3
IOPO_LR = 1.0
IOPO_ITERATIONS = 300
#: Theorem 2's comparison: phases of 5 steps, the weight r frozen at the phase start (Algorithm 1) or recomputed.
PHASE_STEPS = 5
PHASE_ITERATIONS = 60
#: Increments of Q below this, relative to max(1, |Q|), are round-off (Q is a data mean of σ(τh)/r terms computed to
#: ~1e-16 relative): they carry no sign and no ratio.
Q_ROUNDOFF = 1e-12


def increments(Q: np.ndarray) -> np.ndarray:
    """ΔQ_t = Q_{t+1} − Q_t [T, G], with round-off increments (below Q_ROUNDOFF·max(1, |Q_t|)) set to 0."""
    dQ = np.diff(Q, axis=0)
    return np.where(np.abs(dQ) > Q_ROUNDOFF * np.maximum(1.0, np.abs(Q[:-1])), dQ, 0.0)


def clipped(log_ratio: np.ndarray, epsilon: float) -> np.ndarray:
    """IOPO eqs. 11–12: r = min(e^{log_ratio}, 1 + ε), with r = 1 where e^{log_ratio} under/overflows."""
    with np.errstate(over="ignore"):
        ratio = np.exp(log_ratio)
    return np.where((ratio == 0) | np.isinf(ratio), 1.0, np.minimum(ratio, 1.0 + epsilon))


def iopo_gradient(batch: Batch, P: np.ndarray, pairs: np.ndarray, agent: np.ndarray, opponent: np.ndarray,
                  start: np.ndarray, tau: float, epsilon: float) -> np.ndarray:
    """The logit gradient of an IOPO agent's loss Σ w[p r(y')ℓ(h) + (1 − p) r(y)ℓ(−h)], ℓ(h) = −log σ(τh),
    h = u(y) − u(y'), u = log agent − log opponent, r(y) = clipped start(y)/opponent(y) (the weight of the pair
    whose loser is y), w = ``pairs`` [G, X, Y, Y]; P: the agent's labels (Pᵀ for the adversary). The chain rule
    through h gives Σ_{y'} G(z, y') − Σ_y G(y, z), G = w[p r(y')ℓ'(h) − (1 − p) r(y)ℓ'(−h)], ℓ'(h) = −τσ(−τh)."""
    u = batch.inside(agent - opponent)
    h = u[..., :, None] - u[..., None, :]
    r = clipped(batch.inside(start - opponent), epsilon)
    G = pairs * (P * r[..., None, :] * (-tau * expit(-tau * h)) - (1.0 - P) * r[..., :, None] * (-tau * expit(tau * h)))
    return G.sum(axis=-1) - G.sum(axis=-2)


def q_value(batch: Batch, pairs: np.ndarray, pi: np.ndarray, nu: np.ndarray, tau: float, epsilon: float):
    """Theorem 1's Q_μ: the data mean of eq. 13, σ(τh)/r(y_l), h and r of the protagonist against the adversary,
    soft-labelled over both orders (as ``algorithms.iopo.q_value``): [G]."""
    u = batch.inside(pi - nu)
    h = u[..., :, None] - u[..., None, :]
    r = clipped(u, epsilon)
    q = batch.P * expit(tau * h) / r[..., None, :] + (1.0 - batch.P) * expit(-tau * h) / r[..., :, None]
    return (pairs * q).sum(axis=(-3, -2, -1))


def iopo_run(batch: Batch, iterations: int, lr: float, steps: int = 1, frozen: bool = True,
             tau: float = IOPO_TAU, epsilon: float = IOPO_EPSILON) -> dict:
    """IOPO (Algorithm 1, reading (B) of the adversary, ``docs/algorithms.md`` §6) from π = ν = π_ref with data
    μ = π_ref: ``steps`` steps on π against ν, then on ν against π (labels reversed), per iteration. ``frozen``:
    the weight r from the phase-start snapshot (the engine's reading of "r constant in N_μ iterations"); else
    recomputed at every step. Returns Q after each iteration [iterations + 1, G], the protagonist's log π after
    every step [2·steps·iterations + 1, G, X, Y] and its phase-start weights r^t(y) [iterations, G, X, Y]."""
    mu = np.exp(batch.log_ref)
    pairs = batch.d0[..., None, None] * mu[..., :, None] * mu[..., None, :]
    reversed_labels = np.swapaxes(batch.P, -1, -2)
    pi = nu = batch.log_ref
    Q, path, weights = [q_value(batch, pairs, pi, nu, tau, epsilon)], [pi], []
    for _ in range(iterations):
        start = pi
        weights.append(clipped(batch.inside(start - nu), epsilon))
        for _ in range(steps):
            grad = iopo_gradient(batch, batch.P, pairs, pi, nu, start if frozen else pi, tau, epsilon)
            pi = batch.normalise(batch.inside(pi) - lr * grad)
            path.append(pi)
        start = nu
        for _ in range(steps):
            grad = iopo_gradient(batch, reversed_labels, pairs, nu, pi, start if frozen else nu, tau, epsilon)
            nu = batch.normalise(batch.inside(nu) - lr * grad)
            path.append(pi)
        Q.append(q_value(batch, pairs, pi, nu, tau, epsilon))
    return {"Q": np.stack(Q), "path": np.stack(path), "r": np.stack(weights)}


@lru_cache(maxsize=4)
def iopo_runs(n: int, seed: int) -> tuple:
    """The main IOPO runs on a suite's games (shared by the three theorem checks): per shape group, the batch and
    the run at IOPO_LR for IOPO_ITERATIONS iterations, its first REPLAY steps replayed against the engine."""
    runs = []
    for batch in batches(Suite(n, seed).games()):
        run = iopo_run(batch, IOPO_ITERATIONS, IOPO_LR)
        require_replay(batch, "iopo", {"tau": IOPO_TAU, "epsilon": IOPO_EPSILON}, run["path"], IOPO_LR)
        runs.append((batch, run))
    return tuple(runs)


def last_turn(increments: np.ndarray, offset: int) -> int:
    """The last iteration at which Q changes direction (increments of opposite signs, zeros skipped), counted from
    the start of the run (``increments`` begin at iteration ``offset``); −1 if it never turns."""
    moving = np.flatnonzero(increments)
    turns = moving[1:][np.sign(increments[moving[1:]]) != np.sign(increments[moving[:-1]])]
    return int(turns[-1]) + offset if len(turns) else -1


# ================================================================================================ IOPO
@check("iopo/thm-1", paper=IOPO, location="Theorem 1, eqs. 16–18", quick=False,
       statement="as t → ∞, Q_μ^t (the data mean of eq. 13 after iteration t) is monotonic and converges; the "
                 "proof uses Q_μ^t ∈ [0, 1]")
def iopo_theorem_1(suite):
    """Exact IOPO runs (:func:`iopo_run`: τ = 0.1, ε = 0.3, lr IOPO_LR, N_μ = N_ν = 1, IOPO_ITERATIONS iterations,
    μ = π_ref) on every game. Monotone for large t: the error is, over the second half of the run, the smaller of
    the total rise and the total fall of Q (0 for a monotone sequence; round-off increments ignored, see
    :func:`increments`);
    tolerance 1e-12 (round-off). Converges: a run whose increments are positive and still growing over the last 10
    iterations is diverging. Also reported: the largest Q (the proof's Q ∈ [0, 1]). Verdict fails if either the
    monotonicity or the convergence is violated in some game."""
    runs = iopo_runs(suite.n, suite.seed)
    worst = Worst("amount", "top", start=-np.inf)
    amounts, flips, diverging, tops, finals = [], [], [], [], []
    half = IOPO_ITERATIONS // 2
    for batch, run in runs:
        dQ = increments(run["Q"])  # [T, G]
        late = dQ[half:]
        amounts.append(np.minimum(np.clip(late, 0, None).sum(axis=0), np.clip(-late, 0, None).sum(axis=0)))
        flips.append([last_turn(column, half) for column in late.T])
        tail = dQ[-10:]
        diverging.append(np.all(tail > 0, axis=0) & np.all(np.diff(tail, axis=0) > 0, axis=0))
        tops.append(run["Q"].max(axis=0))
        finals.append(run["Q"])
        worst.update("amount", amounts[-1], namer(batch.games))
        worst.update("top", tops[-1], namer(batch.games))
    (amount, where), (top, top_where) = worst["amount"], worst["top"]
    all_names = [n for batch, _ in runs for n in batch.names]
    i = all_names.index(where)
    Q_all = np.concatenate(finals, axis=1)  # [T + 1, games]
    turn = [t for group in flips for t in group][i]
    diverging = np.concatenate(diverging)
    j = all_names.index(top_where)
    nonmonotone = int((np.concatenate(amounts) > 1e-12).sum())
    parts = []
    if amount > 1e-12:
        values = ", ".join(f"{q:.10f}" for q in Q_all[turn - 1: turn + 2, i])
        parts.append(f"{where}: Q still turns at iteration {turn}: Q = {values} (iterations {turn - 1}–{turn + 1})")
    if diverging.any():
        k = int(np.flatnonzero(diverging)[np.argmax(Q_all[-1, diverging])])
        parts.append(f"{all_names[k]}: Q diverges: Q = {Q_all[half, k]:.4g} at iteration {half}, "
                     f"{Q_all[-1, k]:.4g} at {IOPO_ITERATIONS}, increments still growing")
    ok = amount <= 1e-12 and not diverging.any()
    return Outcome(
        f"{IOPO_ITERATIONS} exact iterations: Q not monotone over the second half in {nonmonotone} games (worst "
        f"rise/fall {amount:.3g}, {where}); diverging in {int(diverging.sum())}; Q > 1 in "
        f"{int((np.concatenate(tops) > 1).sum())} games (max {top:.4g}, {top_where}, iteration "
        f"{int(np.argmax(Q_all[:, j]))}), contradicting Q ∈ [0, 1]",
        amount, 1e-12, HOLDS if ok else FAILS, len(all_names), counterexample="; ".join(parts))


@check("iopo/thm-2", paper=IOPO, location="Theorem 2, eqs. 19–20", quick=False,
       statement="with the weight r^t constant over a phase, Q_μ converges faster; the proof concludes "
                 "(Q^t − Q^{t−1})/(Q^{t+1} − Q^t) ≤ 1")
def iopo_theorem_2(suite):
    """On the runs of iopo/thm-1: the ratio ΔQ_t/ΔQ_{t+1} of successive increments of the same sign (both above
    round-off, :func:`increments`); the error is its largest value, tolerance 1 (the proof's conclusion; a
    converging monotone Q has shrinking increments, so ratios above 1). "Converges faster": phases of PHASE_STEPS
    steps for PHASE_ITERATIONS iterations with r frozen at the phase start (Algorithm 1 as the engine reads it)
    against r recomputed at every step, same lr; the movement left in the second half, Σ_{t > T/2} |ΔQ_t|, is
    compared per game (smaller = closer to converged) and the games where the frozen weight is slower are counted."""
    runs = iopo_runs(suite.n, suite.seed)
    worst = Worst("ratio", "shrinking", start=-np.inf)
    where_t, slower, margin = [], [], []
    for batch, run in runs:
        dQ = increments(run["Q"])
        a, b = dQ[:-1], dQ[1:]
        same = a * b > 0
        ratio = np.where(same, a / np.where(same, b, 1.0), -np.inf)
        worst.update("ratio", ratio.max(axis=0), namer(batch.games))
        # the counterexample shown: the largest absolute shrink between two increments of the same sign
        visible = np.where(ratio > 1.0, np.abs(a) - np.abs(b), -np.inf)
        worst.update("shrinking", visible.max(axis=0), namer(batch.games))
        where_t.append(visible.argmax(axis=0) + 1)
        left = {}
        for frozen in (True, False):
            phased = np.diff(iopo_run(batch, PHASE_ITERATIONS, IOPO_LR, PHASE_STEPS, frozen)["Q"], axis=0)
            left[frozen] = np.abs(phased[PHASE_ITERATIONS // 2:]).sum(axis=0)
        slower.append(left[True] > left[False])
        margin.append(np.stack([left[True], left[False]], axis=1))
    (ratio, where), shown = worst["ratio"], worst.where["shrinking"]
    all_names = [n for batch, _ in runs for n in batch.names]
    i = all_names.index(shown)
    t = int(np.concatenate(where_t)[i])
    Q_i = np.concatenate([run["Q"] for _, run in runs], axis=1)[:, i]
    slower, margin = np.concatenate(slower), np.concatenate(margin)
    with np.errstate(divide="ignore", invalid="ignore"):  # frozen weight slowest relative to the recomputed one
        k = int(np.argmax(np.where(slower, margin[:, 0] / margin[:, 1], -np.inf)))
    return Outcome(
        f"max ΔQ_t/ΔQ_{{t+1}} = {ratio:.4g} ({where}); phases of {PHASE_STEPS} steps: the frozen weight "
        f"leaves more movement in the second half (slower) in {int(slower.sum())}/{len(slower)} games",
        ratio, 1.0, HOLDS if ratio <= 1.0 and not slower.any() else FAILS, len(all_names),
        counterexample=f"{shown}: Q = {Q_i[t - 1]:.6f}, {Q_i[t]:.6f}, {Q_i[t + 1]:.6f} at iterations {t - 1}–{t + 1}"
                       f" (ratio {(Q_i[t] - Q_i[t - 1]) / (Q_i[t + 1] - Q_i[t]):.6f} > 1); {all_names[k]}: movement "
                       f"left {margin[k, 0]:.3g} with r frozen vs {margin[k, 1]:.3g} recomputed")


@check("iopo/thm-3", paper=IOPO, location="Theorem 3, eqs. 21–23", quick=False,
       statement="w.p. ≥ 1 − δ, each iteration, ∀(x, y_w, y_l) ∈ D: Q̂ ≤ Q + (1/r^t)σ(C_{r,δ1}/√|D|) + "
                 "(C_{T,δ2}/√|D|)·R/(1 − α), α = Π_t 1/r^t, |Q| ≤ R; the proof assumes r^t < 1")
def iopo_theorem_3(suite):
    """The constants C_{r,δ1}, C_{T,δ2} and the 'transition' T are not specified, so the inequality itself cannot
    be evaluated; what can be checked are its premises on the runs of iopo/thm-1. The proof assumes r^t(θ) < 1
    (that is what makes α = Π_t 1/r^t exceed every partial product): the error is the largest protagonist weight
    r^t(y_l) = min(π_t(y_l)/ν_t(y_l), 1 + ε) at a phase start over games, iterations and data pairs, tolerance 1.
    Reported too: the sign of 1 − α per pair after the run (α > 1 makes the 'upper bound' term R/(1 − α)
    negative, α = 1 — every pair at the first iteration, where π = ν and r ≡ 1 — makes it undefined) and the
    largest Q, a lower bound on R."""
    runs = iopo_runs(suite.n, suite.seed)
    worst = Worst("top", "Q", start=-np.inf)
    where_t, above, below, first = [], [], [], []
    for batch, run in runs:
        r = np.where(batch.support, run["r"], 0.0)  # [T, G, X, Y]: the weight of pairs whose loser is y
        worst.update("top", r.max(axis=(0, 2, 3)), namer(batch.games))
        for g in range(len(batch.games)):
            t, x, y = np.unravel_index(np.argmax(r[:, g]), r[:, g].shape)
            where_t.append((int(t) + 1, int(x), int(y)))  # iterations count from 1
        log_alpha = -np.where(batch.support, np.log(np.where(batch.support, run["r"], 1.0)), 0.0).sum(axis=0)
        above.append(((log_alpha > 0) & batch.support).sum())
        below.append(((log_alpha < 0) & batch.support).sum())
        first.append(np.abs(np.where(batch.support, run["r"][0] - 1.0, 0.0)).max())
        worst.update("Q", run["Q"].max(axis=0), namer(batch.games))
    (top, where), (q_max, q_where) = worst["top"], worst["Q"]
    all_names = [n for batch, _ in runs for n in batch.names]
    t, x, y = where_t[all_names.index(where)]
    ok = top <= 1.0
    return Outcome(
        f"max r^t = {top:.4g} ({where}); after {IOPO_ITERATIONS} iterations α > 1 (R/(1 − α) < 0) on "
        f"{int(sum(above))} data actions and α < 1 on {int(sum(below))}; r ≡ 1 at the first iteration "
        f"(max |r − 1| = {max(first):.1e}, so α's first factor is 1); max Q = {q_max:.4g} ({q_where})",
        top, 1.0, HOLDS if ok else FAILS, len(all_names),
        counterexample=f"{where}: r^t = {top:.4g} > 1 at iteration {t} (prompt {x}, rejected response {y}), against "
                       f"the proof's r^t < 1; the bound's constants are unspecified and its last term is negative "
                       f"(α > 1) or undefined (α = 1)")
