"""The protocols are the whole contract: a policy that offers only ``Policy`` (no table) trains under every
algorithm through the shared training step, bit for bit as the table does; a float32 policy trains on float32
losses; the unnormalised geometric anchor gives the same h as the normalised mixture."""

import numpy as np
import pytest
import torch

from preference_games.algorithms import make, names
from preference_games.algorithms.base import UntilConverged
from preference_games.dynamics import simulate
from preference_games.games import random_intransitive
from preference_games.losses import log_ratio_difference
from preference_games.models import FrozenPolicy, TabularLogits, geometric_mixture
from preference_games.protocols import EnumerablePolicy, GeometricAnchor, Policy, is_enumerable
from preference_games.samplers import Roles, TabularOracle
from preference_games.training import ConfigSGD, TrainingStep, sampled_pairs

GAME = random_intransitive(3, seed=4, num_prompts=2)
STEPS, LR, BATCH, SEED = 6, 0.1, 16, 3


class OpaquePolicy(torch.nn.Module):
    """Only the :class:`Policy` protocol: a table inside, no ``log_prob_table`` outside (so nothing can read it)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner  # a TabularLogits (registered: its parameters train) or a FrozenPolicy

    configs = property(lambda self: self.inner.configs)
    dtype = property(lambda self: self.inner.dtype)
    device = property(lambda self: self.inner.device)

    def log_prob(self, x, y):
        return self.inner.log_prob(x, y)

    def sample(self, x, n, generator):
        return self.inner.sample(x, n, generator)

    def snapshot(self):
        return OpaquePolicy(self.inner.snapshot())

    def mixture_sampler(self, other, beta):
        return OpaquePolicy(geometric_mixture(self.inner, other.inner, beta))


def test_the_fixture_is_a_policy_and_not_enumerable():
    policy = OpaquePolicy(TabularLogits.uniform(1, 2, 3))
    assert isinstance(policy, Policy) and not isinstance(policy, EnumerablePolicy) and not is_enumerable(policy)
    assert isinstance(TabularLogits.uniform(1, 2, 3), EnumerablePolicy)


def run_opaque(algorithm, steps=STEPS):
    """The loop of a non-tabular backend: schedule hooks around the shared TrainingStep on sampled pairs."""
    oracle = TabularOracle(GAME)
    table = TabularLogits.from_log_probs(oracle.ref.log_prob_table().numpy())
    policy, ref = OpaquePolicy(table), OpaquePolicy(oracle.ref)
    roles = Roles(policy=policy, ref=ref, data=ref)
    roles.aux = algorithm.auxiliary(policy) if algorithm.auxiliary else {}
    algorithm.schedule.start(roles)
    params = [*policy.parameters(), *(p for m in roles.aux.values() for p in m.parameters())]
    generator = torch.Generator().manual_seed(SEED)
    step = TrainingStep(algorithm, roles, sampled_pairs(algorithm, roles, oracle, BATCH, generator, "bernoulli"),
                        ConfigSGD(params, LR))
    losses = []
    for t in range(steps):
        algorithm.schedule.before_step(t, roles)
        losses.append(step())
        algorithm.schedule.after_step(t, roles)
    return table.log_prob_table().detach(), torch.stack(losses)


@pytest.mark.parametrize("name", names())
def test_every_algorithm_trains_a_policy_without_a_table_exactly_as_the_table(name):
    """Same seed, same pairs, same update: the opaque policy ends where simulate's table ends, to the last bit —
    the algorithm never asked which kind of policy it trained."""
    algorithm = make(name)
    final, losses = run_opaque(algorithm)
    reference = simulate(make(name), GAME, mode="sampled", steps=STEPS, lr=LR, batch=BATCH, seed=SEED)
    assert torch.equal(final, torch.as_tensor(reference.log_probs[-1]))
    np.testing.assert_array_equal(losses.numpy(), reference.loss[1:])
    assert not torch.equal(final, torch.as_tensor(reference.log_probs[0]))  # it moved


@pytest.mark.parametrize("name", ["inpo", "nash-md", "sppo", "iterative-dpo"])
def test_until_converged_refreshes_on_a_policy_without_a_table(name):
    """inner_steps=None: the inner problem counts as solved when no parameter moves by more than the tolerance."""
    algorithm = make(name, inner_steps=None)
    assert isinstance(algorithm.schedule, UntilConverged)
    oracle = TabularOracle(GAME)
    policy = OpaquePolicy(TabularLogits.from_log_probs(oracle.ref.log_prob_table().numpy()))
    roles = Roles(policy=policy, ref=OpaquePolicy(oracle.ref))
    algorithm.schedule.start(roles)
    assert roles.iteration == 0
    algorithm.schedule.before_step(0, roles)
    algorithm.schedule.after_step(0, roles)  # nothing moved: solved, a new outer iteration
    assert roles.iteration == 1
    algorithm.schedule.before_step(1, roles)
    with torch.no_grad():
        policy.inner.logits.add_(1e-6)
    algorithm.schedule.after_step(1, roles)  # moved by 1e-6 > 1e-12: still solving
    assert roles.iteration == 1


@pytest.mark.parametrize("name", names())
def test_a_float32_policy_trains_on_float32_losses(name):
    policy = TabularLogits.uniform(1, 2, 3, dtype=torch.float32)
    run = simulate(make(name), GAME, mode="sampled", steps=3, lr=LR, batch=BATCH, seed=SEED, policy=policy)
    assert run.log_probs.dtype == np.float32 and run.loss.dtype == np.float32
    assert np.all(np.isfinite(run.loss[1:]))


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_the_unnormalised_anchor_gives_the_h_of_the_normalised_mixture(w):
    """log Z(x) cancels in h: GeometricAnchor's h equals the one from the normalised table, on every pair."""
    generator = torch.Generator().manual_seed(0)
    policy = FrozenPolicy(torch.log_softmax(torch.randn(2, 2, 4, generator=generator, dtype=torch.float64), -1))
    ref = FrozenPolicy(torch.log_softmax(torch.randn(1, 2, 4, generator=generator, dtype=torch.float64), -1))
    current = TabularLogits(torch.randn(2, 2, 4, generator=generator, dtype=torch.float64))
    x, y, y2 = (t.reshape(1, -1).expand(2, -1) for t in torch.meshgrid(
        torch.arange(2), torch.arange(4), torch.arange(4), indexing="ij"))
    for anchor in (GeometricAnchor(policy, ref, w), geometric_mixture(policy, ref, w)):
        h = log_ratio_difference(current.log_prob(x, y), current.log_prob(x, y2), anchor.log_prob(x, y),
                                 anchor.log_prob(x, y2))
        if isinstance(anchor, GeometricAnchor):
            unnormalised = h
    torch.testing.assert_close(unnormalised, h, rtol=0, atol=1e-12)
    # and its table differs from the normalised one by log Z(x) only: a constant per prompt
    offset = GeometricAnchor(policy, ref, w).log_prob_table() - geometric_mixture(policy, ref, w).log_prob_table()
    torch.testing.assert_close(offset, offset[..., :1].expand_as(offset), rtol=0, atol=1e-12)


def test_anchor_and_mixture_are_minus_infinity_outside_a_support_never_nan_or_finite():
    """Both live on the intersection of the supports (torch.nan_to_num alone would turn −inf into −1.8e308)."""
    policy = FrozenPolicy(torch.log(torch.tensor([[[0.5, 0.5, 0.0]]], dtype=torch.float64)))
    ref = FrozenPolicy(np.log([[[0.2, 0.3, 0.5]]]))
    for w in (0.0, 0.5, 1.0):
        for table in (GeometricAnchor(policy, ref, w).log_prob_table(), geometric_mixture(policy, ref, w).log_prob_table()):
            assert not torch.isnan(table).any() and table[0, 0, 2] == -torch.inf
