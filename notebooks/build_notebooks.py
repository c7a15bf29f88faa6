"""Build the notebooks in this folder from the cells below (run from anywhere: ``python notebooks/build_notebooks.py``).

The notebooks are generated, not hand-edited, so they are valid nbformat 4 and carry no outputs (execution counts
None, outputs empty): edit the cells here and re-run this script. ``tests/test_notebooks.py`` executes every notebook
and checks that the committed files have no outputs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


# ===================================================================================== (a) RPS dynamics
RPS = [
    md("""
# Rock-paper-scissors dynamics of every algorithm

Every registered algorithm (`preference_games.algorithms.names()`) runs on the IPO-MD Appendix F game,
`rps_variant(antisymmetrize=True)` (τ = 0.1, uniform π_ref), for a fixed, modest number of steps: exact mode
(gradient descent on the population loss) for the gradient algorithms, the paper's closed-form map for INPO, Nash-MD
and SPPO. The table compares where each run ends with the fixed point the algorithm states (its tabular facts,
`run.facts.fixed_point` and `fixed_point_kind`); a dash means the engine knows no closed form for it on this game
(DPO and RLHF have one only on Bradley–Terry games; SLiC, BPO, IOPO, iterative DPO have none). For SPPO the stated fixed point is that of the
*average* iterate, so its row compares the average. Learning rates follow `docs/algorithms.md` §9: the IPO family
at 0.1, the score-function algorithms (about 4/τ times smaller gradients) at 3.0.

Runs in about 20–30 s on one CPU core.
"""),
    code("""
%matplotlib inline
import time

import numpy as np

from preference_games import rps_variant
from preference_games.algorithms import make, names
from preference_games.dynamics import simulate
from preference_games.equilibria import nash_lp, regularized_nash
from preference_games.plotting import plot_convergence, plot_trajectories

game = rps_variant(antisymmetrize=True)
TAU = 0.1
print("P =\\n", game.P[0].round(3))
print("NE_0.1 =", regularized_nash(game, TAU).policy.probs[0].round(4), "  NE_0 =", nash_lp(game).policy.probs[0].round(4))
"""),
    md("""
How each algorithm is run. Every algorithm uses its registry defaults (τ = 0.1 wherever it has a τ).
"""),
    code("""
STEPS = 600
HOW = {  # name: simulate(...) keyword arguments
    **{name: {"lr": 0.1} for name in ("online-ipo", "extragradient-ipo", "optimistic-ipo", "ipo-md", "ipo-md-data",
                                      "offline-ipo")},
    "nash-md-pg": {"lr": 3.0}, "self-play": {"lr": 3.0},            # score-function gradients: 4/τ smaller
    "offline-dpo": {"lr": 10.0}, "online-dpo": {"lr": 10.0},        # DPO gradients scale like τ
    "offline-slic": {"lr": 1.0}, "online-slic": {"lr": 1.0},
    "rlhf": {"lr": 1.0}, "iterative-dpo": {"lr": 1.0},
    "inpo": {"mode": "closed-form"}, "nash-md": {"mode": "closed-form"}, "sppo": {"mode": "closed-form"},
    "bpo": {"lr": 0.2}, "bpo-ema": {"lr": 0.2}, "bpo-ensemble": {"lr": 0.2},
    "iopo": {"lr": 20.0},
}
missing = set(names()) ^ set(HOW)
assert not missing, f"a new algorithm needs a row in HOW: {missing}"
"""),
    code("""
runs, rows = {}, []
start = time.perf_counter()
for name in names():
    how = HOW[name]
    algorithm = make(name)
    run = simulate(algorithm, game, steps=STEPS, **how)
    runs[name] = run
    ends = run.average()[0, 0] if run.facts.average_iterate else run.final[0, 0]
    if run.fixed_point is None:
        target, kl = None, None
    else:
        target = np.exp(run.fixed_point[0, 0])
        kl = float(np.sum(ends * (np.log(ends) - np.log(target))))
    rows.append((name, how.get("mode", "exact"), how.get("lr"), ends, target, kl, run.duality_gap[-1, 0],
                 run.facts.fixed_point_kind))
