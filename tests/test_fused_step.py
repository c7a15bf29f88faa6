"""The fused exact step (tabular.ExactContrastiveGradient) against the generic path it replaces.

The generic path is autograd through every pair the exhaustive sampler enumerates (the population loss), then the
shared training step: what ``simulate`` runs when no closed form is given. The fused step computes the same loss
and the gradient of the logits in closed form. Both are checked for every registered algorithm whose objective is
contrastive (each pair loss where the algorithm takes one), batched over three configurations with their own
parameters, learning rates and games, and for each configuration run alone.

Tolerances: one gradient agrees to 1e-14 in absolute terms on entries of order 1 (a few ulps: the two paths add the
same terms in different orders); a 40-step trajectory's log-probabilities to 1e-12 and its losses to 1e-12 relative
(rounding accumulated over the steps, which the dynamics do not amplify at these rates).
"""

import numpy as np
import pytest
import torch

from preference_games import dynamics
from preference_games.algorithms import make, names, parameters
from preference_games.algorithms.dap import Contrastive
from preference_games.dynamics import simulate
from preference_games.games import PreferenceGame, random_intransitive, rps_variant
from preference_games.losses import PAIR_LOSSES, soft_label
from preference_games.models import MLPPolicy, TabularLogits
from preference_games.samplers import Roles, TabularOracle
from preference_games.tabular import SOFT_LABEL_SLOPES, ExactContrastiveGradient


def _variants(name):
    """Every registered way to build ``name``: one per pair loss where it takes a ``loss`` parameter."""
    if "loss" in parameters(name):
        return [(name, {"loss": loss}) for loss in PAIR_LOSSES]
    return [(name, {})]


#: Every contrastive algorithm, found by looking (a new one joins the table by itself).
CONTRASTIVE = [(n, p) for name in names() for n, p in _variants(name) if isinstance(make(n, **p).objective, Contrastive)]

STEPS = 40


def _games(kind):
    """Three games of one shape (one per configuration). "full": two prompts, four actions, different P, π_ref and
    d0 per game; "partial": the same with action 3 outside Supp(π_ref) on prompt 1; "one-prompt": the IPO-MD
    Appendix F game and two random ones (d0 ≡ 1)."""
    rng = np.random.default_rng(7)
    if kind == "one-prompt":
        return [rps_variant(antisymmetrize=True), random_intransitive(3, seed=1), random_intransitive(3, seed=2)]
    games = []
    for seed in range(3):
        ref = rng.dirichlet(np.ones(4), size=2)
        if kind == "partial":
            ref[1, 3] = 0.0
            ref[1] /= ref[1].sum()
        games.append(PreferenceGame(random_intransitive(4, seed=seed, num_prompts=2).P, ref, rng.dirichlet([2, 2])))
    return games


def _batched(name, params):
    """The algorithm with per-configuration values of every numeric parameter that takes them."""
    batched = dict(params)
    if "tau" in parameters(name):
        batched["tau"] = np.array([0.1, 0.3, 1.0])
    if "eta" in parameters(name):
        batched["eta"] = np.array([0.5, 1.0, 2.0])
    if "beta" in parameters(name):
        batched["beta"] = np.array([0.0, 0.4, 1.0])
    return make(name, **batched)


def _pick(algorithm, name, params, c):
    """Configuration c of a batched algorithm, built as a single-configuration algorithm."""
    single = dict(params)
    for key, value in algorithm.params.items():
        if key in ("tau", "eta", "beta") and np.ndim(value):
            single[key] = float(value[c])
    return make(name, **single)


def _run(algorithm, games, lr, generic, monkeypatch, **kwargs):
    with monkeypatch.context() as patch:
        if generic:  # no closed form: autograd through the exhaustive pairs
            patch.setattr(dynamics._Stepper, "_closed_form_gradient", lambda self: None)
        return simulate(algorithm, games, steps=STEPS, lr=lr, record_every=10, **kwargs)


def _data(algorithm, games):
    """A data policy μ other than π_ref for the algorithms that read one (same support as π_ref)."""
    if not algorithm.uses_data:
        return {}
    mu = np.where(games[0].ref.probs > 0, np.linspace(1.0, 2.0, games[0].num_actions), 0.0)
    return {"data": mu / mu.sum(-1, keepdims=True)}


def _assert_same_run(fused, generic):
    np.testing.assert_allclose(fused.log_probs, generic.log_probs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused.loss[1:], generic.loss[1:], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["full", "partial", "one-prompt"])
@pytest.mark.parametrize("name, params", CONTRASTIVE, ids=[f"{n}-{p.get('loss', '')}" for n, p in CONTRASTIVE])
def test_fused_trajectories_equal_the_generic_path_batched_and_per_configuration(name, params, kind, monkeypatch):
    games = _games(kind)
    algorithm, lr = _batched(name, params), np.array([0.05, 0.1, 0.2])
    data = _data(algorithm, games)
    fused = _run(algorithm, games, lr, False, monkeypatch, **data)
    _assert_same_run(fused, _run(algorithm, games, lr, True, monkeypatch, **data))
    for c in range(3):
        alone = _pick(algorithm, name, params, c)
        fused_alone = _run(alone, games[c], float(lr[c]), False, monkeypatch, **data)
        _assert_same_run(fused_alone, _run(alone, games[c], float(lr[c]), True, monkeypatch, **data))
        # the batch runs each configuration as if alone
        np.testing.assert_allclose(fused.log_probs[:, c], fused_alone.log_probs[:, 0], rtol=0, atol=1e-13)


