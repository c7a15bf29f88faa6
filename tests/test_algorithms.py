"""Every algorithm through the same tests: where it converges, what its expected loss and gradient are, and how it
rejects bad parameters.

The table below states, per algorithm, how it is run (learning rate, mode) and what it must reach. Convergence is
checked on four 3-action games at once (the IPO-MD Appendix F variant, two seeded random intransitive games and a
Bradley–Terry game) batched as four configurations — so the batched code path is the one under test — and only on
the Bradley–Terry game for the algorithms whose closed form needs one (DPO, RLHF). Tolerance: KL(π_final ‖ fixed point) ≤ 1e-12 for stationary runs
(the stationarity threshold is 1e-12 per step, so the distance left is of that order).
"""

import numpy as np
import pytest
import torch

from preference_games import fixed_points
from preference_games.algorithms import make, names, parameters
from preference_games.dynamics import simulate
from preference_games.equilibria import duality_gap, nash_lp, regularized_nash
from preference_games.games import PreferenceGame, bradley_terry, random_intransitive, rps_variant
from preference_games.models import MLPPolicy, TabularLogits
from preference_games.policies import TabularPolicy
from preference_games.samplers import Roles, TabularOracle
from preference_games.tabular import contrastive_table_gradient

INTRANSITIVE = [rps_variant(antisymmetrize=True), random_intransitive(3, seed=1), random_intransitive(3, seed=2)]
BRADLEY_TERRY = bradley_terry([0.0, 0.5, 1.5])
GAMES = INTRANSITIVE + [BRADLEY_TERRY]

# name, params, mode, lr, games — every algorithm whose fixed point the engine states in closed form
CONVERGES = [
    ("online-ipo", {}, "exact", 0.05, GAMES),
    ("extragradient-ipo", {}, "exact", 0.05, GAMES),
    ("optimistic-ipo", {}, "exact", 0.05, GAMES),
    ("ipo-md", {"beta": 0.5}, "exact", 0.05, GAMES),
    ("ipo-md-data", {"beta": 0.5}, "exact", 0.05, GAMES),
    ("offline-ipo", {}, "exact", 0.05, GAMES),
    ("nash-md-pg", {"beta": 0.5}, "exact", 3.0, GAMES),
    ("self-play", {}, "exact", 3.0, GAMES),
    ("inpo", {}, "closed-form", None, GAMES),
    ("inpo", {"inner_steps": None}, "exact", 1.0, GAMES),  # each inner argmin run to convergence
    ("nash-md", {}, "closed-form", None, GAMES),
    ("offline-dpo", {"tau": 0.5}, "exact", 1.0, [BRADLEY_TERRY]),
    ("online-dpo", {"tau": 0.5}, "exact", 1.0, [BRADLEY_TERRY]),
    ("rlhf", {"tau": 0.5}, "exact", 1.0, [BRADLEY_TERRY]),
]


@pytest.mark.parametrize("name, params, mode, lr, games", CONVERGES, ids=lambda v: v if isinstance(v, str) else "")
def test_algorithm_reaches_its_stated_fixed_point(name, params, mode, lr, games):
    run = simulate(make(name, **params), games, mode=mode, lr=lr, max_steps=20_000)
    assert run.stopped == "stationary", f"{name} did not become stationary"
    assert run.fixed_point is not None
    assert np.all(run.kl_to_fixed_point[-1] <= 1e-12), run.kl_to_fixed_point[-1]


def test_every_registered_algorithm_is_in_a_test_table():
    tested = {row[0] for row in CONVERGES} | set(NUMERICAL) | {"sppo", "iterative-dpo", "online-slic", "offline-slic"}
    assert set(names()) - {"bpo", "bpo-ema", "bpo-ensemble", "iopo"} <= tested  # BPO and IOPO: tests/test_bpo_iopo.py


# algorithms whose fixed point is numerical: the exact dynamics must become stationary at a point where the
# population loss has zero gradient
NUMERICAL = {"online-dpo": ({}, INTRANSITIVE[:1], 10.0)}


