"""The one training step: update rules as optimiser wrappers, per-configuration rates, accumulation, clipping.

Each is checked against the update written out by hand on a toy objective whose gradient is known in closed form.
"""

import types

import pytest
import torch

from preference_games.training import ConfigSGD, Extragradient, Optimistic, TrainingStep, wrap

#: A bilinear saddle f(x, y) = x·y, written as one parameter θ = (x, y) descending the field g(θ) = (y, −x): the
#: textbook case where plain gradient steps spiral out and extragradient spirals in.
def field(theta: torch.Tensor) -> torch.Tensor:
    return torch.stack([theta[1], -theta[0]])


def closure_for(theta: torch.nn.Parameter):
    def closure():
        theta.grad = field(theta.detach()).clone()
        return torch.tensor(0.0)

    return closure


def test_extragradient_around_sgd_is_korpelevich():
    theta = torch.nn.Parameter(torch.tensor([1.0, 0.5], dtype=torch.float64))
    lr = 0.1
    start = theta.detach().clone()
    Extragradient(torch.optim.SGD([theta], lr=lr)).step(closure_for(theta))
    half = start - lr * field(start)
    torch.testing.assert_close(theta.detach(), start - lr * field(half), rtol=0, atol=1e-15)


def test_optimistic_around_sgd_steps_on_twice_the_gradient_minus_the_last():
    theta = torch.nn.Parameter(torch.tensor([1.0, 0.5], dtype=torch.float64))
    lr = 0.1
    rule = Optimistic(torch.optim.SGD([theta], lr=lr))
    expected, previous = theta.detach().clone(), None
    for _ in range(3):
        g = field(expected)
        expected = expected - lr * (2 * g - (g if previous is None else previous))
        previous = g
        rule.step(closure_for(theta))
    torch.testing.assert_close(theta.detach(), expected, rtol=0, atol=1e-15)


def test_extragradient_restores_a_stateful_optimisers_state_before_the_real_step():
    """Around Adam the trial step must not count: after one extragradient step Adam has taken exactly one step,
    from the start, with the gradient at the trial point."""
    theta = torch.nn.Parameter(torch.tensor([1.0, 0.5], dtype=torch.float64))
    twin = torch.nn.Parameter(theta.detach().clone())
    adam = torch.optim.Adam([theta], lr=0.1)
    Extragradient(adam).step(closure_for(theta))
    assert adam.state[theta]["step"] == 1
    trial = torch.optim.Adam([twin], lr=0.1)  # where the trial step goes: one Adam step from the start
    closure_for(twin)()
    trial.step()
    reference = torch.nn.Parameter(torch.tensor([1.0, 0.5], dtype=torch.float64))
    adam_ref = torch.optim.Adam([reference], lr=0.1)
    reference.grad = field(twin.detach()).clone()  # the gradient at the trial point, applied from the start
    adam_ref.step()
    torch.testing.assert_close(theta.detach(), reference.detach(), rtol=0, atol=1e-15)


def test_config_sgd_gives_each_configuration_its_own_rate():
    p = torch.nn.Parameter(torch.ones(3, 2, dtype=torch.float64))
    p.grad = torch.ones_like(p)
    ConfigSGD([p], [0.1, 0.2, 0.3]).step()
    torch.testing.assert_close(p.detach(), 1 - torch.tensor([[0.1], [0.2], [0.3]], dtype=torch.float64).expand(3, 2))
    with pytest.raises(ValueError, match="lr must be positive"):
        ConfigSGD([p], [0.1, -1.0])


def toy_step(accumulate=1, clip=None, update="gradient"):
    """A TrainingStep whose 'objective' is the [C]-vector w·batch, with batches 1, 2, 3, ... from a counter."""
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    counter = iter(range(1, 100))
    algorithm = types.SimpleNamespace(update=update, objective=lambda roles, batch: w * batch)
    step = TrainingStep(algorithm, None, lambda: [float(next(counter))], ConfigSGD([w], 1.0), accumulate=accumulate,
                        clip=clip)
    return step, w


def test_accumulation_averages_the_micro_batches():
    step, w = toy_step(accumulate=2)
    loss = step()  # batches 1 and 2: the gradient of (w·1 + w·2)/2 summed over C is 1.5 per coordinate
    torch.testing.assert_close(w.detach(), torch.full((2,), -1.5, dtype=torch.float64))
    torch.testing.assert_close(loss, torch.zeros(2, dtype=torch.float64))


def test_clipping_bounds_the_gradient_norm():
    step, w = toy_step(clip=1.0)
    step()
    step()  # batch 2: gradient (2, 2), norm 2.83, clipped to norm 1
    assert float(torch.linalg.vector_norm(w.grad)) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, message", [({"accumulate": 0}, "accumulate"), ({"clip": -1.0}, "clip"),
                                             ({"update": "momentum"}, "update must be")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        toy_step(**kwargs)


def test_wrap_names_the_rule():
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert wrap(sgd, "gradient") is sgd
    assert isinstance(wrap(sgd, "extragradient"), Extragradient) and isinstance(wrap(sgd, "optimistic"), Optimistic)
