"""The animation layer: GIFs on disk with the requested frames, drawn data equal to the recorded policies (bitwise),
frame subsampling with the first and last step, shorter runs held at their end, and the clear errors."""

import numpy as np
import pytest
from PIL import Image

from preference_games import animation as an
from preference_games.algorithms import make
from preference_games.dynamics import simulate
from preference_games.games import random_intransitive, rps_variant
from preference_games.plotting import project

GAME = rps_variant(antisymmetrize=True)


@pytest.fixture(scope="module")
def runs():
    """Two algorithms, three lines, different lengths: IPO-MD β ∈ {0, 1} for 30 steps, online IPO for 20."""
    long = simulate(make("ipo-md", beta=np.array([0, 1.0])), GAME, steps=30, lr=0.05)
    short = simulate(make("online-ipo", tau=0.1), GAME, steps=20, lr=0.05)
    return [long, short]


def _final_xy(run, c, prompt=0):
    return project(np.exp(run.log_probs[-1, c, prompt]))


def test_gif_is_written_with_the_requested_number_of_frames(runs, tmp_path):
    path = an.animate(runs, tmp_path / "sub" / "runs.gif", frames=7, fps=10)
    assert path == tmp_path / "sub" / "runs.gif"
    data = path.read_bytes()
    assert len(data) > 0 and data.startswith(b"GIF8")
    with Image.open(path) as image:
        assert image.n_frames == 7


def test_tail_mode_writes_a_gif_too(runs, tmp_path):
    path = an.animate(runs, tmp_path / "tail.gif", frames=4, tail=5, labels=["a", "b", "c"])
    with Image.open(path) as image:
        assert image.n_frames == 4


def test_last_frame_draws_exactly_the_final_recorded_policies(runs):
    positions = an.frame_positions(runs, frames=5)
    lines = [(run, c) for run in runs for c in range(run.log_probs.shape[1])]
    assert [(id(r), c) for r, c in positions.lines] == [(id(r), c) for r, c in lines]
    for i, (run, c) in enumerate(lines):
        np.testing.assert_array_equal(positions.xy[-1, i], _final_xy(run, c))  # shorter run: held at its end
    scene = an.Scene(runs, frames=5)
    scene.draw(len(scene) - 1)
    for i, (run, c) in enumerate(lines):
        x, y = scene.dots[i].get_data()
        np.testing.assert_array_equal(np.array([x[0], y[0]]), _final_xy(run, c))
        trail = np.column_stack(scene.trails[i].get_data())
        np.testing.assert_array_equal(trail, project(np.exp(run.log_probs[:, c, 0])))  # the whole recorded path
    tail = an.Scene(runs, frames=5, tail=3)
    tail.draw(len(tail) - 1)
    for i, (run, c) in enumerate(lines):
        segments = tail.trails[i].get_segments()
        assert len(segments) == 3
        np.testing.assert_array_equal(segments[-1][-1], _final_xy(run, c))


def test_every_frame_shows_a_recorded_policy_and_shorter_runs_stop(runs):
    positions = an.frame_positions(runs, frames=6)
    for k, step in enumerate(positions.steps):
        for i, (run, c) in enumerate(positions.lines):
            t = positions.index[k, i]
            assert run.steps[t] == min(step, run.steps[-1])
            np.testing.assert_array_equal(positions.xy[k, i], project(np.exp(run.log_probs[t, c, 0])))


def test_subsampling_is_even_and_keeps_first_and_last(runs):
    positions = an.frame_positions(runs, frames=4)
    assert positions.steps.tolist() == [0, 10, 20, 30]
    assert len(an.frame_positions(runs).steps) == 31  # default: every recorded step
    assert len(an.frame_positions(runs, frames=100).steps) == 31
    for count in range(2, 40):
        for frames in range(2, count + 1):
            idx = an.subsample(count, frames)
            assert len(idx) == frames and idx[0] == 0 and idx[-1] == count - 1
            assert np.all(np.diff(idx) >= 1)
            assert np.ptp(np.diff(idx)) <= 1  # even: gaps differ by at most one
    with pytest.raises(ValueError, match="frames"):
        an.subsample(10, 1)


def test_four_action_game_raises_like_plotting(tmp_path):
    run = simulate(make("online-ipo", tau=0.1), random_intransitive(4), steps=3, lr=0.05)
    with pytest.raises(ValueError, match="3-action game.*4 actions"):
        an.animate(run, tmp_path / "four.gif", frames=2)
    assert not (tmp_path / "four.gif").exists()


def test_mp4_without_ffmpeg_raises_a_clear_error(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(an.manimation.writers, "is_available", lambda name: False)
    with pytest.raises(ValueError, match=r"ffmpeg is missing.*\.gif") as error:
        an.animate(runs, tmp_path / "runs.mp4", frames=3)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "runs.mp4").exists()


def test_bad_labels_and_tail_are_rejected(runs, tmp_path):
    with pytest.raises(ValueError, match="labels"):
        an.animate(runs, tmp_path / "x.gif", labels=["only one"], frames=2)
    with pytest.raises(ValueError, match="tail"):
        an.animate(runs, tmp_path / "x.gif", tail=0, frames=2)