@pytest.mark.parametrize("name", sorted(NUMERICAL))
def test_numerical_fixed_points_are_stationary_points_of_the_population_loss(name):
    params, games, lr = NUMERICAL[name]
    run = simulate(make(name, **params), games, lr=lr, max_steps=20_000)
    assert run.stopped == "stationary" and run.fixed_point is None and run.kl_to_fixed_point is None
    policy = TabularLogits.from_log_probs(run.log_probs[-1])
    gradient = exact_gradient(make(name, **params), games[0], policy)
    assert np.abs(gradient).max() < 1e-9


def test_inpo_with_the_theorem_4_schedule_converges_in_the_last_iterate():
    """η_t = τ(t + 2)/2 shrinks the step like 1/t; the last iterate still approaches the equilibrium (KL ~ 1/T):
    measured, KL(π_T ‖ π*) falls below 1e-8 by T = 2,000 on all three games and decreases from T = 500 on."""
    run = simulate(make("inpo", schedule="theorem-4"), INTRANSITIVE, mode="closed-form", steps=2000, record_every=500)
    assert np.all(run.kl_to_fixed_point[-1] < 1e-8)
    assert np.all(np.diff(run.kl_to_fixed_point[1:], axis=0) < 0)


def test_nash_md_with_the_decreasing_step_is_munos_map_and_converges_in_the_last_iterate():
    """schedule="decreasing": η_t = τ(t + 2)/2 in the Nash-MD map, the same map as the verify check's independent
    numpy one (verify.mirror_descent, with munos_eta), on a one-prompt and a two-prompt game; the last iterate then
    approaches the regularised equilibrium (KL ~ 1/T; measured < 2e-6 by T = 2,000 and decreasing from T = 500),
    while the constant step stops at the eq. 13 point."""
    from preference_games.verify.exact import Batch
    from preference_games.verify.mirror_descent import munos_eta, nash_md_map

    two_prompts = random_intransitive(4, seed=5, num_prompts=2)
    for game in (INTRANSITIVE[1], two_prompts):
        run = simulate(make("nash-md", schedule="decreasing", tau=0.2), game, mode="closed-form", steps=40)
        batch, log_pi = Batch.of([game]), game.ref.log_probs[None]
        for t in range(40):
            log_pi = nash_md_map(batch, log_pi, 0.2, munos_eta(0.2, t))
            np.testing.assert_allclose(run.log_probs[t + 1], log_pi, rtol=0, atol=1e-12)
    run = simulate(make("nash-md", schedule="decreasing"), INTRANSITIVE, mode="closed-form", steps=2000,
                   record_every=500)
    assert np.all(run.kl_to_fixed_point[-1] < 2e-6) and np.all(np.diff(run.kl_to_fixed_point[1:], axis=0) < 0)
    np.testing.assert_allclose(np.exp(run.fixed_point), [regularized_nash(g, 0.1).policy.probs for g in INTRANSITIVE],
                               rtol=0, atol=1e-12)


def test_sppo_average_iterate_approaches_the_unregularised_equilibrium():
    """SPPO's last iterate cycles away; the uniform average of its closed-form iterates closes the unregularised
    gap (survey eq. 60; INPO Thm. 3 for τ = 0) — measured: gap of the average after 4,000 steps < 0.01 while the last
    iterate's gap stays large."""
    game = INTRANSITIVE[0]
    run = simulate(make("sppo", eta=5.0), game, mode="closed-form", steps=4000)
    average = run.average()[0]
    assert duality_gap(game, average, 0.0) < 0.01
    assert run.unregularized_gap[-1, 0] > 0.1
    assert run.fixed_point is not None
    np.testing.assert_allclose(np.exp(run.fixed_point[0]), nash_lp(game).policy.probs, atol=1e-12)


# ------------------------------------------------------------------------------ closed form against loss-based
@pytest.mark.parametrize("name, params", [("inpo", {}), ("inpo", {"schedule": "theorem-4"}), ("nash-md", {}),
                                          ("nash-md", {"schedule": "decreasing"})])
