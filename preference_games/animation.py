"""Animations of recorded trajectories on the simplex of a 3-action game: several algorithms moving at once.

:func:`animate` writes a GIF (matplotlib's ``PillowWriter``) or, where ffmpeg is installed, an MP4 in which every
configuration of every :class:`~preference_games.dynamics.Trajectory` moves on the triangle of
:func:`~preference_games.plotting.simplex_axes`: a growing line with a dot at the current policy (or, with ``tail``,
the dot with a fading tail of its last recorded steps), and a star at each configuration's fixed point where the
algorithm has one (``trajectory.fixed_point``).

The animation never runs the dynamics (unlike :func:`~preference_games.plotting.vector_field` and
:func:`~preference_games.plotting.figure9_run`, which call ``simulate``): every position is
``plotting.project(exp(trajectory.log_probs[t, c, prompt]))`` of a recorded step ``t``. :func:`frame_positions`
returns those per-frame positions; :func:`animate` draws exactly them, so a test can compare the drawn data to the
recorded policies bitwise. The one number it does not read from the recording is the star: ``trajectory.fixed_point``,
which the trajectory computes (an equilibrium solve for some algorithms) and caches on first use.

The clock of the animation is the step number: the frames are taken evenly from the union of the recorded steps of
all trajectories (always the first and the last), and at frame step ``s`` each line shows its last recorded policy
at a step ≤ ``s``. A trajectory that ended earlier (fewer steps) therefore stays at its final point.

>>> from preference_games.algorithms import make
>>> from preference_games.dynamics import simulate
>>> from preference_games.games import rps_variant
>>> import numpy as np, tempfile, pathlib
>>> run = simulate(make("ipo-md", beta=np.array([0, 1.0])), rps_variant(antisymmetrize=True), steps=30, lr=0.05)
>>> animate(run, pathlib.Path(tempfile.mkdtemp()) / "ipo-md.gif", frames=5).suffix
'.gif'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import animation as manimation
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from .dynamics import Trajectory
from .plotting import _color, _config_label, _simplex_game, project, simplex_axes


@dataclass(frozen=True)
class FramePositions:
    """What each frame shows. ``steps`` [F]: the step number of each frame; ``index`` [F, L]: the recorded index of
    each line (configuration c of trajectory r, in the order ``lines``) at each frame; ``xy`` [F, L, 2]: the projected
    current policy of each line; ``paths``: the projected recorded path [T_l, 2] of each line."""

    steps: np.ndarray
    index: np.ndarray
    xy: np.ndarray
    paths: list
    lines: list  # (trajectory, configuration) per line


def _as_list(trajectories) -> list[Trajectory]:
    trajectories = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
    if not trajectories:
        raise ValueError("animate needs at least one trajectory")
    return trajectories


def subsample(count: int, frames: int | None) -> np.ndarray:
    """``frames`` indices spread evenly over ``range(count)``, always the first and the last (all of them where
    ``frames`` is None or at least ``count``).

    >>> subsample(31, 4).tolist()
    [0, 10, 20, 30]
    """
    if frames is None or frames >= count:
        return np.arange(count)
    if int(frames) != frames or frames < 2:
        raise ValueError(f"frames must be an integer >= 2 (first and last step); got {frames}")
    # spacing (count - 1) / (frames - 1) >= 1, so the rounded indices are distinct
    return np.rint(np.linspace(0, count - 1, int(frames))).astype(int)


def frame_positions(trajectories, frames: int | None = None, prompt: int = 0) -> FramePositions:
    """The per-frame positions :func:`animate` draws: one line per configuration of each trajectory, positions
    ``project(exp(log_probs[t, c, prompt]))`` of recorded steps only. Raises ValueError for games that are not
    3-action (the same message as :mod:`preference_games.plotting`).

    >>> from preference_games.algorithms import make
    >>> from preference_games.dynamics import simulate
    >>> from preference_games.games import rps_variant
    >>> run = simulate(make("online-ipo", tau=0.1), rps_variant(antisymmetrize=True), steps=30, lr=0.05)
    >>> frame_positions(run, frames=4).xy.shape
    (4, 1, 2)
    """
    trajectories = _as_list(trajectories)
    for run in trajectories:
        for game in run.games:
            _simplex_game(game, prompt)
    lines = [(run, c) for run in trajectories for c in range(run.log_probs.shape[1])]
    clock = np.unique(np.concatenate([np.asarray(run.steps) for run in trajectories]))
    steps = clock[subsample(len(clock), frames)]
    paths = [project(np.exp(run.log_probs[:, c, prompt])) for run, c in lines]
    index = np.stack(
        [np.maximum(np.searchsorted(np.asarray(run.steps), steps, side="right") - 1, 0) for run, _ in lines], axis=1
    )
    xy = np.stack([path[index[:, i]] for i, path in enumerate(paths)], axis=1)
    return FramePositions(steps, index, xy, paths, lines)


class Scene:
    """The figure of an animation and its artists; ``draw(k)`` sets every artist to frame ``k``.

    Per line: ``dots[i]`` (gid ``"position"``, the current policy), and either ``trails[i]`` — a growing Line2D
    (gid ``"trajectory"``, the recorded path up to the current step) — or, with ``tail``, a LineCollection (gid
    ``"tail"``) over the last ``tail`` recorded steps, fading out.

    >>> from preference_games.algorithms import make
    >>> from preference_games.dynamics import simulate
    >>> from preference_games.games import rps_variant
    >>> run = simulate(make("online-ipo", tau=0.1), rps_variant(antisymmetrize=True), steps=30, lr=0.05)
    >>> scene = Scene(run, frames=3)
    >>> scene.draw(2)
    """

    def __init__(self, trajectories, *, labels=None, prompt: int = 0, frames: int | None = None,
                 tail: int | None = None):
        if tail is not None and (int(tail) != tail or tail < 1):
            raise ValueError(f"tail must be a positive integer (recorded steps); got {tail}")
        self.positions = frame_positions(trajectories, frames, prompt)
        self.tail = None if tail is None else int(tail)
        lines = self.positions.lines
        if labels is not None and len(labels) != len(lines):
            raise ValueError(f"labels: expected one per animated line ({len(lines)}); got {len(labels)}")
        self.figure = Figure(figsize=(5.5, 5.0), layout="constrained")
        ax = self.ax = self.figure.add_subplot()
        run0, c0 = lines[0]
        simplex_axes(run0.games[c0], prompt=prompt, ax=ax)
        self.dots, self.trails = [], []
        for i, (run, c) in enumerate(lines):
            color = _color(i)
            label = labels[i] if labels is not None else _config_label(run, c)
            if self.tail is None:
                (trail,) = ax.plot([], [], color=color, linewidth=1.4, gid="trajectory")
            else:
                trail = LineCollection([], linewidths=1.6, gid="tail")
                ax.add_collection(trail)
            (dot,) = ax.plot([], [], "o", color=color, markersize=6, label=label, gid="position", zorder=3)
            self.trails.append(trail)
            self.dots.append(dot)
            fixed = run.fixed_point
            if fixed is not None:
                ax.plot(*project(np.exp(fixed[c, prompt])), "*", color=color, markersize=13, markeredgecolor="k",
                        markeredgewidth=0.6, gid="fixed-point", zorder=4)
        ax.legend(loc="upper left", fontsize="small", frameon=False)
        self.clock = ax.text(1.0, 0.98, "", transform=ax.transAxes, ha="right", va="top", gid="clock")

    def __len__(self) -> int:
        return len(self.positions.steps)

    def draw(self, k: int) -> None:
        """Set every artist to frame ``k``."""
        pos = self.positions
        for i, (dot, trail, path) in enumerate(zip(self.dots, self.trails, pos.paths)):
            t = int(pos.index[k, i])
            x, y = pos.xy[k, i]
            dot.set_data([x], [y])
            if self.tail is None:
                trail.set_data(path[: t + 1, 0], path[: t + 1, 1])
            else:
                seg = path[max(0, t - self.tail): t + 1]
                segments = np.stack([seg[:-1], seg[1:]], axis=1)
                rgba = np.tile(to_rgba(_color(i)), (len(segments), 1))
                rgba[:, 3] = np.linspace(0.0, 1.0, len(segments) + 1)[1:]
                trail.set_segments(segments)
                trail.set_color(rgba)
        self.clock.set_text(f"t = {int(pos.steps[k])}")


def _writer(path: Path, fps: int):
    if path.suffix.lower() == ".mp4":
        if not manimation.writers.is_available("ffmpeg"):
            raise ValueError(f"cannot write {path.name}: ffmpeg is missing; write a .gif instead")
        return manimation.FFMpegWriter(fps=fps)
    return manimation.PillowWriter(fps=fps)


def animate(trajectories, path, *, labels=None, prompt: int = 0, fps: int = 20, frames: int | None = None,
            tail: int | None = None, dpi: int = 100) -> Path:
    """Write an animation of ``trajectories`` (one Trajectory or several; every configuration is a line) on the
    simplex to ``path`` and return it. GIF by default (PillowWriter); ``.mp4`` with ffmpeg (ValueError without).

    ``frames``: how many frames, taken evenly from the recorded steps with the first and the last (default: every
    recorded step). ``tail``: instead of the growing line, a dot with a fading tail over this many recorded steps.
    ``labels``: one legend entry per line. Non-3-action games raise the same ValueError as the plots.

    >>> from preference_games.algorithms import make
    >>> from preference_games.dynamics import simulate
    >>> from preference_games.games import rps_variant
    >>> import tempfile, pathlib
    >>> game = rps_variant(antisymmetrize=True)
    >>> runs = [simulate(make(name, tau=0.1), game, steps=30, lr=0.05) for name in ("online-ipo", "inpo")]
    >>> animate(runs, pathlib.Path(tempfile.mkdtemp()) / "both.gif", frames=5, tail=10).name
    'both.gif'
    """
    path = Path(path)
    if not (int(fps) == fps and fps > 0):
        raise ValueError(f"fps must be a positive integer; got {fps}")
    writer = _writer(path, int(fps))
    scene = Scene(trajectories, labels=labels, prompt=prompt, frames=frames, tail=tail)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writer.saving(scene.figure, str(path), dpi):
        for k in range(len(scene)):
            scene.draw(k)
            writer.grab_frame()
    return path
