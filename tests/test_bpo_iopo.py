"""BPO (behaviour-policy reference, EMA reference, weight-averaged ensemble) and IOPO (protagonist/adversary with
clipped importance weights): hand-worked gradients, schedules, ensemble bookkeeping, the MLP policy, parameter
validation, and the measured behaviour of both families on exact tabular games.

Hand-worked gradients are written in numpy from the chain rule on the logits of a lookup table (no torch), so they
share no code with the algorithms: for a soft-labelled pair loss ℓ of h = u(y) − u(y'), u = log π − log a, with
pair weights w(x, y, y') = d0(x) ν(y|x) ν(y'|x),

    ∂L/∂θ(x, z) = Σ_{y'} G(x, z, y') − Σ_y G(x, y, z),   G = w · [p ℓ'(h) − (1 − p) ℓ'(−h)],

because ∂h/∂θ(z) = δ(y, z) − δ(y', z) for softmax logits (the normalisers cancel in h).

Tolerances: one or a few exact float64 steps agree with the hand computation to 1e-12 (absolute, on log-probs);
"the same computation by two routes" (an algorithm against the one it reduces to) to 1e-12; the measured findings
are stated with the margins observed, rounded outward.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.special import expit, log_softmax

from preference_games.algorithms import make
from preference_games.algorithms.base import Schedule
from preference_games.algorithms.iopo import ADVERSARY, clipped_weight, q_value
from preference_games.dynamics import simulate
from preference_games.equilibria import nash_lp, regularized_nash
from preference_games.fixed_points import offline_ipo
from preference_games.games import PreferenceGame, bradley_terry, rps_variant
from preference_games.models import FrozenPolicy, MLPPolicy, TabularLogits
from preference_games.samplers import PairSampler, Roles, TabularOracle

TAU = 0.1


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """torch's log_sigmoid on tiny tensors pays ~10 ms of thread-pool overhead per call on a busy 2-core machine;
    one intra-op thread makes these tiny-tensor runs fast. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------- helpers
RPS = rps_variant(antisymmetrize=True)
BT = bradley_terry([0.0, 0.5, 1.0])


def two_prompt_game() -> PreferenceGame:
    """The RPS variant and a Bradley–Terry game as two prompts with d0 = (0.3, 0.7)."""
    return PreferenceGame.stack([RPS, BT], prompt_probs=[0.3, 0.7])


def random_log_probs(shape, seed, scale=1.0) -> np.ndarray:
    return log_softmax(np.random.default_rng(seed).normal(scale=scale, size=shape), axis=-1)


def table(policy) -> np.ndarray:
    return policy.log_prob_table().detach().numpy().copy()


def logit_gradient(game, log_pi, log_anchor, log_sampler, dloss, weight=None):
    """∂L/∂θ [X, Y] for one configuration, by the chain rule in the module docstring. ``dloss(h)`` = ℓ'(h) for
    the ordered pair; ``weight(y_loser)`` [X, Y] optionally multiplies ℓ(y, y') by weight[y'] (IOPO's r)."""
    u = log_pi - log_anchor  # [X, Y]
    h = u[:, :, None] - u[:, None, :]  # [X, y, y']
    nu = np.exp(log_sampler)
    w = game.prompt_probs[:, None, None] * nu[:, :, None] * nu[:, None, :]
    p = game.P
    r_loser = np.ones_like(h) if weight is None else np.broadcast_to(weight[:, None, :], h.shape)  # r(y')
    r_winner = np.ones_like(h) if weight is None else np.broadcast_to(weight[:, :, None], h.shape)  # r(y)
    G = w * (p * r_loser * dloss(h) - (1 - p) * r_winner * dloss(-h))
    return G.sum(2) - G.sum(1)


DLOSS = {  # ℓ'(h) of each pair loss with coefficient τ
    "ipo": lambda tau: (lambda h: 2 * (h - 0.5 / tau)),
    "dpo": lambda tau: (lambda h: -tau * expit(-tau * h)),
    "slic": lambda tau: (lambda h: -tau * (1 - tau * h > 0)),
}


def step(log_pi, gradient, lr):
    """One plain gradient step on the logits, as log-probabilities."""
    return log_softmax(log_pi - lr * gradient, axis=-1)