def test_loss_based_iterate_equals_the_closed_form_map(name, params):
    """Two outer iterations of the loss (each inner problem run 400 exact gradient steps) land on the closed-form
    OMD / Nash-MD iterate (INPO Lemma 5 / Prop. 6), with a constant step and with each algorithm's step schedule."""
    game = INTRANSITIVE[1]
    algorithm = make(name, inner_steps=400, **params)
    closed = simulate(algorithm, game, mode="closed-form", steps=2)
    loss_based = simulate(algorithm, game, mode="exact", steps=800, lr=1.0)
    np.testing.assert_allclose(loss_based.final, closed.final, rtol=0, atol=1e-9)


# -------------------------------------------------------------------------- exact expectation against samples
def roles_for(game, policy):
    oracle = TabularOracle(game)
    return Roles(policy=policy, ref=oracle.ref, data=oracle.ref, anchor=policy.snapshot(), aux={}), oracle


def exact_gradient(algorithm, game, policy) -> np.ndarray:
    roles, oracle = roles_for(game, policy)
    roles.aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
    pairs = [s.exhaustive(roles, oracle) for s in algorithm.samplers]
    (grad,) = torch.autograd.grad(algorithm.objective(roles, *pairs).sum(), [policy.logits])
    return grad.numpy()


@pytest.mark.parametrize("name", ["ipo-md", "nash-md-pg", "online-dpo", "inpo", "sppo"])
@pytest.mark.parametrize("labels", ["soft", "bernoulli"])
def test_exact_loss_and_gradient_are_the_mean_of_sampled_ones(name, labels):
    """Population loss (exhaustive pairs) = E[sampled loss]; autograd of it = E[sampled gradient]: checked
    against 400 batches of 64 pairs within 5 standard errors per coordinate."""
    game = INTRANSITIVE[0]
    algorithm = make(name)
    policy = TabularLogits(torch.tensor([[[0.3, -0.2, 0.5]]], dtype=torch.float64))
    roles, oracle = roles_for(game, policy)
    exact_pairs = [s.exhaustive(roles, oracle) for s in algorithm.samplers]
    exact_loss = algorithm.objective(roles, *exact_pairs)
    (exact_grad,) = torch.autograd.grad(exact_loss.sum(), [policy.logits])
    generator = torch.Generator().manual_seed(0)
    losses, grads = [], []
    for _ in range(400):
        pairs = [s.sample(roles, oracle, 64, generator, labels) for s in algorithm.samplers]
        loss = algorithm.objective(roles, *pairs)
        (grad,) = torch.autograd.grad(loss.sum(), [policy.logits])
        losses.append(loss.item())
        grads.append(grad.numpy().ravel())
    losses, grads = np.array(losses), np.array(grads)
    # A policy-gradient surrogate's value estimates nothing; SPPO's squared regression on a 0/1 label exceeds the
    # soft-label population loss by the label variance /η² (a constant in π), so only its gradient must agree.
    if name != "nash-md-pg" and not (name == "sppo" and labels == "bernoulli"):
        assert abs(losses.mean() - exact_loss.item()) <= 5 * losses.std() / np.sqrt(len(losses))
    error = np.abs(grads.mean(0) - exact_grad.numpy().ravel())
    assert np.all(error <= 5 * grads.std(0) / np.sqrt(len(grads)) + 1e-12)


def test_sampled_dynamics_with_any_optimiser_reach_the_fixed_point_statistically():
    """Online IPO from samples (256 soft-labelled pairs per step, Adam at lr 0.003) started far from equilibrium
    ends within sampling noise of it: measured total variation 0.002–0.010 after 1,500 steps (seeds 3, 4), KL down
    by > 1000×. Asserted: TV < 0.03 and a 1000-fold KL drop, for seed 3."""
    game = INTRANSITIVE[0]
    start = TabularLogits(torch.tensor([[[2.0, -1.0, 0.0]]], dtype=torch.float64))
    run = simulate(
        make("online-ipo"), game, mode="sampled", batch=256, labels="soft", steps=1500, seed=3, policy=start,
        optimizer=lambda params: torch.optim.Adam(params, lr=0.003),
    )  # fmt: skip
    assert 0.5 * np.abs(run.final - np.exp(run.fixed_point)).sum() < 0.03
    assert run.kl_to_fixed_point[-1, 0] < run.kl_to_fixed_point[0, 0] / 1000