def test_the_comparison_compares_two_paths(monkeypatch):
    """Guards the test above: simulate takes the closed form (no autograd pass over the pairs), and the patched
    run really takes the generic path (the objective is called on the pairs every step)."""
    calls, original = [], Contrastive.__call__
    monkeypatch.setattr(Contrastive, "__call__", lambda self, *args: calls.append(1) or original(self, *args))
    _run(make("ipo-md"), _games("one-prompt")[0], 0.1, False, monkeypatch)
    assert calls == []
    _run(make("ipo-md"), _games("one-prompt")[0], 0.1, True, monkeypatch)
    assert len(calls) == STEPS


@pytest.mark.parametrize("name, params", CONTRASTIVE, ids=[f"{n}-{p.get('loss', '')}" for n, p in CONTRASTIVE])
@pytest.mark.parametrize("kind", ["full", "partial"])
def test_one_fused_gradient_equals_autograd_through_the_pairs(name, params, kind):
    """At a random state with an anchor unlike the policy and a data policy unlike π_ref, three configurations
    with their own parameters and games: loss and ∂L/∂logits of the fused step against autograd."""
    games = _games(kind)
    algorithm = _batched(name, params)
    oracle = TabularOracle(games, configs=3)
    rng = np.random.default_rng(11)
    support = np.broadcast_to(games[0].support, (3,) + games[0].support.shape)

    def table(scale):
        return np.where(support, rng.normal(0.0, scale, support.shape), -np.inf)

    policy = TabularLogits.from_log_probs(table(1.0))
    roles = Roles(policy=policy, ref=oracle.ref, data=TabularLogits.from_log_probs(table(0.5)).snapshot(),
                  anchor=TabularLogits.from_log_probs(table(0.7)).snapshot(), aux={})
    pairs = [s.exhaustive(roles, oracle) for s in algorithm.samplers]
    loss = algorithm.objective(roles, *pairs)
    (autograd,) = torch.autograd.grad(loss.sum(), [policy.logits])
    exact = ExactContrastiveGradient(algorithm.objective, algorithm.samplers[0], oracle)
    closed_loss, closed = exact.logit_gradient(roles, policy)
    np.testing.assert_allclose(closed_loss.numpy(), loss.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(closed.numpy(), autograd.numpy(), rtol=0, atol=1e-14)
    # and the log π form, for policies that backpropagate it through their own parameters
    log_pi = policy.log_prob_table()
    table_loss, table_grad = exact.table_gradient(roles, log_pi.detach())
    (through_table,) = torch.autograd.grad(log_pi, [policy.logits], table_grad)
    np.testing.assert_allclose(table_loss.numpy(), loss.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(through_table.numpy(), autograd.numpy(), rtol=0, atol=1e-14)


def test_a_policy_that_is_not_a_table_backpropagates_the_closed_form(monkeypatch):
    """An MLP policy takes the log π form of the closed form and its own backward pass: same trajectory as autograd
    through the pairs."""
    game = _games("full")[0]

    def run(generic):
        policy = MLPPolicy(np.eye(2), 4, seed=3)
        with monkeypatch.context() as patch:
            if generic:
                patch.setattr(dynamics._Stepper, "_closed_form_gradient", lambda self: None)
            return simulate(make("ipo-md", beta=0.3), game, steps=STEPS, lr=0.5, policy=policy, record_every=10)

    _assert_same_run(run(False), run(True))


@pytest.mark.parametrize("loss", sorted(PAIR_LOSSES))
def test_each_soft_label_slope_is_the_derivative_of_the_soft_label_loss(loss):
    """s(h) = d/dh [p ℓ(h) + (1 − p) ℓ(−h)] by autograd, at random points and on SLiC's kinks τh = ±1 (where
    both sides take the derivative 0, torch's convention for relu)."""
    pair_loss = PAIR_LOSSES[loss]
    generator = torch.Generator().manual_seed(0)
    tau = torch.tensor([0.5, 2.0, 0.1], dtype=torch.float64)[:, None]
    p = torch.rand(3, 50, dtype=torch.float64, generator=generator)
    h = torch.randn(3, 50, dtype=torch.float64, generator=generator) * 5
    h[:, :2] = torch.cat([1 / tau, -1 / tau], 1)  # τh = ±1 exactly for τ = 0.5 and 2
    h.requires_grad_(True)
    (autograd,) = torch.autograd.grad(soft_label(pair_loss, h, p, tau=tau).sum(), [h])
    slope = SOFT_LABEL_SLOPES[pair_loss](p, tau)(h.detach())
    np.testing.assert_allclose(slope.numpy(), autograd.numpy(), rtol=1e-13, atol=1e-13)


def test_every_pair_loss_has_a_slope():
    assert set(SOFT_LABEL_SLOPES) == set(PAIR_LOSSES.values())


def test_a_pair_loss_without_a_closed_form_takes_the_autograd_path(monkeypatch):
    """A contrastive objective with a pair loss of its own (no slope in SOFT_LABEL_SLOPES) still runs: on the pairs."""
    from dataclasses import replace

    algorithm = replace(make("online-ipo"), objective=Contrastive(lambda h, tau: torch.log1p((h * tau) ** 2), 0.1))
    calls, original = [], Contrastive.__call__
    monkeypatch.setattr(Contrastive, "__call__", lambda self, *args: calls.append(1) or original(self, *args))
    run = simulate(algorithm, _games("one-prompt")[0], steps=5, lr=0.1)
    assert len(calls) == 5 and np.all(np.isfinite(run.log_probs))