class Recorder(Schedule):
    """Wraps an algorithm's schedule: ``before(step, roles)`` runs before each step's schedule hook, ``after(step,
    roles)`` right after it (when the anchor of the step is in place)."""

    def __init__(self, inner, before=None, after=None):
        self.inner, self.before, self.after = inner, before, after
        self.period = inner.period

    def start(self, roles):
        self.inner.start(roles)
        self.roles = roles

    def before_step(self, step, roles):
        if self.before:
            self.before(step, roles)
        self.inner.before_step(step, roles)
        if self.after:
            self.after(step, roles)

    def after_step(self, step, roles):
        self.inner.after_step(step, roles)


def recorded(algorithm, before=None, after=None):
    """The algorithm with its schedule wrapped in a :class:`Recorder` (returned too, for its ``roles``)."""
    recorder = Recorder(algorithm.schedule, before, after)
    return replace(algorithm, schedule=recorder), recorder


# ======================================================================================================= BPO
@pytest.mark.parametrize("loss, scale", [("ipo", lambda t: 2 / t), ("dpo", lambda t: t), ("slic", lambda t: 2 * t)])
def test_on_policy_first_step_is_a_pure_push_with_the_hand_worked_multiple(loss, scale):
    """F = T: at the first step the reference is the current policy, so h ≡ 0 and the soft-label gradient is
    −k·E_{y,y'~π}[(2p − 1)·∇(log π(y) − log π(y'))] with k = ℓ'(0) up to sign: 1/τ (IPO), τ/2 (DPO), τ (SLiC). On the
    logits (the two orderings of a pair add up) that is −c·d0(x)·π(z|x)·(2 p(z ≻ π|x) − 1), c = 2k. Two prompts, two
    configurations with their own τ, a random start."""
    game = two_prompt_game()
    taus = np.array([0.1, 0.5])
    start = np.stack([random_log_probs((2, 3), seed) for seed in (1, 2)])  # [C, X, Y]
    lr = 0.3
    run = simulate(make("bpo", loss=loss, tau=taus, total_steps=4, annotations=4), game, steps=1, lr=lr,
                   policy=TabularLogits.from_log_probs(start))
    for c, tau in enumerate(taus):
        pi = np.exp(start[c])
        win = np.einsum("xij,xj->xi", game.P, pi)
        gradient = -scale(tau) * game.prompt_probs[:, None] * pi * (2 * win - 1)
        np.testing.assert_allclose(run.log_probs[1, c], step(start[c], gradient, lr), rtol=0, atol=1e-12)
        # the same from the generic chain rule with h ≡ 0
        generic = logit_gradient(game, start[c], start[c], start[c], DLOSS[loss](tau))
        np.testing.assert_allclose(generic, gradient, rtol=0, atol=1e-14)