print(f"{len(rows)} algorithms, {STEPS} steps each, in {time.perf_counter() - start:.1f} s")
"""),
    code("""
fmt = lambda p: "(" + ", ".join(f"{v:.4f}" for v in p) + ")"
header = f"{'algorithm':18} {'mode':11} {'lr':>5}  {'ends at':26} {'stated fixed point':26} {'KL(end‖fp)':>10} {'gap':>9}  fixed point kind"
print(header)
print("-" * len(header))
for name, mode, lr, ends, target, kl, gap, kind in rows:
    print(f"{name:18} {mode:11} {'' if lr is None else f'{lr:g}':>5}  {fmt(ends):26} "
          f"{'—' if target is None else fmt(target):26} {'—' if kl is None else f'{max(kl, 0.0):.1e}':>10} {gap:9.2e}  {kind}")
"""),
    md("""
`gap` is the duality gap at the algorithm's own τ (τ = 0 for BPO, IOPO, SPPO and iterative DPO, which have no π_ref
term). Every algorithm with a stated fixed point reaches it (KL at rounding level), except SPPO, whose average
iterate is still approaching the unregularised equilibrium after 600 maps (its last iterate cycles). The assertion
below makes the notebook fail if that stops being true.
"""),
    code("""
for name, mode, lr, ends, target, kl, gap, kind in rows:
    if kl is not None:
        assert kl < (1e-3 if name == "sppo" else 1e-10), (name, kl)
"""),
    md("""
## On the simplex

A few of them: online IPO and INPO converge to NE_τ (diamond), IPO-MD(½) and Nash-MD to their eq. 13 fixed points
(stars), on-policy BPO spirals out to a corner, and the EMA variant of BPO converges to NE_0 (cross).
"""),
    code("""
shown = ["online-ipo", "ipo-md", "inpo", "nash-md", "bpo", "bpo-ema"]
fig = plot_trajectories([runs[name] for name in shown], labels=shown)
fig
"""),
    code("""
fig = plot_convergence([runs[name] for name in ("online-ipo", "optimistic-ipo", "self-play", "inpo")])
fig
"""),
]

# ============================================================================= (b) checking a theorem
THEOREM = [
    md("""
# Checking a theorem yourself

Two results from the papers, checked step by step on exact games. Every claim is an `assert` that fails if the
claim fails on the game at hand.

1. **IPO-MD Propositions 4.1 / 4.2**: the expected gradient of online IPO is a positive multiple of the self-play
   (Nash-MD-PG at β = 0) direction, so both have the same stationary point, the regularised equilibrium NE_τ. The
   paper says only "proportional"; the multiple is 4/τ.
2. **INPO Theorem 4**: with η_t = τ(t + 2)/2, KL(π* ‖ π_T) ≤ 32 C² / (τ² (T + 1)), where C = max(Bτ, 1) and B bounds
   |log π_t / π_ref| (Assumption A) — here measured on the trajectory.

Runs in a few seconds.
"""),
    md("""
## 1. Online IPO's gradient is (4/τ) × the self-play direction

The exact expected gradient of an algorithm's population loss: enumerate every pair (y, y') with its probability
(`PairSampler.exhaustive`), evaluate the objective, and let autograd differentiate it with respect to the logits θ.
`preference_games.verify.exact.population_gradient` does exactly that (read its ten lines); the loss depends on θ
only through π = softmax θ, so it takes log π.
"""),
    code("""
%matplotlib inline
import numpy as np

from preference_games import random_intransitive, rps_variant
from preference_games.algorithms import make
from preference_games.dynamics import simulate
from preference_games.equilibria import regularized_nash
from preference_games.plotting import plot_convergence
from preference_games.verify.exact import population_gradient


def exact_gradient(algorithm, game, logits):
    \"\"\"∇_θ of the population loss at logits θ [1, X, Y] (exhaustive pairs, autograd), flattened.\"\"\"
    log_pi = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    return population_gradient(algorithm, [game], log_pi)[1].ravel()