@pytest.mark.parametrize(
    "name, params", [("online-ipo", {}), ("ipo-md", {"beta": 0.3}), ("offline-dpo", {}), ("online-slic", {}),
                     ("iterative-dpo", {}), ("bpo", {"loss": "dpo"})],
)  # fmt: skip
def test_closed_form_exact_gradient_equals_autograd_on_the_pairs(name, params):
    """The exact dynamics take ∂L/∂log π in closed form (tabular.contrastive_table_gradient); autograd through the
    exhaustive pairs is the independent computation. Loss and logit gradient agree to rounding."""
    game = INTRANSITIVE[1].with_ref([0.5, 0.3, 0.2])
    algorithm = make(name, **params)
    policy = TabularLogits(torch.tensor([[[0.3, -0.2, 0.5]]], dtype=torch.float64))
    roles, oracle = roles_for(game, policy)
    roles.anchor = TabularLogits(torch.tensor([[[-0.4, 0.1, 0.2]]], dtype=torch.float64)).snapshot()
    pairs = [s.exhaustive(roles, oracle) for s in algorithm.samplers]
    loss = algorithm.objective(roles, *pairs)
    (autograd,) = torch.autograd.grad(loss.sum(), [policy.logits])
    table = policy.log_prob_table()
    closed_loss, grad_table = contrastive_table_gradient(algorithm.objective, roles, algorithm.samplers[0], oracle,
                                                         table.detach())
    (closed,) = torch.autograd.grad(table, [policy.logits], grad_table)
    np.testing.assert_allclose(closed_loss.numpy(), loss.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(closed.numpy(), autograd.numpy(), rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------------------- batching
def test_batched_configurations_equal_separate_runs():
    betas = [0.0, 0.5, 1.0]
    game = INTRANSITIVE[0]
    batched = simulate(make("ipo-md", beta=np.array(betas)), game, steps=200, lr=0.05)
    for c, beta in enumerate(betas):
        alone = simulate(make("ipo-md", beta=beta), game, steps=200, lr=0.05)
        np.testing.assert_allclose(batched.log_probs[:, c], alone.log_probs[:, 0], rtol=0, atol=1e-13)



@pytest.mark.parametrize("name, mode", [("ipo-md", "exact"), ("online-dpo", "exact"), ("inpo", "closed-form"),
                                        ("inpo", "exact"), ("rlhf", "exact")])
def test_games_with_different_references_and_prompt_weights_batch_like_separate_runs(name, mode):
    """One batch over games that differ in P, π_ref and the prompt distribution equals one run per game."""
    rng = np.random.default_rng(3)
    games = [PreferenceGame(random_intransitive(3, seed=s, num_prompts=2).P, rng.dirichlet(np.ones(3), size=2),
                            rng.dirichlet(np.ones(2))) for s in range(3)]
    batched = simulate(make(name), games, mode=mode, steps=30, lr=0.1)
    for c, game in enumerate(games):
        alone = simulate(make(name), game, mode=mode, steps=30, lr=0.1)
        np.testing.assert_allclose(batched.log_probs[:, c], alone.log_probs[:, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(batched.duality_gap[:, c], alone.duality_gap[:, 0], rtol=0, atol=1e-12)

def test_trajectory_metrics_are_the_engines():
    game = INTRANSITIVE[0]
    run = simulate(make("ipo-md", beta=0.25, tau=0.1), game, steps=30, lr=0.05)
    fixed = fixed_points.ipo_md(game, 0.1, 0.25)
    for t in (0, 10, 30):
        pi = np.exp(run.log_probs[t, 0])
        assert run.duality_gap[t, 0] == pytest.approx(duality_gap(game, pi, 0.1), rel=1e-12)
        assert run.unregularized_gap[t, 0] == pytest.approx(duality_gap(game, pi, 0.0), rel=1e-12)
        assert run.kl_to_fixed_point[t, 0] == pytest.approx(float(game.policy(pi).kl(fixed)[0]), rel=1e-12)


# ---------------------------------------------------------------------------------------- update rules
def test_optimistic_and_extragradient_steps_match_their_definitions():
    """Optimistic: θ₁ = θ₀ − lr g(θ₀), θ₂ = θ₁ − lr (2 g(θ₁) − g(θ₀)). Extragradient: θ₁ = θ₀ − lr g(θ₀ − lr g(θ₀))."""
    game, lr = INTRANSITIVE[1], 0.3
    base = make("online-ipo")

    def grad(logits):
        return exact_gradient(base, game, TabularLogits(torch.tensor(logits)))

    theta0 = np.log(np.exp(np.zeros((1, 1, 3))) / 3)
    theta1 = theta0 - lr * grad(theta0)
    theta2 = theta1 - lr * (2 * grad(theta1) - grad(theta0))
    optimistic = simulate(make("optimistic-ipo"), game, steps=2, lr=lr)
    expected = theta2 - np.log(np.exp(theta2).sum(-1, keepdims=True))
    np.testing.assert_allclose(optimistic.log_probs[-1], expected, atol=1e-14)
    extra = theta0 - lr * grad(theta0 - lr * grad(theta0))
    extragradient = simulate(make("extragradient-ipo"), game, steps=1, lr=lr)
    np.testing.assert_allclose(extragradient.log_probs[-1], extra - np.log(np.exp(extra).sum(-1, keepdims=True)), atol=1e-14)


# ----------------------------------------------------------------------------------- not only lookup tables
@pytest.mark.parametrize("name", names())
def test_every_algorithm_runs_unchanged_on_a_neural_policy(name):
    """The same recipe drives an MLP (no algorithm branches on the policy type): a few exact steps stay finite."""
    policy = MLPPolicy(features=np.eye(1), num_actions=3, seed=0)
    run = simulate(make(name), INTRANSITIVE[0], policy=policy, steps=5, lr=0.05)
    assert np.all(np.isfinite(run.log_probs)) and np.all(np.isfinite(run.duality_gap))


def test_neural_policy_reaches_the_ipo_md_fixed_point():
    policy = MLPPolicy(features=np.eye(1), num_actions=3, seed=1)
    run = simulate(make("ipo-md", beta=0.5), INTRANSITIVE[0], policy=policy, lr=0.05, max_steps=20_000)
    assert run.stopped == "stationary"
    assert np.abs(run.final - np.exp(run.fixed_point)).max() <= 1e-6


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "name, params, message",
    [
        ("ipo-md", {"beta": 1.5}, "beta must be"),
        ("ipo-md", {"beta": -0.1}, "beta must be"),
        ("nash-md-pg", {"beta": 2.0}, "beta must be"),
        ("online-ipo", {"tau": -1.0}, "tau must be"),
        ("online-ipo", {"tau": 0.0}, "tau must be"),
        ("online-ipo", {"tau": True}, "tau has boolean entries"),  # a slip, not τ = 1
        ("bpo", {"tau": 5e-324}, "1/tau overflows"),  # its loss would be NaN, not an error
        ("ipo-md", {"beta": 0.5j}, "beta has complex entries"),
        ("ipo-md", {"beta": "0.5"}, "beta is not a rectangular numeric array"),
        ("inpo", {"tau": 0.5, "eta": 0.1}, "eta must be >= tau"),
        ("nash-md", {"tau": 0.5, "eta": 0.1}, "eta must be >= tau"),
        ("nash-md", {"schedule": "fast"}, "schedule must be one of"),
        ("inpo", {"schedule": "cosine"}, "schedule must be"),
        ("inpo", {"inner_steps": 0}, "refresh interval"),
        ("inpo", {"inner_steps": 2.5}, "refresh interval"),
        ("sppo", {"eta": 0.0}, "eta must be"),
        ("online-ipo", {"beta": 0.5}, "takes no parameter beta"),
        ("no-such-algorithm", {}, "unknown algorithm"),
    ],
)
def test_bad_parameters_are_rejected(name, params, message):
    with pytest.raises(ValueError, match=message):
        make(name, **params)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -0.1}, "lr must be positive"),
        ({"mode": "closed-form"}, "no closed-form map"),
        ({"mode": "guess"}, "mode must be one of"),
        ({"steps": -3}, "steps must be"),
        ({"mode": "sampled", "batch": 0}, "batch must be"),
        ({"mode": "sampled", "labels": "hard"}, "labels must be"),
        ({"policy": TabularLogits.from_log_probs([[[np.log(0.5), np.log(0.5), -np.inf]]])}, "positive probability on every"),
        ({"lr": np.array([0.1, 0.2]), "optimizer": lambda p: torch.optim.SGD(p, lr=0.1)}, "per-configuration lr"),
    ],
)
def test_bad_simulation_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate(make("online-ipo"), INTRANSITIVE[0], **{"steps": 2, **kwargs})


