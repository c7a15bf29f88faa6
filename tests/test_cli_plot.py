"""`preference-games plot`: every kind writes a PNG and an SVG headless, bad input ends in one line and status 2, and
the figures committed under docs/figures are what the README's commands produce, byte for byte."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from preference_games import plotting
from preference_games.cli import PLOT_KINDS, PLOT_STARTS, main
from test_cli import run_error, run_json

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RPS = ["--game", "rps-variant", "--antisymmetrize"]
#: Every kind, as cheaply as it runs (few steps): the figure is drawn all the same.
QUICK = {
    "figure9": ["--steps", "20"],
    "dynamics": ["--algo", "online-ipo", "--algo", "ipo-md", "--tau", "0.1", *RPS, "--steps", "20"],
    "field": ["--algo", "ipo-md", *RPS],
    "contour": ["--algo", "online-ipo", "--tau", "0.1", *RPS, "--steps", "20"],
    "convergence": ["--algo", "online-ipo", "--algo", "inpo", "--tau", "0.1", "--game", "random", "--actions", "5",
                    "--steps", "20"],
    "tau-path": RPS,
}


def check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, path


def check_svg(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>"), path
    assert "dc:date" not in text and "Matplotlib v" not in text  # no date, no version: reproducible


# ------------------------------------------------------------------------------------------------ every kind
def test_every_kind_has_a_quick_case():
    assert set(QUICK) == set(PLOT_KINDS)


@pytest.mark.parametrize("kind", PLOT_KINDS)
def test_every_kind_writes_png_and_svg(kind, tmp_path, capsys):
    out = tmp_path / "new" / "folder"  # created if needed
    assert main(["plot", kind, "--out", str(out), *QUICK[kind]]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    expected = [out / f"{kind}.png", out / f"{kind}.svg"]
    assert captured.out.splitlines() == [str(p) for p in expected]
    check_png(expected[0])
    check_svg(expected[1])


def test_json_lists_the_written_files(tmp_path, capsys):
    report = run_json(capsys, "plot", "dynamics", "--out", str(tmp_path), *QUICK["dynamics"], "--json")
    assert report["files"] == [str(tmp_path / "dynamics.png"), str(tmp_path / "dynamics.svg")]
    assert report["kind"] == "dynamics" and report["game"] == "rps-variant" and report["steps"] == 20
    # --tau goes to both, --beta to nobody: ipo-md keeps its default
    assert report["algorithms"] == ["online-ipo(tau=0.1)", "ipo-md(beta=0.5, tau=0.1)"]
    assert all(Path(f).stat().st_size > 0 for f in report["files"])


def test_formats_selects_the_files(tmp_path, capsys):
    report = run_json(capsys, "plot", "tau-path", "--out", str(tmp_path), *RPS, "--formats", "svg", "--json")
    assert report["files"] == [str(tmp_path / "tau-path.svg")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tau-path.svg"]


# ------------------------------------------------------------------------------------- contour, streamlines
@pytest.fixture
def saved(monkeypatch):
    """The figures ``plot`` saves, in order (the files are still written)."""
    figures = []
    save = plotting.save

    def recording(fig, *args, **kwargs):
        figures.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(plotting, "save", recording)
    return figures


def _gids(fig):
    ax = fig.axes[0]
    return [artist.get_gid() for artist in [*ax.get_lines(), *ax.collections]]


@pytest.mark.parametrize(
    "argv",
    [
        ["contour", *QUICK["contour"]],
        ["contour", *RPS, "--metric", "kl", "--tau", "0.05"],
        ["field", *QUICK["field"], "--streamlines"],
    ],
    ids=["contour", "contour-kl", "field-streamlines"],
)
def test_new_paths_are_reproducible_byte_for_byte(argv, tmp_path, capsys):
    for run in ("first", "second"):
        assert main(["plot", argv[0], "--out", str(tmp_path / run), *argv[1:]]) == 0
    assert capsys.readouterr().err == ""
    for suffix, check in (("png", check_png), ("svg", check_svg)):
        first, second = (tmp_path / run / f"{argv[0]}.{suffix}" for run in ("first", "second"))
        check(first)
        assert first.read_bytes() == second.read_bytes(), first.name


def test_contour_json_and_what_it_draws(tmp_path, capsys, saved):
    report = run_json(capsys, "plot", "contour", "--out", str(tmp_path), *QUICK["contour"], "--json")
    assert report["files"] == [str(tmp_path / "contour.png"), str(tmp_path / "contour.svg")]
    assert report["kind"] == "contour" and report["game"] == "rps-variant"
    assert report["metric"] == "gap" and report["tau"] == 0.1 and report["steps"] == 20
    assert report["algorithms"] == ["online-ipo(tau=0.1)"] and report["starts"] == [list(s) for s in PLOT_STARTS]
    gids = _gids(saved[-1])
    assert gids.count("contours") == 1 and gids.count("trajectory") == len(PLOT_STARTS)
    assert "regularized-nash" in gids and "nash" in gids
    starts = [line.get_xydata()[0] for line in saved[-1].axes[0].get_lines() if line.get_gid() == "trajectory"]
    np.testing.assert_allclose(starts, plotting.project(np.array(PLOT_STARTS)), atol=1e-12)
    # without --algo: the shading and both equilibria, no dynamics; τ defaults to 0.1
    report = run_json(capsys, "plot", "contour", "--out", str(tmp_path), *RPS, "--metric", "kl", "--json")
    assert report == {"files": report["files"], "kind": "contour", "game": "rps-variant", "metric": "kl", "tau": 0.1}
    gids = _gids(saved[-1])
    assert "contours" in gids and "regularized-nash" in gids and "nash" in gids and "trajectory" not in gids


@pytest.mark.parametrize(
    "flags, tau, algorithm",
    [
        (["--algo", "ipo-md", "--beta", "0.25"], 0.1, "ipo-md(beta=0.25, tau=0.1)"),  # the algorithm's τ
        (["--algo", "online-ipo", "--tau", "0.3"], 0.3, "online-ipo(tau=0.3)"),
        (["--algo", "iterative-dpo"], 0.0, "iterative-dpo(eta=0.5, inner_steps=100)"),  # plays the τ = 0 game
        (["--algo", "iterative-dpo", "--tau", "0.2"], 0.2, "iterative-dpo(eta=0.5, inner_steps=100)"),  # τ: contours
    ],
)
def test_contour_tau_comes_from_tau_or_the_algorithm(flags, tau, algorithm, tmp_path, capsys):
    report = run_json(capsys, "plot", "contour", "--out", str(tmp_path), *RPS, *flags, "--steps", "5",
                      "--formats", "svg", "--json")
    assert report["tau"] == tau and report["algorithms"] == [algorithm]


def test_field_streamlines_replace_the_arrows(tmp_path, capsys, saved):
    report = run_json(capsys, "plot", "field", "--out", str(tmp_path), *QUICK["field"], "--streamlines",
                      "--formats", "svg", "--json")
    assert report["streamlines"] is True and report["files"] == [str(tmp_path / "field.svg")]
    assert "streamlines" in _gids(saved[-1]) and "vector-field" not in _gids(saved[-1])
    report = run_json(capsys, "plot", "field", "--out", str(tmp_path), *QUICK["field"], "--formats", "svg", "--json")
    assert report["streamlines"] is False  # arrows stay the default
    assert "vector-field" in _gids(saved[-1]) and "streamlines" not in _gids(saved[-1])


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kind", ["dynamics", "field", "contour", "tau-path"])
def test_four_action_game_for_a_simplex_plot_is_rejected(kind, tmp_path, capsys):
    algo = [] if kind == "tau-path" else ["--algo", "online-ipo"]
    line = run_error(capsys, "plot", kind, "--out", str(tmp_path), *algo, "--game", "random", "--actions", "4")
    assert "3-action" in line and "4 actions" in line and "convergence" in line
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["plot", "histogram", "--out", "X"], "invalid choice"),
        (["plot", "figure9"], "--out"),
        (["plot", "convergence", "--out", "X", "--algo", "no-such-algo", "--game", "rps"], "unknown algorithm"),
        (["plot", "dynamics", "--out", "X", "--algo", "online-ipo", "--algo", "no-such-algo", "--game", "rps"],
         "unknown algorithm"),
        (["plot", "dynamics", "--out", "X", *RPS], "--algo"),
        (["plot", "convergence", "--out", "X", "--algo", "online-ipo"], "needs a game"),
        (["plot", "field", "--out", "X", "--algo", "online-ipo", "--algo", "ipo-md", *RPS], "one --algo"),
        (["plot", "figure9", "--out", "X", "--game", "rps"], "fixed settings"),
        (["plot", "tau-path", "--out", "X", "--algo", "online-ipo", *RPS], "do not apply"),
        (["plot", "convergence", "--out", "X", "--algo", "online-ipo", "--beta", "0.5", "--game", "rps"], "beta"),
        (["plot", "convergence", "--out", "X", "--algo", "online-ipo", "--algo", "rlhf", "--beta", "0.5",
          "--game", "rps"], "beta"),
        (["plot", "convergence", "--out", "X", "--algo", "online-ipo", "--steps", "0", "--game", "rps"], "--steps"),
        (["plot", "convergence", "--out", "X", "--algo", "online-ipo", "--lr", "-1", "--game", "rps"], "--lr"),
        (["plot", "tau-path", "--out", "X", *RPS, "--formats", "png,jpg"], "--formats"),
        (["plot", "field", "--out", "X", "--algo", "ipo-md", *RPS, "--steps", "5"], "--steps"),
        (["plot", "contour", "--out", "X", *RPS, "--metric", "entropy"], "invalid choice"),
        (["plot", "contour", "--out", "X", *RPS, "--metric", "kl", "--tau", "0"], "tau > 0"),
        (["plot", "contour", "--out", "X", *RPS, "--tau", "-1"], "--tau"),
        (["plot", "contour", "--out", "X", *RPS, "--steps", "5"], "do not apply"),
        (["plot", "contour", "--out", "X", *RPS, "--algo", "online-ipo", "--algo", "ipo-md"], "one --algo"),
        (["plot", "contour", "--out", "X", "--algo", "online-ipo"], "needs a game"),
        (["plot", "dynamics", "--out", "X", "--algo", "online-ipo", *RPS, "--metric", "gap"], "--metric"),
        (["plot", "tau-path", "--out", "X", *RPS, "--streamlines"], "--streamlines"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = run_error(capsys, *argv)
    assert needle in line, line
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ committed figures
def readme_plot_commands() -> dict[str, list[str]]:
    """The `preference-games plot` commands of the README's Figures section, by the file stem they write."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Figures", 1)[1].split("\n## ", 1)[0]
    commands = {}
    for line in re.findall(r"^preference-games plot .*$", section, flags=re.MULTILINE):
        argv = shlex.split(line)[1:]
        commands[argv[1]] = argv
    return commands


def test_readme_shows_the_committed_figures():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = readme_plot_commands()
    assert set(commands) == {"figure9", "convergence"}
    for stem, argv in commands.items():
        assert argv[argv.index("--out") + 1] == "docs/figures"
        assert f"](docs/figures/{stem}.png)" in text


@pytest.mark.parametrize("stem", ["figure9", "convergence"])
def test_committed_figures_are_reproducible_byte_for_byte(stem, tmp_path, capsys):
    """Re-running the README's exact command gives the committed files. PNG bytes also depend on the matplotlib and
    FreeType that rendered them: after an upgrade, regenerate the files with the README commands."""
    argv = readme_plot_commands()[stem]
    argv[argv.index("--out") + 1] = str(tmp_path)
    assert main(argv) == 0
    capsys.readouterr()
    for suffix in ("png", "svg"):
        committed = ROOT / "docs" / "figures" / f"{stem}.{suffix}"
        fresh = tmp_path / f"{stem}.{suffix}"
        assert fresh.read_bytes() == committed.read_bytes(), f"{committed} differs from a fresh run of the README"
    check_png(tmp_path / f"{stem}.png")
    check_svg(tmp_path / f"{stem}.svg")