"""),
    md("""
One game, one random policy, τ = 0.1: the two gradients, and their elementwise ratio.
"""),
    code("""
game = random_intransitive(4, seed=3)
tau = 0.1
theta = np.random.default_rng(0).normal(size=(1, 1, 4))
g_ipo = exact_gradient(make("online-ipo", tau=tau), game, theta)
g_sp = exact_gradient(make("self-play", tau=tau), game, theta)
print("online IPO:", g_ipo.round(5))
print("self-play: ", g_sp.round(5))
print("ratio:     ", (g_ipo / g_sp).round(10), "  4/τ =", 4 / tau)
assert np.allclose(g_ipo, (4 / tau) * g_sp, rtol=0, atol=1e-12 * np.abs(g_ipo).max())
"""),
    md("""
The self-play direction by hand. For free logits ∇_θ log π(y) = e_y − π, so the self-play gradient
−E_{y~π}[∇log π(y) (p(y ≻ π) − ½ − τ log π(y)/π_ref(y))] is −(π ⊙ f − π (π·f)) with
f = Pπ − ½ − τ log(π/π_ref). Check autograd against it:
"""),
    code("""
pi = np.exp(theta[0, 0] - np.logaddexp.reduce(theta[0, 0]))
ref = np.exp(game.ref.log_probs[0])
f = game.P[0] @ pi - 0.5 - tau * np.log(pi / ref)
by_hand = -(pi * f - pi * (pi @ f))
print(by_hand.round(5))
assert np.abs(g_sp - by_hand).max() < 1e-14
"""),
    md("""
The claim is about every policy, game and τ: repeat on random logits, several games and temperatures. The multiple
is always 4/τ, in particular positive, so the two dynamics point the same way.
"""),
    code("""
rng = np.random.default_rng(1)
checked = 0
for game_k in (rps_variant(antisymmetrize=True), random_intransitive(4, seed=3), random_intransitive(6, seed=5)):
    n = game_k.P.shape[-1]
    for tau_k in (1.0, 0.3, 0.1, 0.01):
        for _ in range(5):
            theta_k = rng.normal(scale=2.0, size=(1, 1, n))
            a = exact_gradient(make("online-ipo", tau=tau_k), game_k, theta_k)
            b = exact_gradient(make("self-play", tau=tau_k), game_k, theta_k)
            assert np.abs(a - (4 / tau_k) * b).max() <= 1e-10 * np.abs(a).max(), (tau_k, a, b)
            assert a @ b > 0  # a positive multiple: the same descent direction
            checked += 1
print(f"online IPO = (4/τ) × self-play at {checked} random (game, τ, policy) triples")
"""),
    md("""
Proposition 4.1's consequence: both gradients vanish exactly at the regularised equilibrium NE_τ (solved by the
engine to a duality gap ≤ 1e-12), and only there is the direction zero.
"""),
    code("""
eq = regularized_nash(game, tau)
theta_star = eq.policy.log_probs[None]
g_star_ipo = exact_gradient(make("online-ipo", tau=tau), game, theta_star)
g_star_sp = exact_gradient(make("self-play", tau=tau), game, theta_star)
print("at NE_τ:", np.abs(g_star_ipo).max(), np.abs(g_star_sp).max(), "  duality gap of NE_τ:", eq.duality_gap)
assert np.abs(g_star_ipo).max() < 1e-12 and np.abs(g_star_sp).max() < 1e-12
assert np.abs(g_ipo).max() > 1e-3  # and not at the random policy above
"""),
    md("""
## 2. INPO Theorem 4: KL(π* ‖ π_T) ≤ 32 C² / (τ² (T + 1))

Run INPO's closed-form map (INPO eq. 5) with `schedule="theorem-4"`: the update π_t → π_{t+1} uses
η_t = τ(t + 2)/2 with INPO's t = 1 for the first update (Algorithm 1 starts at π_1 = π_ref), i.e. η = 1.5τ, 2τ, ….
Recorded policy k of the trajectory is INPO's π_{k+1}.
"""),
    code("""
