"""Figures of the exact dynamics: simplex plots of 3-action games, IPO-MD Figure 9, convergence curves.

Every function returns a :class:`matplotlib.figure.Figure` and accepts an optional ``ax`` to draw into instead;
nothing calls ``plt.show()``. Figures are built on :class:`~matplotlib.figure.Figure` directly, not through pyplot,
so they render headless (Agg for PNG, the SVG backend for SVG) whatever display the session has. :func:`save` writes
them to disk.

The plots never run the dynamics behind the user's back: trajectories are drawn from the ``log_probs`` a
:class:`~preference_games.dynamics.Trajectory` recorded, exactly. The one exception is :func:`vector_field`, whose
definition *is* one exact step from every grid point; it returns its data so a caller can check or reuse it.

What each function draws
------------------------
* :func:`simplex_axes` — the probability simplex of a 3-action game as an equilateral triangle, corners labelled with
  ``game.actions``.
* :func:`plot_trajectories` — each configuration of each trajectory as a line from its start (a dot) with arrows for
  the direction of motion; optionally markers for the regularised equilibrium (diamond, one per τ), each
  configuration's fixed point (star, in the line's colour) and the unregularised equilibrium (cross).
* :func:`vector_field` / :func:`plot_vector_field` — the one-step displacement π_1 − π_0 of the exact dynamics from a
  lattice of starting policies, computed in ONE batched ``simulate(..., steps=1)`` call (configurations = grid
  points), drawn as a quiver coloured by log-speed, or (``streamlines=True``) as streamlines of the piecewise-linear
  interpolation of those exact values (:func:`interpolate_field`, :func:`stream_grid`).
* :func:`plot_tau_path` — the path τ ↦ π*_τ of regularised equilibria (large τ starts near π_ref, small τ ends near
  the unregularised equilibrium).
* :func:`contour_values` / :func:`plot_contours` — filled contours of DualGap_τ(π) or KL(π*_τ ‖ π) over the simplex,
  optionally with the regularised and unregularised equilibria marked.
* :func:`figure9_run` / :func:`plot_figure9` — IPO-MD Appendix F, Figure 9: IPO-MD for β ∈ {0, ¼, ½, ¾, 1}.
* :func:`plot_convergence` — duality gap and KL(π* ‖ π_t) against iterations on log–log axes, with optional
  theoretical bounds (INPO Theorems 3 and 4) as callables or arrays.

The projection
--------------
A policy p = (p₀, p₁, p₂) on the simplex maps to the plane by the barycentric combination of the triangle's corners
v₀ = (0, 0), v₁ = (1, 0), v₂ = (½, √3/2):

    proj(p) = p₀ v₀ + p₁ v₁ + p₂ v₂ = (p₁ + p₂/2, (√3/2) p₂).

It is one affine map (linear in p, and Σ p = 1 makes it affine on the simplex), so it sends vertices to corners, the
uniform policy to the centroid (½, √3/6) and mixtures to the same mixtures of the images, and it preserves straight
lines and ratios along them. That is all a ternary plot needs, so this module uses those three lines instead of a
ternary-plot package: no extra dependency, and the plotted coordinates are exactly a documented function of the
recorded probabilities (the tests compare them to 1e-12).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from matplotlib.tri import Triangulation

from .algorithms import make
from .algorithms.base import Algorithm, pick
from .bounds import average_iterate_gap
from .dynamics import Trajectory, simulate
from .equilibria import gaps_from_log_probs, nash_lp, regularized_nash, tau_path
from .games import FIGURE9_BETAS, FIGURE9_LR, FIGURE9_START, FIGURE9_TAU, PreferenceGame, rps_variant
from .models import TabularLogits
from .policies import _kl

#: The triangle's corners, one row per action: proj(p) = p @ CORNERS.
CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3.0) / 2.0]])

FIGURE9_CAPTION = (
    "IPO-MD (exact dynamics, lr {lr:g}, {steps} steps from π₀ = ({start})) on the rock-paper-scissors variant of "
    "IPO-MD Appendix F, τ = {tau:g}, uniform π_ref; stars: eq. 13 fixed point of each β. The printed matrix is not "
    "antisymmetric (P + Pᵀ ≠ 1 in two pairs), so it was repaired by (P − Pᵀ + 1)/2."
)


# ============================================================================================== projection
def project(probs) -> np.ndarray:
    """Map probabilities [..., 3] to plane coordinates [..., 2] (module docstring).

    >>> project([1 / 3, 1 / 3, 1 / 3]).round(4).tolist()
    [0.5, 0.2887]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[-1] != 3:
        raise ValueError(f"project needs probabilities over 3 actions; got last axis {probs.shape[-1]}")
    return probs @ CORNERS