def test_anchor_refreshes_every_interval_and_each_step_is_the_hand_worked_ipo_step():
    """T = 12, F = 4 ⇒ K = 3: the anchor is a new snapshot exactly at steps 0, 3, 6, 9 and equals the policy then;
    every step is a gradient step of IPO on pairs from the anchor with the anchor as reference (hand chain rule)."""
    game = two_prompt_game()
    start = random_log_probs((2, 3), seed=3)[None]
    anchors = []
    algorithm, _ = recorded(make("bpo", loss="ipo", tau=TAU, total_steps=12, annotations=4),
                            after=lambda step, roles: anchors.append(roles.anchor))
    lr = 0.05
    run = simulate(algorithm, game, steps=12, lr=lr, policy=TabularLogits.from_log_probs(start))
    refreshed = [t for t in range(12) if t == 0 or anchors[t] is not anchors[t - 1]]
    assert refreshed == [0, 3, 6, 9]
    for t in range(12):
        a = run.log_probs[3 * (t // 3), 0]
        np.testing.assert_array_equal(table(anchors[t])[0], a)
        expected = step(run.log_probs[t, 0], logit_gradient(game, run.log_probs[t, 0], a, a, DLOSS["ipo"](TAU)), lr)
        np.testing.assert_allclose(run.log_probs[t + 1, 0], expected, rtol=0, atol=1e-12)


def test_bpo_reduces_to_offline_dap_and_to_iterative_dpo():
    """F = 1 with the run started at π_ref is offline DAP with μ = π_ref (the paper's F = 1 case), and BPO(DPO) with
    interval K is iterative DPO with η = τ refreshing every K steps: the same trajectories."""
    offline = simulate(make("offline-ipo", tau=TAU), BT, steps=40, lr=0.1)
    bpo = simulate(make("bpo", loss="ipo", tau=TAU, total_steps=40, annotations=1), BT, steps=40, lr=0.1)
    np.testing.assert_allclose(bpo.log_probs, offline.log_probs, rtol=0, atol=1e-12)
    iterative = simulate(make("iterative-dpo", eta=TAU, inner_steps=5), RPS, steps=40, lr=2.0)
    bpo = simulate(make("bpo", loss="dpo", tau=TAU, total_steps=40, annotations=8), RPS, steps=40, lr=2.0)
    np.testing.assert_allclose(bpo.log_probs, iterative.log_probs, rtol=0, atol=1e-12)


def test_ema_reference_is_the_hand_computed_average():
    """bpo-ema: pairs from π_t, reference a_t with log a_t = log_softmax(ρ log π_t + (1 − ρ) log a_{t−1}), a_0 = π_0
    (BPO eq. 6 on the logits of a lookup table; per-prompt constants drop out). Each step is checked by hand."""
    game = two_prompt_game()
    rate, lr = 0.3, 0.05
    start = random_log_probs((2, 3), seed=4)[None]
    run = simulate(make("bpo-ema", loss="ipo", tau=TAU, ema_rate=rate), game, steps=10, lr=lr,
                   policy=TabularLogits.from_log_probs(start))
    anchor = run.log_probs[0, 0]
    for t in range(10):
        pi = run.log_probs[t, 0]
        if t > 0:
            anchor = log_softmax(rate * pi + (1 - rate) * anchor, axis=-1)
        expected = step(pi, logit_gradient(game, pi, anchor, pi, DLOSS["ipo"](TAU)), lr)
        np.testing.assert_allclose(run.log_probs[t + 1, 0], expected, rtol=0, atol=1e-12)


def test_ema_rate_endpoints():
    """ema_rate = 0 keeps the initial policy (π_ref) as reference: online IPO. ema_rate = 1 makes the reference the
    current policy: on-policy BPO (F = T)."""
    frozen = simulate(make("bpo-ema", ema_rate=0.0), RPS, steps=30, lr=0.1)
    np.testing.assert_array_equal(frozen.log_probs, simulate(make("online-ipo"), RPS, steps=30, lr=0.1).log_probs)
    follow = simulate(make("bpo-ema", ema_rate=1.0), RPS, steps=30, lr=0.1)
    on_policy = simulate(make("bpo", total_steps=30, annotations=30), RPS, steps=30, lr=0.1)
    np.testing.assert_array_equal(follow.log_probs, on_policy.log_probs)


# ---------------------------------------------------------------------------------------------------- ensemble
def ensemble_checker(members, initial):
    """A ``before`` hook recording, before each step's re-merge, the largest |θ_policy − mean_k θ_k|, the members'
    spread, and (at step 0) the distance of the policy from its parameters before the members were made."""
    seen = {"error": [], "spread": []}

    def look(step, roles):
        with torch.no_grad():
            error, spread = 0.0, 0.0
            group = [list(roles.aux[f"member{k}"].parameters()) for k in range(members)]
            for k, target in enumerate(roles.policy.parameters()):
                stacked = torch.stack([g[k] for g in group])
                error = max(error, (target - stacked.mean(0)).abs().max().item())
                spread = max(spread, (stacked - stacked[0]).abs().max().item())
            if step == 0:
                moved = [(p - q).abs().max().item() for p, q in zip(roles.policy.parameters(), initial)]
                seen["moved at start"] = max(moved)
        seen["error"].append(error)
        seen["spread"].append(spread)

    return look, seen


@pytest.mark.parametrize("policy_kind", ["tabular", "mlp"])
def test_ensemble_members_differ_and_the_policy_is_their_average_after_every_step(policy_kind):
    """Members are seeded perturbations of the policy, centred so that their mean is the initial policy; each is
    trained on its own DAP loss. After every step (the merge runs in the schedule's after_step hook) the policy's
    parameters equal the members' average, and the members have moved apart. Same code on a lookup table and an
    MLP."""
    members = 4
    if policy_kind == "tabular":
        policy = TabularLogits.from_log_probs(random_log_probs((1, 1, 3), 5))
    else:
        policy = MLPPolicy(features=np.eye(1), num_actions=3)
    initial = [p.detach().clone() for p in policy.parameters()]
    look, seen = ensemble_checker(members, initial)
    algorithm, recorder = recorded(
        make("bpo-ensemble", loss="dpo", tau=TAU, total_steps=20, annotations=10, members=members, init_scale=0.5),
        before=look)
    run = simulate(algorithm, RPS if policy_kind == "tabular" else BT, steps=20, lr=0.5, policy=policy)
    look(20, recorder.roles)  # the state after the last step
    assert seen["spread"][0] > 0.1  # the members start apart (N(0, 0.5²) perturbations)
    assert seen["moved at start"] < 1e-15  # centred: their average is the initial policy
    assert len(seen["error"]) == 21 and max(seen["error"]) < 1e-13
    assert np.all(np.isfinite(run.log_probs)) and np.all(np.isfinite(run.loss[1:]))
    assert np.abs(run.log_probs[-1] - run.log_probs[0]).max() > 1e-3  # and it moved


def test_tabular_ipo_ensemble_is_exactly_the_single_model_and_dpo_is_not():
    """Finding (hand-derived, then checked): on a lookup table IPO's gradient is affine in h and h is linear in the
    logits, so the members' mean gradient is the gradient at the mean — the merged BPO(IPO) ensemble follows the
    single-model trajectory whatever the perturbations. DPO's gradient is not affine in h, so its ensemble differs
    (slightly); with one member it is again the single model."""
    kw = dict(tau=TAU, total_steps=30, annotations=10)
    single = simulate(make("bpo", loss="ipo", **kw), RPS, steps=30, lr=0.05)
    ensemble = simulate(make("bpo-ensemble", loss="ipo", members=5, init_scale=2.0, **kw), RPS, steps=30, lr=0.05)
    np.testing.assert_allclose(ensemble.log_probs, single.log_probs, rtol=0, atol=1e-12)
    single = simulate(make("bpo", loss="dpo", **kw), RPS, steps=30, lr=5.0)
    ensemble = simulate(make("bpo-ensemble", loss="dpo", members=5, init_scale=2.0, **kw), RPS, steps=30, lr=5.0)
    assert np.abs(ensemble.log_probs - single.log_probs).max() > 1e-6
    one = simulate(make("bpo-ensemble", loss="dpo", members=1, init_scale=2.0, **kw), RPS, steps=30, lr=5.0)
    np.testing.assert_allclose(one.log_probs, single.log_probs, rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------------------------- MLP policy
def test_bpo_runs_on_an_mlp_policy_and_each_phase_decreases_its_loss():
    """The same recipes on a network policy: finite trajectories; within every annotation phase (K = 10 steps,
    fixed pairs distribution and reference) the BPO loss decreases at every step."""
    for name, kw in [("bpo", {}), ("bpo-ensemble", {"members": 3})]:
        run = simulate(make(name, total_steps=50, annotations=5, **kw), BT,
                       policy=MLPPolicy(features=np.eye(1), num_actions=3), steps=50, lr=0.01)
        assert np.all(np.isfinite(run.log_probs)) and np.all(np.isfinite(run.loss[1:]))
        phases = run.loss[1:, 0].reshape(5, 10)
        assert np.all(np.diff(phases, axis=1) < 0), name
    run = simulate(make("bpo-ema", ema_rate=0.1), BT, policy=MLPPolicy(features=np.eye(1), num_actions=3),
                   steps=50, lr=0.01)
    assert np.all(np.isfinite(run.log_probs)) and run.final[0, 0, 2] > 1 / 3


# -------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "name, params, message",
    [
        ("bpo", {"total_steps": 600, "annotations": 7}, "must divide total_steps"),
        ("bpo", {"total_steps": 10, "annotations": 20}, "must divide total_steps"),
        ("bpo", {"total_steps": 0}, "total_steps must be a positive integer"),
        ("bpo", {"annotations": -1}, "annotations must be a positive integer"),
        ("bpo", {"total_steps": 10.5}, "total_steps must be a positive integer"),
        ("bpo", {"loss": "kto"}, "unknown DAP loss 'kto'"),
        ("bpo", {"tau": 0.0}, "tau must be"),
        ("bpo-ema", {"ema_rate": 1.5}, "ema_rate must be"),
        ("bpo-ema", {"loss": "hinge"}, "unknown DAP loss"),
        ("bpo-ensemble", {"members": 0}, "members must be a positive integer"),
        ("bpo-ensemble", {"init_scale": -1.0}, "init_scale must be"),
        ("bpo-ensemble", {"total_steps": 9, "annotations": 2}, "must divide total_steps"),
        ("iopo", {"epsilon": -0.1}, "epsilon must be"),
        ("iopo", {"protagonist_steps": 0}, "protagonist_steps must be a positive integer"),
        ("iopo", {"adversary_steps": -2}, "adversary_steps must be a positive integer"),
        ("iopo", {"adversary_steps": 1.5}, "adversary_steps must be a positive integer"),
        ("iopo", {"tau": -1.0}, "tau must be"),
    ],
)
def test_bad_parameters_raise_clear_errors(name, params, message):
    """Each invalid parameter is refused at construction with a one-line ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        make(name, **params)


# ------------------------------------------------------------------------------------------ BPO: measured findings
def test_finding_on_policy_bpo_runs_to_the_condorcet_winner_on_bradley_terry():
    """BPO has no π_ref term. On-policy BPO(IPO) on BT r = (0, ½, 1) runs monotonically to the Condorcet winner —
    the unregularised equilibrium — past both the regularised equilibrium at τ (π(best) = 0.718) and the RLHF
    solution π_ref e^{r/τ} (π(best) = 0.9933). Offline (F = 1) it stops at IPO-MD eq. 7, BR_τ(π_ref)."""
    run = simulate(make("bpo", total_steps=1000, annotations=1000), BT, steps=1000, lr=0.2, record_every=10)
    best = run.probs[:, 0, 0, 2]
    assert np.all(np.diff(best) > 0)
    assert regularized_nash(BT, TAU).policy.probs[0, 2] < 0.72
    rlhf = np.exp(10.0) / (1 + np.exp(5.0) + np.exp(10.0))
    assert best[-1] > 0.997 > rlhf
    assert run.unregularized_gap[-1, 0] < 2e-3
    offline = simulate(make("bpo", total_steps=100, annotations=1), BT, steps=100, lr=0.3)
    np.testing.assert_allclose(offline.final[0], offline_ipo(BT, TAU, BT.ref).probs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("annotations", [600, 12])
def test_finding_on_policy_bpo_spirals_away_from_both_equilibria_on_rps(annotations):
    """On the RPS variant the unregularised equilibrium (0.318, 0.364, 0.318) is a rest point of on-policy BPO(IPO)
    (its h ≡ 0 gradient −(2/τ)π(z)(2p(z ≻ π) − 1) vanishes) but a repelling one: started at uniform (unregularised
    gap 0.033) the iterates spiral out to the boundary and cycle among near-pure strategies, far from the
    regularised equilibrium too. Annotating every 50 steps (F = T/50) does the same."""
    run = simulate(make("bpo", total_steps=600, annotations=annotations), RPS, steps=600, lr=0.2, record_every=10)
    assert run.unregularized_gap[0, 0] < 0.04
    assert run.unregularized_gap[-1, 0] > 0.5 and run.final.min() < 0.02
    regularised = regularized_nash(RPS, TAU).policy.probs[0]
    assert np.sum(regularised * np.log(regularised / run.final[0, 0])) > 1.0
    nash = nash_lp(RPS).policy
    np.testing.assert_allclose(nash.probs, [[7 / 22, 8 / 22, 7 / 22]], atol=1e-12)
    rest = simulate(make("bpo", total_steps=1, annotations=1), RPS, steps=1, lr=0.2,
                    policy=TabularLogits.from_log_probs(nash.log_probs[None]))
    assert np.abs(rest.final - nash.probs).max() < 1e-12


def test_finding_ema_reference_converges_to_the_unregularised_equilibrium_on_rps():
    """Unlike on-policy BPO, the EMA reference (rate 0.01, lr 0.2) gives last-iterate convergence on the RPS variant,
    the unregularised gap falling monotonically from 0.033 to < 1e-5 in 1000 steps — to
    the *unregularised* equilibrium (7, 8, 7)/22 (at a rest point the EMA equals the policy, so h ≡ 0 and
    p(z ≻ π) = ½ on the support), not to the regularised one. The paper reports the EMA does not stabilise
    single-LoRA training; in the exact tabular game it does."""
    run = simulate(make("bpo-ema", ema_rate=0.01), RPS, steps=1000, lr=0.2, record_every=50)
    np.testing.assert_allclose(run.final[0], [[7 / 22, 8 / 22, 7 / 22]], atol=1e-5)
    gap = run.unregularized_gap[:, 0]
    assert np.all(np.diff(gap) < 0) and gap[0] > 0.03 and gap[-1] < 1e-5


# ====================================================================================================== IOPO
def iopo_roles(game, policy_log_probs, adversary_log_probs, start_log_probs, iteration, data=None):
    policy = TabularLogits.from_log_probs(policy_log_probs[None])
    adversary = TabularLogits.from_log_probs(adversary_log_probs[None])
    oracle = TabularOracle(game)
    data = oracle.ref if data is None else FrozenPolicy(data)
    roles = Roles(policy=policy, ref=oracle.ref, data=data, anchor=FrozenPolicy(start_log_probs[None]),
                  aux={ADVERSARY: adversary}, iteration=iteration)
    return roles, oracle


def iopo_weight(start, opponent, epsilon):
    ratio = np.exp(start - opponent)
    return np.minimum(ratio, 1 + epsilon)


@pytest.mark.parametrize("phase", ["protagonist", "adversary"])
def test_iopo_gradients_are_the_hand_worked_clipped_weighted_dpo(phase):
    """Protagonist phase: ∇ of Σ w[p·r(y')·(−log σ(τh)) + (1 − p)·r(y)·(−log σ(−τh))], h against the frozen
    adversary, r(y_l) = min(π_start(y_l)/ν(y_l), 1 + ε) with π_start the phase-start snapshot. Adversary phase: the
    same with the roles exchanged and the labels reversed (p → 1 − p). Random states on a two-prompt game with a
    non-uniform data policy, chosen so that some weights are clipped at 1.3 and some are below 1; the inactive
    agent gets no gradient at all."""
    game = two_prompt_game()
    epsilon = 0.3
    pi, nu, start = (random_log_probs((2, 3), seed, scale=1.0) for seed in (6, 7, 8))
    mu = random_log_probs((2, 3), 9)
    iteration = 0 if phase == "protagonist" else 1
    roles, oracle = iopo_roles(game, pi, nu, start, iteration, data=mu)
    algorithm = make("iopo", tau=TAU, epsilon=epsilon)
    pairs = algorithm.samplers[0].exhaustive(roles, oracle)
    loss = algorithm.objective(roles, pairs)
    loss.sum().backward()
    agent, other = (pi, nu) if phase == "protagonist" else (nu, pi)
    trained, frozen = roles.policy, roles.aux[ADVERSARY]
    if phase == "adversary":
        trained, frozen = frozen, trained
    weight = iopo_weight(start, other, epsilon)
    assert weight.max() == pytest.approx(1.3) and weight.min() < 1.0  # both regimes of the clip are exercised
    labelled = game if phase == "protagonist" else PreferenceGame(np.swapaxes(game.P, 1, 2), game.ref,
                                                                  game.prompt_probs)
    expected = logit_gradient(labelled, agent, other, mu, DLOSS["dpo"](TAU), weight=weight)
    np.testing.assert_allclose(trained.logits.grad[0].numpy(), expected, rtol=0, atol=1e-14)
    assert frozen.logits.grad is None


def test_iopo_with_unit_weights_and_the_reference_as_adversary_is_dpo():
    """r ≡ 1 (phase-start snapshot = adversary) and adversary = π_ref: the protagonist's objective and gradient are
    offline DPO's (pairs from μ, reference π_ref), at an arbitrary policy. And the first step of a run (both agents
    start at π_ref, so r ≡ 1 exactly) is offline DPO's first step."""
    game = two_prompt_game()
    pi = random_log_probs((2, 3), 10)
    mu = random_log_probs((2, 3), 11)
    ref = game.ref.log_probs
    roles, oracle = iopo_roles(game, pi, ref, ref, 0, data=mu)
    iopo, dpo = make("iopo", tau=TAU), make("offline-dpo", tau=TAU)
    pairs = iopo.samplers[0].exhaustive(roles, oracle)
    iopo_loss = iopo.objective(roles, pairs)
    grad_iopo = torch.autograd.grad(iopo_loss.sum(), roles.policy.logits)[0]
    dpo_loss = dpo.objective(roles, pairs)
    grad_dpo = torch.autograd.grad(dpo_loss.sum(), roles.policy.logits)[0]
    np.testing.assert_allclose(iopo_loss.detach().numpy(), dpo_loss.detach().numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(grad_iopo.numpy(), grad_dpo.numpy(), rtol=0, atol=1e-15)
    first = simulate(iopo, game, steps=1, lr=3.0, data=np.exp(mu))
    reference = simulate(dpo, game, steps=1, lr=3.0, data=np.exp(mu))
    np.testing.assert_allclose(first.log_probs, reference.log_probs, rtol=0, atol=1e-14)


def test_iopo_phases_alternate_and_only_the_active_agent_moves():
    """N_μ = 3, N_ν = 2: steps 0–2 train only the protagonist, 3–4 only the adversary, and so on; the inactive agent
    is bitwise unchanged; ``roles.iteration`` counts phases (even = protagonist) and the phase-start snapshot is
    taken exactly at 0, 3, 5, 8, 10, 13."""
    seen, anchors = [], []

    def look(step, roles):
        seen.append((table(roles.policy), table(roles.aux[ADVERSARY])))

    algorithm, recorder = recorded(make("iopo", tau=TAU, protagonist_steps=3, adversary_steps=2), before=look,
                                   after=lambda step, roles: anchors.append((roles.iteration, roles.anchor)))
    simulate(algorithm, BT, steps=15, lr=5.0)
    look(15, recorder.roles)
    for t in range(15):
        protagonist = t % 5 < 3
        (p0, a0), (p1, a1) = seen[t], seen[t + 1]
        if protagonist:
            np.testing.assert_array_equal(a1, a0)
            assert np.abs(p1 - p0).max() > 1e-6
        else:
            np.testing.assert_array_equal(p1, p0)
            assert np.abs(a1 - a0).max() > 1e-6
        assert anchors[t][0] % 2 == (0 if protagonist else 1)
    starts = [t for t in range(15) if t == 0 or anchors[t][1] is not anchors[t - 1][1]]
    assert starts == [0, 3, 5, 8, 10, 13]
    assert [anchors[t][0] for t in starts] == [0, 1, 2, 3, 4, 5]


def test_clipped_weight_and_q_value_are_the_printed_formulas():
    """Eq. 12 as min(r, 1 + ε) with eq. 11's fallback r = 1 at 0 or ∞. Eq. 13's Q = σ(τh)/r is ½ when the agents
    agree and is not a probability: with r < 1 it exceeds 1. Worked example: π = (0.9, 0.1), ν = (0.1, 0.9), y_0
    always preferred, uniform data: (y_0, y_1) and (y_1, y_0) give σ(τ·2 log 9)/(1/9) ≈ 5.47 each, (y_0, y_0) gives
    ½/1.3 (r clipped) and (y_1, y_1) ½/(1/9) = 4.5; the mean is ≈ 3.96."""
    r = clipped_weight(torch.tensor([0.0, np.log(0.5), np.log(2.0), 1e4, -1e4], dtype=torch.float64), 0.3)
    np.testing.assert_allclose(r.numpy(), [1.0, 0.5, 1.3, 1.0, 1.0], rtol=1e-15, atol=0)
    game = PreferenceGame([[0.5, 1.0], [0.0, 0.5]])
    oracle = TabularOracle(game)
    pi, nu = FrozenPolicy(np.log([[0.9, 0.1]])), FrozenPolicy(np.log([[0.1, 0.9]]))
    pairs = PairSampler("data").exhaustive(Roles(policy=pi, ref=oracle.ref, data=oracle.ref), oracle)
    assert q_value(pi, pi, pairs, TAU, 0.3).item() == pytest.approx(0.5, abs=1e-15)
    one = expit(TAU * 2 * np.log(9.0)) * 9.0
    assert q_value(pi, nu, pairs, TAU, 0.3).item() == pytest.approx((2 * one + 0.5 / 1.3 + 4.5) / 4, rel=1e-12)


def iopo_run(game, steps, lr):
    """An exact IOPO run (N_μ = N_ν = 1, τ = 0.1, ε = 0.3, μ = π_ref uniform), with Q measured after every full
    iteration (both phases) and the adversary's final policy."""
    snapshots = []
    algorithm, recorder = recorded(make("iopo", tau=TAU, epsilon=0.3),
                                   before=lambda step, roles: snapshots.append((roles.policy.snapshot(),
                                                                         roles.aux[ADVERSARY].snapshot())))
    run = simulate(algorithm, game, steps=steps, lr=lr)
    snapshots.append((recorder.roles.policy.snapshot(), recorder.roles.aux[ADVERSARY].snapshot()))
    oracle = TabularOracle(game)
    pairs = PairSampler("data").exhaustive(Roles(policy=oracle.ref, ref=oracle.ref, data=oracle.ref), oracle)
    Q = np.array([q_value(p, a, pairs, TAU, 0.3).item() for p, a in snapshots[::2]])
    return run, Q, np.exp(table(snapshots[-1][1]))


def test_finding_iopo_on_bradley_terry_ends_on_a_mirror_pair_away_from_every_equilibrium():
    """Measured (BT r = (0, ½, 1), lr 10, 600 steps; the same limit at lr 0.5 after 20000 steps): the protagonist
    converges to ≈ (0.344, 0, 0.656) — a third of its mass on the *worst* response, none on the middle one — and
    the adversary to its mirror image (0.656, 0, 0.344). Neither is the Condorcet winner, the regularised
    equilibrium (0.069, 0.213, 0.718) or BR_τ(μ); the unregularised gap stays ≈ 0.16.

    Theorem 1 ("Q is monotonic and converges"): Q converges (to ≈ 0.667) but is not monotone — it rises from ½ and
    then decreases. Theorem 2 (successive increments satisfy ΔQ_t/ΔQ_{t+1} ≤ 1): violated — as Q converges its
    increments shrink, so the ratio exceeds 1."""
    run, Q, adversary = iopo_run(BT, 600, 10.0)
    protagonist = run.final[0, 0]
    np.testing.assert_allclose(protagonist, [0.344, 0.0, 0.656], atol=2e-3)
    np.testing.assert_allclose(adversary[0, 0], protagonist[::-1], atol=1e-3)
    assert 0.15 < run.unregularized_gap[-1, 0] < 0.17
    assert np.abs(protagonist - regularized_nash(BT, TAU).policy.probs[0]).max() > 0.25
    dQ = np.diff(Q)
    assert Q[0] == pytest.approx(0.5, abs=1e-15)
    assert (dQ > 0).any() and (dQ < 0).any()  # not monotone
    assert 0.66 < Q[-1] < 0.67 and np.abs(dQ[-10:]).max() < 1e-6  # converges
    same_sign = dQ[:-1] * dQ[1:] > 0
    assert np.any(same_sign & (np.abs(dQ[:-1]) > np.abs(dQ[1:])))  # ΔQ_t/ΔQ_{t+1} > 1


def test_finding_iopo_on_rps_collapses_to_a_pure_strategy():
    """Measured (RPS variant, lr 20, 400 steps; lr 0.5 for 20000 steps reaches π(scissors) = 0.955 the same way): both
    agents pile onto scissors — the action whose win rate against μ = uniform is exactly ½ — mirror images of each
    other (rock ↔ paper, which reverses every preference in this game). The unregularised gap grows from 0.033
    toward 0.7 (pure scissors' exploitability); Q peaks just above ½ within a few iterations and then decreases."""
    run, Q, adversary = iopo_run(RPS, 400, 20.0)
    protagonist = run.final[0, 0]
    assert protagonist[1] > 0.94
    np.testing.assert_allclose(adversary[0, 0], protagonist[::-1], atol=2e-3)
    assert run.unregularized_gap[0, 0] < 0.04 and run.unregularized_gap[-1, 0] > 0.6
    peak = int(np.argmax(Q))
    assert 0 < peak < 20 and Q[peak] < 0.51
    assert np.all(np.diff(Q[peak:]) < 0)


def test_iopo_runs_on_an_mlp_policy_and_each_phase_decreases_its_agents_loss():
    """The same recipe on a network policy (the adversary is a deep copy of it): finite, and within every phase
    (5 steps each) the active agent's loss decreases at every step."""
    run = simulate(make("iopo", protagonist_steps=5, adversary_steps=5), BT,
                   policy=MLPPolicy(features=np.eye(1), num_actions=3), steps=50, lr=1.0)
    assert np.all(np.isfinite(run.log_probs)) and np.all(np.isfinite(run.loss[1:]))
    phases = run.loss[1:, 0].reshape(10, 5)
    assert np.all(np.diff(phases, axis=1) < 0)
    assert np.all(run.loss[1:] >= 0)  # reading (B): both agents' losses are bounded below by 0