T_MAX = 2000
theorem_game = random_intransitive(4, seed=3)
results = {}
for tau_k in (1.0, 0.1):
    run = simulate(make("inpo", tau=tau_k, schedule="theorem-4"), theorem_game, mode="closed-form", steps=T_MAX)
    log_pi = run.log_probs[:, 0, 0]                              # [T_MAX + 1, Y]: π_1 = π_ref, π_2, ...
    T = np.arange(1, len(log_pi) + 1)                             # INPO's index of each recorded policy
    star = regularized_nash(theorem_game, tau_k).policy.log_probs[0]
    kl = np.sum(np.exp(star) * (star - log_pi), axis=1)           # KL(π* ‖ π_T)
    results[tau_k] = (run, T, log_pi, star, kl)
    print(f"τ = {tau_k}: KL(π*‖π_1) = {kl[0]:.3e}, KL(π*‖π_{T[-1]}) = {kl[-1]:.3e}")
"""),
    md("""
Step 1, Assumption A: B = max_t max_y |log π_t(y)/π_ref(y)| over the trajectory, and C = max(Bτ, 1).

Step 2, the one-step inequality of the proof (constant η, applied with η_t at each step):
KL(π*‖π_{t+1}) ≤ (1 − τ/η_t) KL(π*‖π_t) + 8C²/η_t².

Step 3, the base case the induction needs, KL(π*‖π_1) ≤ 32C²/(2τ²) (the proof obtains 8C²/τ² from a step at η_0 = τ;
with π_1 = π_ref it is an assumption, checked here), and then the theorem at every T.
"""),
    code("""
for tau_k, (run, T, log_pi, star, kl) in results.items():
    ref = theorem_game.ref.log_probs[0]
    B = np.abs(log_pi - ref).max()
    C = max(B * tau_k, 1.0)
    eta = tau_k * (T[:-1] + 2) / 2                                # η_t for the update π_t → π_{t+1}
    one_step = (1 - tau_k / eta) * kl[:-1] + 8 * C**2 / eta**2
    bound = 32 * C**2 / (tau_k**2 * (T + 1))
    print(f"τ = {tau_k}: B = {B:.3f}, C = {C:.3f}")
    print(f"   one-step inequality: max over t of KL(π*‖π_(t+1)) / RHS = {(kl[1:] / one_step).max():.3e}")
    print(f"   base case: KL(π*‖π_1) = {kl[0]:.3e} ≤ 8C²/τ² = {8 * C**2 / tau_k**2:.3e}")
    print(f"   theorem: max_T KL(π*‖π_T) / bound(T) = {(kl / bound).max():.3e}")
    assert np.all(kl[1:] <= one_step)
    assert kl[0] <= 8 * C**2 / tau_k**2
    assert np.all(kl <= bound)
"""),
    md("""