def _simplex_game(game: PreferenceGame, prompt: int) -> None:
    """Raise a one-line ValueError unless ``game`` has 3 actions and a prompt index ``prompt``."""
    if game.num_actions != 3:
        raise ValueError(
            f"a simplex plot needs a 3-action game; {game.name!r} has {game.num_actions} actions "
            "(use plot_convergence for games of any size)"
        )
    if not (int(prompt) == prompt and 0 <= prompt < game.num_prompts):
        raise ValueError(f"prompt must be an index in [0, {game.num_prompts - 1}] for {game.name!r}; got {prompt}")


def _figure_and_axes(ax, figsize=(5.5, 5.0)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def simplex_axes(game: PreferenceGame, *, prompt: int = 0, ax=None):
    """The axes with the simplex of ``game`` (3 actions) drawn: outline, corner labels, equal aspect, no ticks.

    Drawing into axes that already show the simplex adds nothing, so the plot functions can all call it.

    >>> from preference_games.games import rock_paper_scissors
    >>> ax = simplex_axes(rock_paper_scissors())
    """
    _simplex_game(game, prompt)
    _, ax = _figure_and_axes(ax)
    if any(p.get_gid() == "simplex" for p in ax.patches):
        return ax
    ax.add_patch(Polygon(CORNERS, closed=True, fill=False, edgecolor="0.3", linewidth=1.0, gid="simplex"))
    offsets = [(-0.04, -0.05, "right"), (0.04, -0.05, "left"), (0.0, 0.04, "center")]
    for (x, y), (dx, dy, align), name in zip(CORNERS, offsets, game.actions):
        ax.text(x + dx, y + dy, name, ha=align, va="center")
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.1, np.sqrt(3.0) / 2.0 + 0.1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if game.num_prompts > 1:
        ax.set_title(f"prompt {prompt}")
    return ax


# ============================================================================================ trajectories
def _config_label(run: Trajectory, c: int) -> str:
    """The algorithm with configuration c's parameters; the index too where the parameters do not tell configurations
    apart (several starts of one algorithm)."""
    algorithm = run.algorithm
    shown = ", ".join(f"{k}={v if isinstance(v, str) else f'{pick(v, c):g}'}" for k, v in algorithm.params.items()
                      if v is not None)
    varies = any(np.size(v) > 1 for v in algorithm.params.values() if not isinstance(v, str))
    index = f" #{c}" if run.log_probs.shape[1] > 1 and not varies else ""
    return f"{algorithm.name}({shown}){index}"


def _legend(ax) -> None:
    """A legend with one entry per label (several plot calls may mark the same equilibrium), below the simplex so
    that it never covers the top corner's label."""
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    ax.legend(handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize="small",
              frameon=False)


def _color(i: int) -> str:
    return f"C{i % 10}"


def _arrows(ax, xy: np.ndarray, color, count: int = 3) -> None:
    """Arrow heads at evenly spaced fractions of the path's arc length: time-spacing would bunch them where the
    dynamics slow down near the limit."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    if len(xy) < 2 or arc[-1] == 0:
        return
    for fraction in (np.arange(count) + 0.5) / count:
        i = min(max(int(np.searchsorted(arc, fraction * arc[-1])), 1), len(xy) - 1)
        arrow = {"arrowstyle": "-|>", "color": color, "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12}
        ax.annotate("", xy=xy[i], xytext=xy[i - 1], arrowprops=arrow)


def plot_trajectories(
    trajectories,
    *,
    prompt: int = 0,
    configs=None,
    labels=None,
    equilibria: bool = True,
    arrows: int = 3,
    ax=None,
) -> Figure:
    """Draw recorded trajectories on the simplex: every configuration (or those in ``configs``) of every trajectory.

    Each line is ``project(exp(trajectory.log_probs[:, c, prompt]))`` with gid ``"trajectory"``; its start is a dot.
    ``labels``: one per drawn line (default: the algorithm with that configuration's parameters). ``equilibria``:
    also mark the regularised equilibrium at each configuration's τ, each configuration's fixed point (where the
    algorithm has one in closed form) and the unregularised equilibrium.

    >>> from preference_games.algorithms import make
    >>> from preference_games.games import rps_variant
    >>> run = simulate(make("online-ipo", tau=0.1), rps_variant(antisymmetrize=True), steps=50, lr=0.05)
    >>> fig = plot_trajectories(run)
    """
    trajectories = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
    lines = [(run, c) for run in trajectories for c in (range(run.log_probs.shape[1]) if configs is None else configs)]
    if labels is not None and len(labels) != len(lines):
        raise ValueError(f"labels: expected one per drawn line ({len(lines)}); got {len(labels)}")
    for run, _ in lines:
        _simplex_game(run.games[0], prompt)
    fig, ax = _figure_and_axes(ax)
    simplex_axes(lines[0][0].games[lines[0][1]], prompt=prompt, ax=ax)
    for i, (run, c) in enumerate(lines):
        xy = project(np.exp(run.log_probs[:, c, prompt]))
        color = _color(i)
        label = labels[i] if labels is not None else _config_label(run, c)
        ax.plot(xy[:, 0], xy[:, 1], color=color, linewidth=1.4, label=label, gid="trajectory")
        ax.plot(*xy[0], "o", color=color, markersize=4, gid="start")
        if arrows:
            _arrows(ax, xy, color, arrows)
        fixed = run.fixed_point if equilibria else None
        if fixed is not None:
            ax.plot(*project(np.exp(fixed[c, prompt])), "*", color=color, markersize=13, markeredgecolor="k",
                    markeredgewidth=0.6, gid="fixed-point", zorder=4)
    if equilibria:
        pairs = {(id(run.games[c]), pick(run.facts.gap_tau, c)): (run.games[c], pick(run.facts.gap_tau, c))
                 for run, c in lines}
        _mark_equilibria(ax, pairs.values(), prompt)
    _legend(ax)
    return fig


def _mark_equilibria(ax, games_and_taus, prompt: int) -> None:
    """Diamonds for the regularised equilibria, a cross for each game's unregularised one."""
    games_and_taus = list(games_and_taus)
    for game, tau in games_and_taus:
        if tau > 0:
            eq = regularized_nash(game, tau).policy
            ax.plot(*project(eq.probs[prompt]), "D", color="k", markerfacecolor="w", markersize=7,
                    label=f"regularised NE (τ={tau:g})", gid="regularized-nash", zorder=5)
    for game in {id(g): g for g, _ in games_and_taus}.values():
        ax.plot(*project(nash_lp(game).policy.probs[prompt]), "X", color="k", markersize=8,
                label="unregularised NE", gid="nash", zorder=5)


# ============================================================================================ vector field
@dataclass(frozen=True)
class VectorField:
    """One exact step from each grid point: ``start`` and ``end`` probabilities [N, 3] of the plotted prompt, their
    projections ``xy`` [N, 2] and the projected displacement ``uv`` = proj(end) − proj(start) [N, 2]; ``run`` is the
    batched trajectory (configuration n = grid point n)."""

    start: np.ndarray
    end: np.ndarray
    xy: np.ndarray
    uv: np.ndarray
    run: Trajectory
    prompt: int


def simplex_lattice(resolution: int) -> np.ndarray:
    """Interior lattice points (i, j, k)/resolution with i, j, k ≥ 1 and i + j + k = resolution: [N, 3].

    Interior only: on the boundary a probability is 0 and the log-probability −inf, where the softmax
    parameterisation cannot start.

    >>> simplex_lattice(3).tolist()
    [[0.3333333333333333, 0.3333333333333333, 0.3333333333333333]]
    """
    if int(resolution) != resolution or resolution < 3:
        raise ValueError(f"resolution must be an integer >= 3; got {resolution}")
    n = int(resolution)
    points = [(i, j, n - i - j) for i in range(1, n - 1) for j in range(1, n - i)]
    return np.array(points, dtype=np.float64) / n


def vector_field(algorithm: Algorithm, game: PreferenceGame, *, prompt: int = 0, resolution: int = 12,
                 lr: float = 0.05, mode: str = "exact") -> VectorField:
    """The one-step displacement of ``algorithm``'s exact dynamics at every interior lattice point of the simplex.

    One ``simulate(algorithm, game, steps=1, ...)`` call advances every grid point at once: the starting policy is a
    :class:`TabularLogits` with one configuration per grid point (other prompts of a contextual game start at π_ref;
    tabular prompts do not interact). The algorithm's parameters must therefore be scalars.

    >>> from preference_games.algorithms import make
    >>> from preference_games.games import rps_variant
    >>> field = vector_field(make("online-ipo", tau=0.1), rps_variant(antisymmetrize=True), resolution=6)
    >>> field.uv.shape
    (10, 2)
    """
    _simplex_game(game, prompt)
    start = simplex_lattice(resolution)
    table = np.repeat(game.ref.log_probs[None], len(start), axis=0)  # [N, X, 3]
    table[:, prompt] = np.log(start)
    # configs: simulate infers C from the parameters, lr and games, not from the policy it is given
    run = simulate(algorithm, game, steps=1, lr=lr, mode=mode, policy=TabularLogits.from_log_probs(table),
                   configs=len(table))
    start, end = np.exp(run.log_probs[0, :, prompt]), np.exp(run.log_probs[-1, :, prompt])
    xy = project(start)
    return VectorField(start, end, xy, project(end) - xy, run, prompt)


def interpolate_field(field: VectorField, xy) -> np.ndarray:
    """The piecewise-linear interpolation of ``field.uv`` (over the Delaunay triangulation of the grid points
    ``field.xy``) at plane points ``xy`` [..., 2]: [..., 2], NaN outside the convex hull of the grid points.

    Linear interpolation is exact at the data points: at ``field.xy`` it returns ``field.uv`` (up to rounding).
    Between them it is an approximation of the exact one-step field, nothing more.

    >>> from preference_games.algorithms import make
    >>> from preference_games.games import rps_variant
    >>> field = vector_field(make("online-ipo", tau=0.1), rps_variant(antisymmetrize=True), resolution=6)
    >>> bool(np.allclose(interpolate_field(field, field.xy), field.uv, rtol=1e-10, atol=1e-15))
    True
    """
    from scipy.interpolate import griddata

    xy = np.asarray(xy, dtype=np.float64)
    flat = griddata(field.xy, field.uv, xy.reshape(-1, 2), method="linear", fill_value=np.nan)
    return flat.reshape(*xy.shape[:-1], 2)


@dataclass(frozen=True)
class StreamGrid:
    """``field`` interpolated onto a regular grid of the plane, as :meth:`matplotlib.axes.Axes.streamplot` needs it:
    node coordinates ``x`` [nx] and ``y`` [ny], and masked arrays ``u``, ``v`` [ny, nx] (masked outside the triangle
    and outside the convex hull of the grid points, where there is no data)."""

    x: np.ndarray
    y: np.ndarray
    u: np.ma.MaskedArray
    v: np.ma.MaskedArray


def stream_grid(field: VectorField, *, refine: int = 3) -> StreamGrid:
    """:func:`interpolate_field` on a regular (x, y) grid whose nodes include every lattice point of ``field``.

    A lattice point (i, j, k)/n projects to ((2j + k)/(2n), (√3/2) k/n), so the grid with spacing 1/(2n·refine) in x
    and (√3/2)/(n·refine) in y over the triangle's bounding box has all of them as nodes: there the gridded field is
    the exact ``field.uv``. The resolution n is read off the field (its smallest starting probability is 1/n).

    >>> from preference_games.algorithms import make
    >>> from preference_games.games import rps_variant
    >>> grid = stream_grid(vector_field(make("online-ipo", tau=0.1), rps_variant(antisymmetrize=True), resolution=6))
    >>> grid.u.shape
    (19, 37)
    """
    if int(refine) != refine or refine < 1:
        raise ValueError(f"refine must be a positive integer; got {refine}")
    n = round(1.0 / float(field.start.min()))
    x = np.linspace(0.0, 1.0, 2 * n * int(refine) + 1)
    y = np.linspace(0.0, CORNERS[2, 1], n * int(refine) + 1)
    gx, gy = np.meshgrid(x, y)
    uv = interpolate_field(field, np.stack([gx, gy], axis=-1))
    p2 = gy / CORNERS[2, 1]  # barycentric coordinates of the nodes: the inverse of project
    p1 = gx - p2 / 2.0
    outside = (np.minimum(np.minimum(p1, p2), 1.0 - p1 - p2) < -1e-12) | ~np.isfinite(uv).all(axis=-1)
    return StreamGrid(x, y, np.ma.masked_array(uv[..., 0], outside), np.ma.masked_array(uv[..., 1], outside))


def plot_vector_field(field: VectorField, *, ax=None, cmap: str = "viridis", streamlines: bool = False,
                      refine: int = 3, density: float = 1.2) -> Figure:
    """A quiver of ``field`` on the simplex: arrows point along the one-step displacement, lengths proportional to
    it (matplotlib's autoscaling sets the common scale), colour = log10 of the displacement's length.

    ``streamlines=True`` draws streamlines instead (:meth:`~matplotlib.axes.Axes.streamplot`, gid
    ``"streamlines"``, ``density`` as there), coloured by log10 of the interpolated displacement's length. They are
    drawn from :func:`stream_grid`, the linear interpolation of the exact field at the grid points (exact at those
    points, linear between them); no dynamics are recomputed. There is no data between the outermost grid points and
    the triangle's edges (a strip ~1/n wide), so the streamlines stop there.

    >>> from preference_games.algorithms import make
    >>> from preference_games.games import rps_variant
    >>> game = rps_variant(antisymmetrize=True)
    >>> fig = plot_vector_field(vector_field(make("online-ipo", tau=0.1), game, resolution=6))
    >>> fig = plot_vector_field(vector_field(make("online-ipo", tau=0.1), game, resolution=6), streamlines=True)
    """
    game = field.run.games[0]
    fig, ax = _figure_and_axes(ax)
    simplex_axes(game, prompt=field.prompt, ax=ax)
    title = f"{field.run.algorithm.describe()}: one exact step"
    if streamlines:
        grid = stream_grid(field, refine=refine)
        speed = np.ma.log10(np.ma.maximum(np.ma.hypot(grid.u, grid.v), 1e-300))
        norm = mcolors.Normalize(float(speed.min()), float(speed.max()))
        stream = ax.streamplot(grid.x, grid.y, grid.u, grid.v, color=speed.filled(np.nan), cmap=cmap, norm=norm,
                               density=density, linewidth=1.0, arrowsize=0.9)
        stream.lines.set_gid("streamlines")
        mappable = stream.lines
        title += " (streamlines of its linear interpolation)"
    else:
        speed = np.log10(np.maximum(np.linalg.norm(field.uv, axis=1), 1e-300))
        mappable = ax.quiver(field.xy[:, 0], field.xy[:, 1], field.uv[:, 0], field.uv[:, 1], speed, cmap=cmap,
                             angles="xy", pivot="tail", gid="vector-field")
    fig.colorbar(mappable, ax=ax, shrink=0.6, label="log₁₀ ‖step‖")
    ax.set_title(title, fontsize="small")
    return fig


# ============================================================================================ τ-path, contours
def plot_tau_path(game: PreferenceGame, taus=None, *, prompt: int = 0, ax=None) -> Figure:
    """The regularised equilibria π*_τ along a decreasing τ grid (default 10 → 10⁻³), from near π_ref to near the
    unregularised equilibrium (marked), as one line with gid ``"tau-path"``.

    >>> from preference_games.games import rps_variant
    >>> fig = plot_tau_path(rps_variant(antisymmetrize=True), np.geomspace(1.0, 0.01, 12))
    """
    _simplex_game(game, prompt)
    taus = np.geomspace(10.0, 1e-3, 41) if taus is None else np.asarray(taus, dtype=np.float64)
    fig, ax = _figure_and_axes(ax)
    simplex_axes(game, prompt=prompt, ax=ax)
    xy = project(np.stack([eq.policy.probs[prompt] for eq in tau_path(game, taus)]))
    ax.plot(xy[:, 0], xy[:, 1], "--", color="0.35", linewidth=1.2, label=f"τ-path ({taus[0]:g} → {taus[-1]:g})",
            gid="tau-path")
    ax.plot(*project(nash_lp(game).policy.probs[prompt]), "X", color="k", markersize=8, label="unregularised NE",
            gid="nash", zorder=5)
    _legend(ax)
    return fig


CONTOUR_KINDS = ("duality-gap", "kl")


def contour_values(game: PreferenceGame, tau: float, *, kind: str = "duality-gap", prompt: int = 0,
                   resolution: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`plot_contours` shades: the interior lattice ``points`` [N, 3] (:func:`simplex_lattice`) and
    ``values`` [N], DualGap_τ (``kind="duality-gap"``) or KL(π*_τ ‖ π) (``"kl"``, τ > 0) of the plotted prompt at
    each point, other prompts held at π_ref.

    >>> from preference_games.games import rps_variant
    >>> points, values = contour_values(rps_variant(antisymmetrize=True), 0.1, resolution=6)
    >>> points.shape, values.shape
    ((10, 3), (10,))
    """
    if kind not in CONTOUR_KINDS:
        raise ValueError(f"kind must be one of {CONTOUR_KINDS}; got {kind!r}")
    _simplex_game(game, prompt)
    points = simplex_lattice(resolution)
    table = np.repeat(game.ref.log_probs[None], len(points), axis=0)
    table[:, prompt] = np.log(points)
    if kind == "duality-gap":
        values = gaps_from_log_probs(game, table, tau)[:, prompt]
    else:
        values = _kl(regularized_nash(game, tau).policy.log_probs[prompt], table[:, prompt])
    return points, values


def plot_contours(game: PreferenceGame, tau: float, *, kind: str = "duality-gap", prompt: int = 0,
                  resolution: int = 60, equilibria: bool = False, ax=None, cmap: str = "Greys") -> Figure:
    """Filled contours (gid ``"contours"``) over the simplex of DualGap_τ(π) (``kind="duality-gap"``) or KL(π*_τ ‖ π)
    (``"kl"``) of the plotted prompt, on a log colour scale; other prompts are held at π_ref. The values are
    :func:`contour_values` at the lattice points, linearly interpolated between them by ``tricontourf``.
    ``equilibria``: also mark the regularised equilibrium at τ (τ > 0) and the unregularised one.

    >>> from preference_games.games import rps_variant
    >>> fig = plot_contours(rps_variant(antisymmetrize=True), 0.1, resolution=20)
    """
    points, values = contour_values(game, tau, kind=kind, prompt=prompt, resolution=resolution)
    label = f"DualGap (τ={tau:g})" if kind == "duality-gap" else f"KL(π*‖π) (τ={tau:g})"
    fig, ax = _figure_and_axes(ax)
    simplex_axes(game, prompt=prompt, ax=ax)
    xy = project(points)
    floor = max(values[values > 0].min(), 1e-12) if np.any(values > 0) else 1e-12  # log scale: zero at π* only
    levels = np.geomspace(floor, values.max(), 12)
    shading = ax.tricontourf(Triangulation(xy[:, 0], xy[:, 1]), np.maximum(values, floor), levels=levels,
                             norm=mcolors.LogNorm(), cmap=cmap, alpha=0.6, zorder=0)
    shading.set_gid("contours")
    fig.colorbar(shading, ax=ax, shrink=0.6, label=label, ticks=levels[::3], format="%.1e")
    if equilibria:
        _mark_equilibria(ax, [(game, tau)], prompt)
        _legend(ax)
    return fig


# ================================================================================================ Figure 9
def figure9_run(*, steps: int = 400, lr: float = FIGURE9_LR, start=FIGURE9_START) -> Trajectory:
    """The dynamics of IPO-MD Figure 9: exact IPO-MD, β ∈ {0, ¼, ½, ¾, 1} batched as five configurations, τ = 0.1,
    uniform π_ref, on ``rps_variant(antisymmetrize=True)``, all from ``start``. With lr 0.05 every β is within
    1e-8 of its eq. 13 fixed point after 300 steps (measured; 1e-6 after 200).

    >>> run = figure9_run(steps=20)
    >>> run.log_probs.shape
    (21, 5, 1, 3)
    """
    start = np.asarray(start, dtype=np.float64)
    policy = TabularLogits.from_log_probs(np.broadcast_to(np.log(start), (len(FIGURE9_BETAS), 1, 3)))
    algorithm = make("ipo-md", beta=np.array(FIGURE9_BETAS), tau=FIGURE9_TAU)
    return simulate(algorithm, rps_variant(antisymmetrize=True), steps=steps, lr=lr, policy=policy)


def plot_figure9(run: Trajectory, *, lr: float = FIGURE9_LR, ax=None) -> Figure:
    """IPO-MD Figure 9 from :func:`figure9_run`'s trajectory, with the eq. 13 fixed point of each β and the caption.
    ``lr`` only enters the caption (pass the one the run used).

    >>> fig = plot_figure9(figure9_run(steps=50))
    """
    betas = [pick(run.algorithm.params["beta"], c) for c in range(run.log_probs.shape[1])]
    fig = plot_trajectories(run, labels=[f"β = {b:g}" for b in betas], ax=ax)
    start = ", ".join(f"{p:.2g}" for p in np.exp(run.log_probs[0, 0, 0]))
    caption = FIGURE9_CAPTION.format(lr=lr, steps=int(run.steps[-1]), start=start, tau=FIGURE9_TAU)
    fig.text(0.5, 0.0, caption, ha="center", va="top", wrap=True, fontsize="small", gid="caption")
    return fig


# ============================================================================================= convergence
def _bound_values(bound, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A bound as (t, value): a callable is evaluated at the iterations t ≥ 1; an array is read as the values at
    t = 1, 2, …, len."""
    if callable(bound):
        return steps, np.asarray(bound(steps), dtype=np.float64)
    values = np.asarray(bound, dtype=np.float64)
    return np.arange(1, len(values) + 1), values


def plot_convergence(trajectories, *, labels=None, gap_bounds=None, kl_bounds=None, average=False, ax=None) -> Figure:
    """Duality gap (at each configuration's τ) and KL(π* ‖ π_t) against iterations, log–log, one line per
    configuration of every trajectory; iteration 0 is left out (log axis). π* is the algorithm's fixed point
    (the regularised equilibrium for online IPO / INPO); configurations without one get no KL line.

    ``gap_bounds`` / ``kl_bounds``: {label: callable t ↦ bound or array of bounds at t = 1, 2, …}, drawn dashed —
    e.g. INPO Theorem 3 (gap of the averaged iterate) and Theorem 4 (KL, geometric) with the paper's constants.
    ``average``: also draw (dotted) the gap of the running uniform average of the iterates — last iterate against
    average, as in INPO Theorems 3 and 4 (:func:`preference_games.bounds.average_iterate_gap`; record every step).
    ``ax``: two axes (gap, KL). Works for games of any size. :mod:`preference_games.bounds` evaluates INPO's bounds
    on a trajectory for ``gap_bounds`` / ``kl_bounds``.

    >>> from preference_games.algorithms import make
    >>> from preference_games.games import random_intransitive
    >>> run = simulate(make("online-ipo", tau=0.1), random_intransitive(5), steps=50, lr=0.05)
    >>> fig = plot_convergence(run, kl_bounds={"geometric": lambda t: 0.5 * 0.9 ** t})
    """
    trajectories = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
    lines = [(run, c) for run in trajectories for c in range(run.log_probs.shape[1])]
    if labels is not None and len(labels) != len(lines):
        raise ValueError(f"labels: expected one per configuration ({len(lines)}); got {len(labels)}")
    if ax is None:
        fig = Figure(figsize=(10.0, 4.0), layout="constrained")
        axes = fig.subplots(1, 2)
    else:
        axes = list(ax)
        if len(axes) != 2:
            raise ValueError(f"plot_convergence draws two panels (gap, KL); got {len(axes)} axes")
        fig = axes[0].figure
    gap_ax, kl_ax = axes
    for i, (run, c) in enumerate(lines):
        later = run.steps > 0
        label = labels[i] if labels is not None else _config_label(run, c)
        gap_ax.plot(run.steps[later], run.duality_gap[later, c], color=_color(i), label=label, gid="duality-gap")
        if average:
            gap_ax.plot(run.steps[later], average_iterate_gap(run, c)[later], color=_color(i), linestyle=":",
                        label=f"{label} (average)", gid="average-gap")  # fmt: skip
        if run.kl_from_fixed_point is not None:
            kl_ax.plot(run.steps[later], run.kl_from_fixed_point[later, c], color=_color(i), label=label, gid="kl")
    t = np.unique(np.concatenate([run.steps[run.steps > 0] for run in trajectories]))
    for panel, bounds in ((gap_ax, gap_bounds), (kl_ax, kl_bounds)):
        for j, (name, bound) in enumerate((bounds or {}).items()):
            x, y = _bound_values(bound, t)
            panel.plot(x, y, linestyle="--", color="k", alpha=0.8 - 0.2 * (j % 3), label=name, gid="bound")
    for panel, ylabel in ((gap_ax, "duality gap"), (kl_ax, "KL(π* ‖ π_t)")):
        panel.set_xscale("log")
        panel.set_yscale("log", nonpositive="mask")  # a gap of exactly 0 has no place on a log axis
        panel.set_xlabel("iteration t")
        panel.set_ylabel(ylabel)
        panel.legend(fontsize="small", frameon=False)
    return fig


# ===================================================================================================== save
#: Reproducible files: matplotlib writes the time of writing (SVG ``Date``) and its version (PNG ``Software``, SVG
#: ``Creator``) unless told not to (``savefig(metadata=...)``: a key set to None is left out), and salts SVG element
#: ids randomly unless ``svg.hashsalt`` is set. The bytes still depend on more than the data: the last digits of
#: coordinates on the CPU kernels torch picks, PNG pixels on the matplotlib/FreeType that rendered them. So
#: tests/test_cli_plot.py re-runs the README's commands and checks the data their figures draw, not the files' bytes.
SVG_HASHSALT = "preference-games"
SAVE_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
SAVE_DPI = 150


def save(fig: Figure, path_stem, formats=("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``path_stem.<format>`` for every format (parent folders created), without dates, version
    strings or random element ids (:data:`SAVE_METADATA`, :data:`SVG_HASHSALT`); returns the paths.

    >>> import tempfile
    >>> from preference_games.games import rock_paper_scissors
    >>> fig = simplex_axes(rock_paper_scissors()).figure
    >>> [p.suffix for p in save(fig, Path(tempfile.mkdtemp()) / "rps")]
    ['.png', '.svg']
    """
    import matplotlib

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT}):
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            fig.savefig(path, format=fmt, bbox_inches="tight", dpi=SAVE_DPI, metadata=SAVE_METADATA.get(fmt))
            paths.append(path)
    return paths