def test_anchored_algorithms_are_stationary_only_over_a_whole_outer_iteration():
    """Inside an INPO outer iteration the policy rests at the inner minimiser; stopping there would report a
    policy that is not INPO's fixed point. Run to stationarity, it must be the equilibrium."""
    run = simulate(make("inpo", inner_steps=50), INTRANSITIVE[0], lr=1.0, max_steps=20_000)
    assert run.stopped == "stationary" and run.kl_to_fixed_point[-1, 0] <= 1e-12


def test_offline_fixed_points_are_not_claimed_when_the_data_misses_actions():
    """μ = (½, ½, 0): the offline losses never see action 3, so eq. 7 / eq. 3 do not pin the policy down."""
    mu = [0.5, 0.5, 0.0]
    for name in ("offline-ipo", "offline-dpo", "ipo-md-data"):
        run = simulate(make(name), INTRANSITIVE[0], data=mu, steps=3, lr=0.05)
        assert run.fixed_point is None and run.kl_to_fixed_point is None


def test_the_number_of_configurations_comes_from_the_policy_too():
    start = TabularLogits.uniform(configs=4, prompts=1, actions=3)
    assert simulate(make("online-ipo"), INTRANSITIVE[0], policy=start, steps=2).log_probs.shape == (3, 4, 1, 3)
    with pytest.raises(ValueError, match="the policy holds 1 configuration"):
        simulate(make("ipo-md", beta=np.array([0.0, 0.5])), INTRANSITIVE[0], steps=1,
                 policy=MLPPolicy(features=np.eye(1), num_actions=3))


