"""`preference-games plot`: every kind writes a PNG and an SVG headless, bad input ends in one line and status 2, a
command run twice draws the same data, and the README's commands for the figures committed under docs/figures still
write valid files that draw what an independent run of the dynamics computes.

The figures are checked through their data — the matplotlib Figure that ``plot`` hands to ``plotting.save``: line
coordinates, marker positions, labels, captions, legend texts — never through file bytes. The bytes depend on more
than the data: torch picks different CPU kernels on different machines (with AVX-512 the last digit of some SVG
coordinates changes), and PNG pixels on the matplotlib and FreeType that rendered them."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Annotation

from preference_games import fixed_points, plotting
from preference_games.algorithms import make
from preference_games.cli import main
from preference_games.cli.plot import PLOT_KINDS, PLOT_STARTS
from preference_games.dynamics import simulate
from preference_games.equilibria import nash_lp, regularized_nash
from preference_games.games import random_intransitive, rps_variant
from preference_games.models import TabularLogits
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


def drawn(fig) -> dict:
    """What ``fig`` draws, as data: for every axes (colour bars included) its title, axis labels and scales, legend
    texts, texts with their positions (arrows are annotations), lines (gid, label, coordinates), collections (gid,
    path vertices, offsets, colour values) and patches (gid, outline: streamlines' arrow heads, the simplex); then the
    figure's own texts. ``np.testing.assert_equal`` compares two."""
    data = {}
    for a, ax in enumerate(fig.axes):
        legend = ax.get_legend()
        data[f"axes {a}"] = {
            "title": ax.get_title(),
            "axis labels and scales": [ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale(), ax.get_yscale()],
            "legend": [t.get_text() for t in legend.get_texts()] if legend is not None else None,
            "texts": [t.get_text() for t in ax.texts],
            "text positions": np.array([[*t.get_position(), *(t.xy if isinstance(t, Annotation) else (np.nan,) * 2)]
                                        for t in ax.texts]),
            "lines": [(line.get_gid(), line.get_label(), line.get_xydata()) for line in ax.get_lines()],
            "collections": [(c.get_gid(), [path.vertices for path in c.get_paths()], np.asarray(c.get_offsets()),
                             np.ma.getdata(c.get_array()) if c.get_array() is not None else None)
                            for c in ax.collections],
            "patches": [(patch.get_gid(), patch.get_path().vertices) for patch in ax.patches],
        }
    data["figure texts"] = [(t.get_gid(), t.get_text(), t.get_position()) for t in fig.texts]
    return data


@pytest.mark.parametrize(
    "argv",
    [
        ["contour", *QUICK["contour"]],
        ["contour", *RPS, "--metric", "kl", "--tau", "0.05"],
        ["field", *QUICK["field"], "--streamlines"],
    ],
    ids=["contour", "contour-kl", "field-streamlines"],
)
def test_new_paths_draw_the_same_data_twice(argv, tmp_path, capsys, saved):
    """Determinism: a command run twice in one process draws identical data (exactly: the same float64 arithmetic on
    the same machine), and writes valid files. The two runs' SVGs are also compared byte for byte: both were written
    on this machine by this matplotlib, so the CPU and the renderer cannot tell them apart, and what a difference would
    show is something ``save`` writes per run (a date, random element ids)."""
    for run in ("first", "second"):
        assert main(["plot", argv[0], "--out", str(tmp_path / run), *argv[1:]]) == 0
    assert capsys.readouterr().err == ""
    assert len(saved) == 2
    np.testing.assert_equal(drawn(saved[1]), drawn(saved[0]))
    check_png(tmp_path / "first" / f"{argv[0]}.png")
    first, second = (tmp_path / run / f"{argv[0]}.svg" for run in ("first", "second"))
    check_svg(first)
    assert first.read_bytes() == second.read_bytes()


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
        (["plot", "convergence", "--out", "X", "--algo", "online-ipo", "--lr", "-1", "--game", "rps"], "lr must be"),
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


#: Tolerances of the drawn data against the test's own run of the dynamics. Both are float64 runs of the same
#: arithmetic on the same machine, so they agree to round-off (measured: exactly, with torch's AVX2 and AVX-512
#: kernels alike); a different batching or summation order could move the last bits, which the contracting dynamics
#: keep far below these over hundreds of steps. What a figure could get wrong (a step size, a start, a β, a game)
#: moves the data by orders of magnitude more: the perturbation test below checks that these tolerances notice.
XY_ATOL = 1e-9  # plane coordinates of policies, all in [0, 1]
#: Gaps and KLs are drawn on log axes down to ~1e-19, so they are compared relatively; below METRIC_ATOL a value is
#: the round-off of cancelling O(1) terms (~1e-16) and carries no information.
METRIC_RTOL, METRIC_ATOL = 1e-9, 1e-14


def _lines(ax, gid):
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def check_figure9_draws_the_dynamics(fig, argv) -> None:
    """``plot figure9`` (no settings: the README's command) draws IPO-MD Figure 9 as the test computes it: one exact
    IPO-MD run per β ∈ {0, ¼, ½, ¾, 1} at τ = 0.1 on the repaired rock-paper-scissors variant (IPO-MD Appendix F),
    from (0.8, 0.1, 0.1) with lr 0.05 for 400 steps (``plot``'s documented figure9 defaults), each β's eq. 13 fixed
    point, the two equilibria, the legend, the corner labels and the caption."""
    assert argv[2:] == ["--out", argv[3]], argv  # any other flag would change what is drawn
    game, tau, start, lr, steps = rps_variant(antisymmetrize=True), 0.1, (0.8, 0.1, 0.1), 0.05, 400
    betas, labels = (0.0, 0.25, 0.5, 0.75, 1.0), ["β = 0", "β = 0.25", "β = 0.5", "β = 0.75", "β = 1"]
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts if t.get_text()] == ["rock", "scissors", "paper"]  # corners, as proj(p)
    paths = _lines(ax, "trajectory")
    assert [line.get_label() for line in paths] == labels
    for beta, path, dot, star in zip(betas, paths, _lines(ax, "start"), _lines(ax, "fixed-point"), strict=True):
        # one β per run: the figure batches them, this computation does not
        run = simulate(make("ipo-md", beta=beta, tau=tau), game, steps=steps, lr=lr,
                       policy=TabularLogits.from_log_probs(np.log([[start]])))
        np.testing.assert_allclose(path.get_xydata(), plotting.project(np.exp(run.log_probs[:, 0, 0])), rtol=0,
                                   atol=XY_ATOL, err_msg=f"β = {beta}")
        np.testing.assert_allclose(dot.get_xydata(), [plotting.project(start)], rtol=0, atol=XY_ATOL)
        fixed = fixed_points.ipo_md(game, tau, beta).probs[0]
        np.testing.assert_allclose(star.get_xydata(), [plotting.project(fixed)], rtol=0, atol=XY_ATOL)
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(arrows) == 3 * len(betas)
    for arrow in arrows:  # each along one step of a drawn path
        assert any(np.any((np.abs(xy[1:] - arrow.xy).max(axis=1) <= XY_ATOL)
                          & (np.abs(xy[:-1] - arrow.xyann).max(axis=1) <= XY_ATOL))
                   for xy in (path.get_xydata() for path in paths))
    (diamond,) = _lines(ax, "regularized-nash")
    np.testing.assert_allclose(diamond.get_xydata(), [plotting.project(regularized_nash(game, tau).policy.probs[0])],
                               rtol=0, atol=XY_ATOL)
    (cross,) = _lines(ax, "nash")
    np.testing.assert_allclose(cross.get_xydata(), [plotting.project(nash_lp(game).policy.probs[0])], rtol=0,
                               atol=XY_ATOL)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [*labels, "regularised NE (τ=0.1)",
                                                                   "unregularised NE"]
    (caption,) = [t.get_text() for t in fig.texts if t.get_gid() == "caption"]
    assert caption == plotting.FIGURE9_CAPTION.format(lr=0.05, steps=400, start="0.8, 0.1, 0.1", tau=0.1)


