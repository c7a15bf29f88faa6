"""INPO's bounds evaluated on exact trajectories: they hold (with the paper's constants) and the quantities they bound
are the engine's."""

import numpy as np
import pytest

from preference_games import bounds, plotting
from preference_games.algorithms import make
from preference_games.dynamics import simulate
from preference_games.equilibria import duality_gap
from preference_games.games import bradley_terry, random_intransitive, rps_variant

GAMES = [rps_variant(antisymmetrize=True), random_intransitive(5, seed=1), bradley_terry([0.0, 0.5, 1.5])]


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
def test_theorem_4_bound_holds_along_the_time_varying_schedule(game):
    run = simulate(make("inpo", schedule="theorem-4"), game, mode="closed-form", steps=300)
    assert np.all(run.kl_from_fixed_point[:, 0] <= bounds.inpo_theorem4_bound(run))  # KL(π* ‖ π_t), as stated


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
def test_theorem_3_bound_holds_for_the_average_iterate(game):
    run = simulate(make("inpo", eta=1.0), game, mode="closed-form", steps=300)
    assert np.all(bounds.average_iterate_gap(run) <= bounds.inpo_theorem3_bound(run))


def test_average_iterate_gap_is_the_gap_of_the_averaged_policy():
    game = GAMES[0]
    run = simulate(make("sppo"), game, mode="closed-form", steps=40)
    for t in (0, 7, 40):
        average = np.exp(run.log_probs[: t + 1, 0]).mean(axis=0)
        assert bounds.average_iterate_gap(run)[t] == pytest.approx(duality_gap(game, average, 0.0), rel=1e-12)


def test_assumption_a_constant_is_the_largest_log_ratio():
    run = simulate(make("online-ipo"), GAMES[0], steps=20, lr=0.05)
    ratio = run.log_probs[:, 0] - GAMES[0].ref.log_probs
    assert bounds.assumption_a_constant(run) == np.abs(ratio).max()


def test_convergence_plot_draws_the_average_iterate_it_is_given():
    run = simulate(make("sppo"), GAMES[0], mode="closed-form", steps=30)
    fig = plotting.plot_convergence(run, average=True, gap_bounds={"Thm 3": bounds.inpo_theorem3_bound(run, eta=5.0)[1:]})
    (line,) = [line for line in fig.axes[0].get_lines() if line.get_gid() == "average-gap"]
    np.testing.assert_array_equal(line.get_ydata(), bounds.average_iterate_gap(run)[1:])


def test_theorem_3_needs_a_constant_eta():
    run = simulate(make("inpo", schedule="theorem-4"), GAMES[0], mode="closed-form", steps=3)
    with pytest.raises(ValueError, match="constant eta"):
        bounds.inpo_theorem3_bound(run)