def test_theorem_4_schedule_ignores_eta():
    assert make("inpo", tau=1.0, schedule="theorem-4").params["schedule"] == "theorem-4"


def test_parameters_lists_defaults():
    assert parameters("ipo-md") == {"beta": 0.5, "tau": 0.1}


def test_kl_from_the_fixed_point_is_the_reverse_direction():
    run = simulate(make("ipo-md", beta=0.5), INTRANSITIVE[0], steps=5, lr=0.05)
    star = TabularPolicy(run.fixed_point[0])
    for t in (0, 5):
        pi = TabularPolicy(run.log_probs[t, 0])
        assert run.kl_from_fixed_point[t, 0] == pytest.approx(float(star.kl(pi)[0]), rel=1e-12)
        assert run.kl_to_fixed_point[t, 0] == pytest.approx(float(pi.kl(star)[0]), rel=1e-12)


def test_zero_steps_record_no_loss_but_a_row_for_it():
    run = simulate(make("online-ipo"), INTRANSITIVE[0], steps=0)
    assert run.loss.shape == (1, 1) and np.isnan(run.loss[0, 0]) and run.log_probs.shape == (1, 1, 1, 3)


def test_descriptions_show_every_parameter():
    assert make("inpo", inner_steps=None).describe() == "inpo(tau=0.1, eta=0.5, inner_steps=None, schedule=constant)"