def check_convergence_draws_the_dynamics(fig, argv) -> None:
    """``plot convergence --algo A ... --tau T --game random --actions N --steps S`` draws, for every A in order, the
    duality gap and KL(π* ‖ π_t) for t = 1..S of the exact run the test computes: ``make(A, tau=T)`` (other
    parameters at their defaults) on the seed-0 random game with N actions at lr 0.1 (``plot``'s default --lr), each
    labelled with the algorithm and its parameters, on log–log axes."""
    def flag(name):
        return argv[argv.index(name) + 1]

    names = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--algo"]
    assert flag("--game") == "random" and set(argv[2::2]) == {"--algo", "--tau", "--game", "--actions", "--steps",
                                                              "--out"}, argv  # what the computation below covers
    game, tau, steps = random_intransitive(int(flag("--actions")), seed=0), float(flag("--tau")), int(flag("--steps"))
    gap_ax, kl_ax = fig.axes
    gaps, kls = _lines(gap_ax, "duality-gap"), _lines(kl_ax, "kl")
    assert len(gaps) == len(kls) == len(names)
    labels = []
    for name, gap, kl in zip(names, gaps, kls):
        algorithm = make(name, tau=tau)
        run = simulate(algorithm, game, steps=steps, lr=0.1)
        labels.append(algorithm.describe())
        for line, values in ((gap, run.duality_gap[1:, 0]), (kl, run.kl_from_fixed_point[1:, 0])):
            assert line.get_label() == labels[-1]
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, steps + 1))  # t = 0 has no place on log axes
            np.testing.assert_allclose(line.get_ydata(), values, rtol=METRIC_RTOL, atol=METRIC_ATOL,
                                       err_msg=f"{name}: {line.get_gid()}")
    for ax, ylabel in ((gap_ax, "duality gap"), (kl_ax, "KL(π* ‖ π_t)")):
        assert [ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale(), ax.get_yscale()] == ["iteration t", ylabel,
                                                                                      "log", "log"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == labels


CHECK_DRAWN = {"figure9": check_figure9_draws_the_dynamics, "convergence": check_convergence_draws_the_dynamics}


def _readme_command(stem, out) -> list[str]:
    argv = readme_plot_commands()[stem]
    argv[argv.index("--out") + 1] = str(out)
    return argv


@pytest.mark.parametrize("stem", ["figure9", "convergence"])
def test_committed_figures_draw_what_the_readme_command_computes(stem, tmp_path, capsys, saved):
    """The README's exact command still writes a valid PNG and SVG, and the figure it saves draws the data the test
    computes from the dynamics; the committed files are valid images. Their bytes are not compared (module docstring):
    after a change to what a figure draws, regenerate the files with the README's commands."""
    argv = _readme_command(stem, tmp_path)
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    for folder in (tmp_path, ROOT / "docs" / "figures"):
        check_png(folder / f"{stem}.png")
        check_svg(folder / f"{stem}.svg")
    (fig,) = saved
    CHECK_DRAWN[stem](fig, argv)


@pytest.mark.parametrize("stem", ["figure9", "convergence"])
@pytest.mark.parametrize("change", ["step size", "label"])
def test_the_committed_figure_checks_catch_a_wrong_figure(stem, change, tmp_path, capsys, saved, monkeypatch):
    """The checks above can fail: the README's command with every step size 1% larger, or with two lines' labels
    swapped, does not pass them."""
    if change == "step size":
        def larger_steps(*args, lr, **kwargs):
            return simulate(*args, lr=1.01 * lr, **kwargs)

        monkeypatch.setattr(plotting, "simulate", larger_steps)  # figure9_run's
        monkeypatch.setattr("preference_games.dynamics.simulate", larger_steps)  # the CLI's, imported when it runs
    assert main([*_readme_command(stem, tmp_path), "--formats", "svg"]) == 0
    capsys.readouterr()
    (fig,) = saved
    if change == "label":
        first, second = fig.axes[0].get_lines()[:2] if stem == "convergence" else _lines(fig.axes[0], "trajectory")[:2]
        label = first.get_label()
        first.set_label(second.get_label())
        second.set_label(label)
    with pytest.raises(AssertionError):
        CHECK_DRAWN[stem](fig, _readme_command(stem, tmp_path))