The bound holds with a wide margin. The last iterate does converge to π* (the theorem's qualitative content); its
rate here is faster than the 1/T of the bound:
"""),
    code("""
for tau_k, (run, T, log_pi, star, kl) in results.items():
    assert kl[-1] < kl[len(kl) // 4] < kl[0], tau_k
    assert kl[-1] < 1e-6, (tau_k, kl[-1])
tau_k = 1.0
run, T, log_pi, star, kl = results[tau_k]
B = np.abs(log_pi - theorem_game.ref.log_probs[0]).max()
C = max(B * tau_k, 1.0)
fig = plot_convergence(run, kl_bounds={"Thm. 4: 32C²/(τ²(T+1))": lambda t: 32 * C**2 / (tau_k**2 * (t + 2))})
fig
"""),
    md("""
(`plot_convergence` plots against the step count s = T − 1, hence T + 1 = s + 2 in the bound's callable.)

## 3. The same checks, on many games

`preference_games.verify` holds one check per numbered result of the papers; `preference-games verify` runs them
all on 200 random games. Here the two results above, on the named games and 20 random ones: the table gives what was
measured, the worst error over every game, the tolerance and the verdict (docs/theorems.md explains each check).
"""),
    code("""
from preference_games.verify import Suite, checks, run_checks
from preference_games.verify.table import format_table

print(format_table(run_checks(checks(["ipo-md/prop-4.2", "inpo/thm-4"]), Suite(games=20))))
"""),
]

# =============================================================================== (c) a new algorithm
TEMPLATE = [
    md("""
# Template: a new algorithm in five lines

An algorithm is a recipe (`preference_games.algorithms.Algorithm`), not a subclass: where the pairs come from
(`PairSampler`), what loss is minimised on them (`contrastive` turns a per-pair loss from `preference_games.losses`
into the soft-label population objective), and the τ at which to measure the duality gap. Edit the cell marked
**your algorithm**, then run all cells. See `docs/algorithms.md` §1 for every field.

Pair sources: `"policy"` SG[π], `"ref"` π_ref, `"mixture"` π^{1−β} π_ref^β (needs `beta=`), `"data"` μ,
`"data-mixture"`, `"anchor"`, `"anchor-mixture"`. Pair losses: `losses.ipo`, `losses.dpo`, `losses.slic`.
"""),
    code("""
%matplotlib inline
from preference_games import losses, rps_variant
from preference_games.algorithms import Algorithm, make
from preference_games.algorithms.dap import contrastive
from preference_games.dynamics import simulate
from preference_games.plotting import plot_convergence, plot_trajectories
from preference_games.samplers import PairSampler

game = rps_variant(antisymmetrize=True)   # any 3-action game plots on the simplex
"""),
    md("""
## Your algorithm

The example: IPO where the first response comes from the policy and the second from the mixture π^½ π_ref^½.
"""),
    code("""
TAU = 0.1
my_algorithm = Algorithm(name="ipo-vs-mixture", paper="ours", params={"tau": TAU},
                         samplers=(PairSampler("policy", "mixture", beta=0.5),),
                         objective=contrastive(losses.ipo, tau=TAU))
run = simulate(my_algorithm, game, steps=500, lr=0.1)          # exact mode: the population loss
"""),
    md("""
## Its dynamics

Where it ends, against a registered algorithm for comparison (online IPO converges to NE_τ).
"""),
    code("""
baseline = simulate(make("online-ipo", tau=TAU), game, steps=500, lr=0.1)
print(my_algorithm.describe(), "ends at", run.final[0, 0].round(4), f"duality gap {run.duality_gap[-1, 0]:.2e}")
print("online-ipo ends at", baseline.final[0, 0].round(4), f"duality gap {baseline.duality_gap[-1, 0]:.2e}")
fig = plot_trajectories([run, baseline], labels=[my_algorithm.name, "online-ipo"])
fig
"""),
    code("""
fig = plot_convergence([run, baseline], labels=[my_algorithm.name, "online-ipo"])
fig
"""),
    md("""
Next steps: `simulate(..., mode="sampled", batch=64, labels="bernoulli", seed=0)` runs it from sampled pairs (the
training step every backend shares); `preference_games.sequence_runs.train(my_algorithm, game)` trains a GRU on a
sequence game with it; a float array for `TAU` or for `beta` batches configurations; register its tabular facts,
`preference_games.tabular.register("ipo-vs-mixture", lambda a: TabularFacts(TAU, fixed_point=...))` with a
`fixed_point(game, c, data)` returning a `TabularPolicy`, and the trajectory reports `kl_to_fixed_point`.
"""),
]

NOTEBOOKS = {
    "rps_dynamics.ipynb": RPS,
    "checking_a_theorem.ipynb": THEOREM,
    "new_algorithm_template.ipynb": TEMPLATE,
}


def notebook(filename: str):
    """The notebook ``filename`` as built from the cells above: nbformat 4.4, no outputs, no cell ids (so rebuilding
    changes nothing unless the cells change)."""
    nb = new_notebook(cells=NOTEBOOKS[filename], metadata=KERNEL)
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat_minor = 4
    nbformat.validate(nb)
    return nb


def build() -> list[Path]:
    paths = []
    for filename in NOTEBOOKS:
        path = HERE / filename
        nbformat.write(notebook(filename), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for path in build():
        print(path)
