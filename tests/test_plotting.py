"""The plotting layer: the projection, that plots show exactly the recorded dynamics, Figure 9's limits, the
vector field's arrows and streamlines, the contours' values, files on disk and the errors for games a simplex cannot
show."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.axes import Axes

from preference_games import fixed_points
from preference_games import plotting as pl
from preference_games.algorithms import make
from preference_games.dynamics import simulate
from preference_games.equilibria import duality_gap, regularized_nash
from preference_games.games import (
    PreferenceGame,
    random_intransitive,
    rock_paper_scissors,
    rps_variant,
)
from preference_games.models import TabularLogits

GAME = rps_variant(antisymmetrize=True)
STARTS = np.log(np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]))[:, None]  # [C=3, X=1, Y=3]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _three_starts(game=GAME, steps=60, starts=STARTS):
    policy = TabularLogits.from_log_probs(starts)
    return simulate(make("online-ipo", tau=0.1), game, steps=steps, lr=0.05, policy=policy, configs=len(starts))


def _lines(fig, gid):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == gid]


# ================================================================================================ projection
def test_projection_sends_vertices_to_corners_and_uniform_to_centroid():
    np.testing.assert_array_equal(pl.project(np.eye(3)), pl.CORNERS)
    np.testing.assert_allclose(pl.project(np.full(3, 1 / 3)), pl.CORNERS.mean(axis=0), atol=1e-15)
    np.testing.assert_allclose(pl.project(np.full(3, 1 / 3)), [0.5, np.sqrt(3) / 6], atol=1e-15)


simplex_points = st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3).filter(lambda w: sum(w) > 1e-3).map(
    lambda w: np.array(w) / sum(w)
)


@given(simplex_points, simplex_points, st.floats(0.0, 1.0))
def test_projection_of_a_mixture_is_the_mixture_of_projections(p, q, lam):
    mixed = pl.project(lam * p + (1 - lam) * q)
    np.testing.assert_allclose(mixed, lam * pl.project(p) + (1 - lam) * pl.project(q), atol=1e-12)


def test_lattice_is_interior_and_on_the_simplex():
    points = pl.simplex_lattice(6)
    assert len(points) == 10 and np.all(points > 0)
    np.testing.assert_allclose(points.sum(axis=1), 1.0, atol=1e-15)


# ================================================================================= plots show the dynamics
def test_plotted_trajectories_are_the_recorded_log_probs():
    run = _three_starts()
    fig = pl.plot_trajectories(run)
    lines = _lines(fig, "trajectory")
    assert len(lines) == 3
    for c, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_xydata(), pl.project(np.exp(run.log_probs[:, c, 0])))
    stars = _lines(fig, "fixed-point")
    np.testing.assert_allclose(stars[0].get_xydata()[0], pl.project(np.exp(run.fixed_point[0, 0])), atol=1e-12)
    assert len(_lines(fig, "regularized-nash")) == 1 and len(_lines(fig, "nash")) == 1


def test_a_contextual_game_plots_the_chosen_prompt():
    game = PreferenceGame.stack([rock_paper_scissors(), GAME])
    starts = np.concatenate([STARTS, STARTS], axis=1)  # [3, 2, 3]
    run = _three_starts(game, steps=20, starts=starts)
    fig = pl.plot_trajectories(run, prompt=1, equilibria=False)
    np.testing.assert_array_equal(_lines(fig, "trajectory")[2].get_xydata(), pl.project(np.exp(run.log_probs[:, 2, 1])))
    with pytest.raises(ValueError, match=r"prompt must be an index in \[0, 1\]"):
        pl.plot_trajectories(run, prompt=2)
    with pytest.raises(ValueError, match="prompt"):
        pl.vector_field(make("online-ipo", tau=0.1), game, prompt=-1, resolution=4)


def test_figure9_limits_are_the_eq13_fixed_points():
    run = pl.figure9_run(steps=400)  # lr 0.05: within 1e-8 after 300 steps, 1e-13 after 500 (measured)
    for c, beta in enumerate(pl.FIGURE9_BETAS):
        expected = fixed_points.ipo_md(GAME, pl.FIGURE9_TAU, beta).probs
        np.testing.assert_allclose(run.final[c], expected, atol=1e-6, rtol=0)
    fig = pl.plot_figure9(run)
    stars = _lines(fig, "fixed-point")
    assert len(stars) == len(pl.FIGURE9_BETAS)
    for c, star in enumerate(stars):
        expected = fixed_points.ipo_md(GAME, pl.FIGURE9_TAU, pl.FIGURE9_BETAS[c]).probs[0]
        np.testing.assert_allclose(star.get_xydata()[0], pl.project(expected), atol=1e-12)
    assert [line.get_label() for line in _lines(fig, "trajectory")] == ["β = 0", "β = 0.25", "β = 0.5", "β = 0.75", "β = 1"]
    caption = [t.get_text() for t in fig.texts if t.get_gid() == "caption"][0]
    assert "(P − Pᵀ + 1)/2" in caption and "τ = 0.1" in caption


@pytest.mark.parametrize("algorithm", [make("online-ipo", tau=0.1), make("ipo-md", beta=0.5, tau=0.1)])
def test_vector_field_arrows_are_one_exact_step(algorithm):
    field = pl.vector_field(algorithm, GAME, resolution=6, lr=0.05)
    assert field.run.log_probs.shape == (2, len(field.start), 1, 3)  # one batched call, one step
    for n in (0, 4, len(field.start) - 1):
        single = simulate(algorithm, GAME, steps=1, lr=0.05,
                          policy=TabularLogits.from_log_probs(np.log(field.start[n])[None, None]))
        step = single.final[0, 0] - field.start[n]
        np.testing.assert_allclose(field.end[n] - field.start[n], step, atol=1e-12, rtol=0)
        np.testing.assert_allclose(field.uv[n], pl.project(step), atol=1e-12, rtol=0)
    fig = pl.plot_vector_field(field)
    quiver = [c for c in fig.axes[0].collections if c.get_gid() == "vector-field"][0]
    np.testing.assert_array_equal(np.column_stack([quiver.U, quiver.V]), field.uv)
    np.testing.assert_array_equal(quiver.get_offsets(), field.xy)


def _spy(monkeypatch, method):
    """Record the arguments of every call of ``Axes.<method>`` (which still draws)."""
    calls = []
    original = getattr(Axes, method)

    def spy(self, *args, **kwargs):
        calls.append((args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, method, spy)
    return calls


def test_streamlines_interpolate_the_exact_field_exactly_at_the_grid_points(monkeypatch):
    field = pl.vector_field(make("ipo-md", beta=0.5, tau=0.1), GAME, resolution=6, lr=0.05)
    scale = np.abs(field.uv).max()
    np.testing.assert_allclose(pl.interpolate_field(field, field.xy), field.uv, rtol=1e-9, atol=1e-12 * scale)
    # linear between the data: halfway along a lattice edge ((i, j, k) to (i - 1, j + 1, k)) is the mean
    step = np.abs(field.start[:, None] - field.start[None] - [-1 / 6, 1 / 6, 0]).max(axis=-1)
    a, b = np.argwhere(step < 1e-9)[0]
    np.testing.assert_allclose(pl.interpolate_field(field, (field.xy[a] + field.xy[b]) / 2),
                               (field.uv[a] + field.uv[b]) / 2, rtol=1e-9, atol=1e-12 * scale)
    assert np.all(np.isnan(pl.interpolate_field(field, [[0.02, 0.01], [0.5, 0.85]])))  # no data near the corners
    grid = pl.stream_grid(field, refine=2)
    assert np.ptp(np.diff(grid.x)) < 1e-12 and np.ptp(np.diff(grid.y)) < 1e-12  # regular, as streamplot needs
    i = np.rint(field.xy[:, 0] / (grid.x[1] - grid.x[0])).astype(int)
    j = np.rint(field.xy[:, 1] / (grid.y[1] - grid.y[0])).astype(int)
    np.testing.assert_allclose(grid.x[i], field.xy[:, 0], atol=1e-12)  # every lattice point is a node ...
    np.testing.assert_allclose(grid.y[j], field.xy[:, 1], atol=1e-12)
    assert not np.any(grid.u.mask[j, i])  # ... where the gridded field is the exact one
    np.testing.assert_allclose(np.column_stack([grid.u[j, i], grid.v[j, i]]), field.uv, rtol=1e-9,
                               atol=1e-12 * scale)
    gx, gy = np.meshgrid(grid.x, grid.y)
    outside = (gy > np.sqrt(3) * gx + 1e-9) | (gy > np.sqrt(3) * (1 - gx) + 1e-9)
    assert np.all(grid.u.mask[outside]) and np.all(grid.v.mask[outside])
    calls = _spy(monkeypatch, "streamplot")
    fig = pl.plot_vector_field(field, streamlines=True, refine=2)
    (args, _), = calls
    for drawn, expected in zip(args, (grid.x, grid.y, grid.u, grid.v)):
        np.testing.assert_array_equal(np.ma.getdata(drawn), np.ma.getdata(expected))
        np.testing.assert_array_equal(np.ma.getmaskarray(drawn), np.ma.getmaskarray(expected))
    gids = [c.get_gid() for c in fig.axes[0].collections]
    assert "streamlines" in gids and "vector-field" not in gids


def test_contour_values_are_the_engines_duality_gap_and_kl():
    points, gaps = pl.contour_values(GAME, 0.1, resolution=8)
    np.testing.assert_allclose(gaps, [duality_gap(GAME, p, 0.1) for p in points], rtol=1e-10, atol=1e-14)
    _, gaps0 = pl.contour_values(GAME, 0.0, resolution=8)
    np.testing.assert_allclose(gaps0, [duality_gap(GAME, p, 0.0) for p in points], rtol=1e-10, atol=1e-14)
    star = regularized_nash(GAME, 0.1).policy.probs[0]
    _, kls = pl.contour_values(GAME, 0.1, kind="kl", resolution=8)
    np.testing.assert_allclose(kls, [np.sum(star * np.log(star / p)) for p in points], rtol=1e-9, atol=1e-14)
    game = PreferenceGame.stack([rock_paper_scissors(), GAME])  # the plotted prompt; the other one at π_ref
    points, gaps = pl.contour_values(game, 0.1, prompt=1, resolution=6)
    ref = game.ref.probs[0]
    expected = [duality_gap(game, np.stack([ref, p]), 0.1, per_prompt=True)[1] for p in points]
    np.testing.assert_allclose(gaps, expected, rtol=1e-10, atol=1e-14)


def test_plotted_contours_shade_the_duality_gap_at_the_grid_points(monkeypatch):
    calls = _spy(monkeypatch, "tricontourf")
    fig = pl.plot_contours(GAME, 0.1, resolution=8, equilibria=True)
    (args, kwargs), = calls
    triangulation, shaded = args
    points, _ = pl.contour_values(GAME, 0.1, resolution=8)
    gaps = np.array([duality_gap(GAME, p, 0.1) for p in points])
    assert gaps.min() > 0  # no lattice point is π*, so nothing is clipped to the log scale's floor
    np.testing.assert_allclose(shaded, gaps, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(np.column_stack([triangulation.x, triangulation.y]), pl.project(points))
    np.testing.assert_allclose(kwargs["levels"][[0, -1]], [gaps.min(), gaps.max()], rtol=1e-10)
    contours = [c for c in fig.axes[0].collections if c.get_gid() == "contours"]
    assert len(contours) == 1
    np.testing.assert_allclose(contours[0].levels, kwargs["levels"])
    star = _lines(fig, "regularized-nash")[0].get_xydata()[0]
    np.testing.assert_allclose(star, pl.project(regularized_nash(GAME, 0.1).policy.probs[0]), atol=1e-12)
    assert len(_lines(fig, "nash")) == 1
    assert not _lines(pl.plot_contours(GAME, 0.1, resolution=8), "nash")  # equilibria are marked on request only


def test_convergence_plot_shows_the_recorded_metrics_and_bounds():
    run = _three_starts(steps=40)
    bound = 0.5 * 0.9 ** np.arange(1, 31)
    fig = pl.plot_convergence(run, gap_bounds={"callable": lambda t: 1.0 / t}, kl_bounds={"array": bound})
    gaps, kls = _lines(fig, "duality-gap"), _lines(fig, "kl")
    assert len(gaps) == len(kls) == 3
    np.testing.assert_array_equal(gaps[1].get_ydata(), run.duality_gap[1:, 1])  # iteration 0 left out (log axis)
    np.testing.assert_array_equal(gaps[1].get_xdata(), run.steps[1:])
    kl = np.sum(np.exp(run.fixed_point[1, 0]) * (run.fixed_point[1, 0] - run.log_probs[1:, 1, 0]), axis=-1)
    np.testing.assert_allclose(kls[1].get_ydata(), kl, atol=1e-12)
    array_bound = [line for line in _lines(fig, "bound") if line.get_label() == "array"][0]
    np.testing.assert_array_equal(array_bound.get_xdata(), np.arange(1, 31))
    np.testing.assert_array_equal(array_bound.get_ydata(), bound)
    assert all(ax.get_xscale() == ax.get_yscale() == "log" for ax in fig.axes)


# ================================================================================================ files
def _figures():
    run = _three_starts(steps=30)
    field = pl.vector_field(make("online-ipo", tau=0.1), GAME, resolution=5)
    return {
        "trajectories": lambda: pl.plot_trajectories(run),
        "vector-field": lambda: pl.plot_vector_field(field),
        "streamlines": lambda: pl.plot_vector_field(field, streamlines=True),
        "tau-path": lambda: pl.plot_tau_path(GAME, np.geomspace(1.0, 0.01, 8)),
        "gap-contours": lambda: pl.plot_contours(GAME, 0.1, resolution=12),
        "kl-contours": lambda: pl.plot_contours(GAME, 0.1, kind="kl", resolution=12),
        "marked-contours": lambda: pl.plot_contours(GAME, 0.1, resolution=12, equilibria=True),
        "figure9": lambda: pl.plot_figure9(pl.figure9_run(steps=30)),
        "convergence": lambda: pl.plot_convergence(run, kl_bounds={"b": lambda t: 1.0 / t}),
    }


def test_every_plot_saves_png_and_svg(tmp_path):
    for name, make_figure in _figures().items():
        paths = pl.save(make_figure(), tmp_path / "sub" / name)
        assert [p.name for p in paths] == [f"{name}.png", f"{name}.svg"]
        png, svg = paths[0].read_bytes(), paths[1].read_text()
        assert len(png) > 1000 and png.startswith(PNG_SIGNATURE), name
        assert "<svg" in svg and svg.rstrip().endswith("</svg>"), name


def test_layers_compose_on_one_axes(tmp_path):
    fig = pl.plot_contours(GAME, 0.1, resolution=10)
    ax = fig.axes[0]
    pl.plot_tau_path(GAME, np.geomspace(1.0, 0.01, 6), ax=ax)
    assert pl.plot_trajectories(_three_starts(steps=10), ax=ax) is fig
    assert sum(p.get_gid() == "simplex" for p in ax.patches) == 1  # the outline is drawn once
    assert len(_lines(fig, "nash")) == 2  # tau path and trajectories each mark it; the legend shows it once
    assert ax.get_legend().get_texts()[1].get_text() == "unregularised NE"
    assert [t.get_text() for t in ax.get_legend().get_texts()].count("unregularised NE") == 1


# ================================================================================================ errors
def test_a_four_action_game_raises_a_clear_error():
    game = random_intransitive(4)
    message = r"a simplex plot needs a 3-action game; .* has 4 actions \(use plot_convergence"
    with pytest.raises(ValueError, match=message):
        pl.simplex_axes(game)
    with pytest.raises(ValueError, match=message):
        pl.vector_field(make("online-ipo", tau=0.1), game, resolution=4)
    with pytest.raises(ValueError, match=message):
        pl.plot_contours(game, 0.1)
    with pytest.raises(ValueError, match=message):
        pl.contour_values(game, 0.1)
    run = simulate(make("online-ipo", tau=0.1), game, steps=5, lr=0.05)
    with pytest.raises(ValueError, match=message):
        pl.plot_trajectories(run)
    assert pl.plot_convergence(run) is not None  # the suggested alternative works for any size
