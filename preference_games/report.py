"""The demo report: one self-contained HTML page of what the library computes on its built-in games.

:func:`build_report` solves every built-in game (regularised and unregularised equilibria with their certificates),
runs every registered algorithm on the IPO-MD Appendix F game and compares where it is after a fixed budget of
steps with the fixed point its paper predicts, draws Figure 9, an exact vector field and a convergence plot, and runs
the theorem checks of ``preference-games verify`` on the named games and a few random ones. The
figures are embedded as base64 PNG, so the page is one file that can be mailed or attached; they are also written
next to it as PNG. Numbers come from the same functions the CLI and the tests use; nothing here is computed twice.

>>> import tempfile, pathlib
>>> report = build_report(pathlib.Path(tempfile.mkdtemp()), algorithm_steps=20)   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__, bounds, plotting
from .algorithms import make, names
from .dynamics import simulate
from .equilibria import nash_lp, regularized_nash
from .games import by_name, named_games, rps_variant
from .policies import policy_lists
from .tabular import facts

#: The temperature at which the built-in games are solved.
DEMO_TAU = 0.1
#: Exact steps each algorithm gets in the report (closed-form maps take the same number of iterations).
ALGORITHM_STEPS = 600
#: Learning rate of the gradient-based algorithms in the report: stable for every registered algorithm at τ = 0.1 on
#: the Appendix F game (the IPO family's largest stable step there is ≈ 0.28; docs/algorithms.md).
ALGORITHM_LR = 0.05
#: Random games the demo's theorem checks run on, besides the named ones (``verify`` itself defaults to 200).
VERIFY_GAMES = 20


@dataclass(frozen=True)
class GameRow:
    game: str
    actions: int
    tau: float
    regularised_policy: list
    regularised_gap: float
    kl_to_ref: float
    lp_policy: list
    lp_gap: float
    lp_support: int
    lp_unique: bool


@dataclass(frozen=True)
class AlgorithmRow:
    algorithm: str
    mode: str
    steps: int
    final_policy: list
    fixed_point_kind: str
    max_abs_diff_to_fixed_point: float | None  # None where the fixed point is numerical


def solve_builtin_games(tau: float = DEMO_TAU) -> list[GameRow]:
    """Every built-in game solved at τ and at τ = 0, with the certificates of the returned policies."""
    rows = []
    for name in named_games():
        # The printed Appendix F matrix is not constant-sum; the demo uses its (P − Pᵀ + 1)/2 repair and says so.
        game = by_name(name, antisymmetrize=name == "rps-variant")
        regularised = regularized_nash(game, tau)
        lp = nash_lp(game)
        rows.append(
            GameRow(
                game=name,
                actions=game.num_actions,
                tau=tau,
                regularised_policy=policy_lists(regularised.policy.probs),
                regularised_gap=regularised.duality_gap,
                kl_to_ref=game.expected(regularised.policy.kl(game.ref)),
                lp_policy=policy_lists(lp.policy.probs),
                lp_gap=lp.duality_gap,
                lp_support=int((lp.policy.probs > 0).sum()),
                lp_unique=bool(lp.unique.all()),
            )
        )
    return rows


def run_every_algorithm(steps: int = ALGORITHM_STEPS, lr: float = ALGORITHM_LR) -> list[AlgorithmRow]:
    """Every registered algorithm with its default parameters on the Appendix F game for ``steps`` steps (exact
    mode), against its stated fixed point. Rows name each algorithm by its registry name (what ``--algo`` takes:
    ``bpo``), not by ``Algorithm.name``, which folds the loss into the name (``bpo-ipo``)."""
    game = rps_variant(antisymmetrize=True)
    rows = []
    for name in names():
        algorithm = make(name)
        label = name + algorithm.describe().removeprefix(algorithm.name)  # "(tau=0.1, ...)" after the name
        known = facts(algorithm)
        mode = "exact"
        every = 1 if known.average_iterate else steps  # an average of the iterates needs all of them recorded
        run = simulate(algorithm, game, steps=steps, mode=mode, lr=lr, record_every=every)
        final = run.average() if known.average_iterate else run.final
        fixed = run.fixed_point
        diff = None if fixed is None else float(np.abs(final - np.exp(fixed)).max())
        rows.append(AlgorithmRow(label, mode, steps, final[0, 0].tolist(), known.fixed_point_kind,
                                 diff))  # fmt: skip
    return rows


def _figures(steps: int) -> dict:
    """Figure 9, the exact vector field of IPO-MD(½) and a convergence plot, as matplotlib Figures."""
    game = rps_variant(antisymmetrize=True)
    figure9 = plotting.plot_figure9(plotting.figure9_run())
    field = plotting.plot_vector_field(plotting.vector_field(make("ipo-md", beta=0.5, tau=0.1), game, resolution=10))
    inpo = simulate(make("inpo", eta=1.0), game, steps=steps, mode="closed-form")
    inpo_t4 = simulate(make("inpo", schedule="theorem-4"), game, steps=steps, mode="closed-form")
    runs = [simulate(make("online-ipo"), game, steps=steps, lr=ALGORITHM_LR), inpo, inpo_t4]
    convergence = plotting.plot_convergence(
        runs,
        labels=["online IPO", "INPO, η = 1", "INPO, η_t = τ(t+2)/2"],
        average=True,
        gap_bounds={"INPO Thm. 3 bound (η = 1)": bounds.inpo_theorem3_bound(inpo)[1:]},
        kl_bounds={"INPO Thm. 4 bound": bounds.inpo_theorem4_bound(inpo_t4)[1:]},
    )
    return {"figure9": figure9, "vector-field": field, "convergence": convergence}


def theorem_checks(games: int) -> list[dict]:
    """Every check of ``preference-games verify`` on the named games and ``games`` random ones (seed 0), as the
    dicts ``verify --json`` prints. At 20 random games they take about 20 s and reach the verdicts of the full run."""
    from .verify import Suite, checks, run_checks

    return [r.as_dict() for r in run_checks(checks(), Suite(games=games))]


@dataclass(frozen=True)
class Report:
    page: Path  # the self-contained HTML page
    games: list[GameRow]
    algorithms: list[AlgorithmRow]
    theorems: list[dict]  # one ``verify --json`` object per check


def output_folder(out) -> Path:
    """``out`` as a Path if it is a folder that can be written into, or can be created as one; else a one-line
    ``ValueError``. Creates nothing: commands call it before any work, so a bad folder costs no time and leaves no
    trace (``demo``, ``plot`` and :func:`build_report`)."""
    out = Path(out)
    # The folder itself if it exists, else its nearest existing ancestor, where it would be created (the walk stops
    # at the root, or at "." for a relative path, which exist).
    existing = next(p for p in (out, *out.parents) if p.exists() or p == p.parent)
    if existing == out and not out.is_dir():
        raise ValueError(f"{out} is an existing file, not a folder")
    if not existing.is_dir():
        raise ValueError(f"cannot create the folder {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into {existing}: permission denied")
    return out


def build_report(out: Path, *, algorithm_steps: int | None = None, verify_games: int | None = None) -> Report:
    """Write ``out/report.html`` (self-contained) and the figures as PNG into ``out``; return the page's path and
    the tables it shows. ``algorithm_steps``: each algorithm's budget (default ``ALGORITHM_STEPS``);
    ``verify_games``: random games for the theorem checks (default ``VERIFY_GAMES``)."""
    algorithm_steps = ALGORITHM_STEPS if algorithm_steps is None else algorithm_steps
    verify_games = VERIFY_GAMES if verify_games is None else verify_games
    out = output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    games = solve_builtin_games()
    algorithms = run_every_algorithm(algorithm_steps)
    theorems = theorem_checks(verify_games)
    images = {}
    for name, figure in _figures(algorithm_steps).items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        (out / f"{name}.png").write_bytes(buffer.getvalue())
        images[name] = base64.b64encode(buffer.getvalue()).decode("ascii")
    page = out / "report.html"
    page.write_text(_html(games, algorithms, images, theorems, verify_games), encoding="utf-8")
    return Report(page, games, algorithms, theorems)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return html.escape(np.array2string(np.asarray(value), precision=4, separator=", "))
    return html.escape(str(value))


def _table(rows, columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{'—' if getattr(row, key) is None else _cell(getattr(row, key))}</td>"
                         for _, key in columns) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _theorem_table(theorems: list[dict]) -> str:
    head = "".join(f"<th>{t}</th>" for t in ("result", "paper, location", "verdict", "worst error", "tolerance",
                                               "measured; counterexample; correction"))
    body = ""
    for t in theorems:
        notes = "; ".join(html.escape(t[k]) for k in ("measured", "counterexample", "correction") if t[k])
        body += (f"<tr><td>{html.escape(t['name'])}</td><td>{html.escape(t['paper'] + ', ' + t['location'])}</td>"
                 f"<td class='{t['verdict']}'>{t['verdict']}</td><td>{_cell(t['worst_error'])}</td>"
                 f"<td>{_cell(t['tolerance'])}</td><td style='text-align:left'>{notes}</td></tr>")
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(games: list[GameRow], algorithms: list[AlgorithmRow], images: dict, theorems: list[dict],
          verify_games: int) -> str:
    figure = lambda name, caption: (  # noqa: E731
        f'<figure><img alt="{name}" src="data:image/png;base64,{images[name]}"><figcaption>{caption}</figcaption></figure>'
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>preference-games {__version__}: demo report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}
.fails{{color:#b00}}.holds-with-correction{{color:#a60}}.error{{color:#b00;font-weight:bold}}</style></head><body>
<h1>preference-games {__version__}: demo report</h1>
<h2>Built-in games</h2>
<p>Regularised equilibria at τ = {DEMO_TAU} and unregularised (τ = 0) equilibria by linear programming. Every gap is
the duality gap of the returned policy (its certificate). The Appendix F game of the IPO-MD paper is its printed
matrix repaired to (P − Pᵀ + 1)/2: the printed one is not constant-sum.</p>
{_table(games, [("game", "game"), ("actions", "actions"), ("regularised equilibrium", "regularised_policy"),
                ("its gap", "regularised_gap"), ("KL to π_ref", "kl_to_ref"), ("LP equilibrium", "lp_policy"),
                ("LP gap", "lp_gap"), ("support", "lp_support"), ("unique", "lp_unique")])}
<h2>Every algorithm on the Appendix F game</h2>
<p>Default parameters (τ = 0.1), {algorithms[0].steps} steps, learning rate {ALGORITHM_LR} for gradient-based
algorithms; SPPO is compared through the average of its iterates. "—": the fixed point is numerical (the dynamics
run to stationarity define it), so there is nothing closed-form to compare with. A large difference after this
budget means slow or cycling dynamics, not a wrong fixed point: see docs/algorithms.md.</p>
{_table(algorithms, [("algorithm", "algorithm"), ("mode", "mode"), ("final policy", "final_policy"),
                     ("fixed point", "fixed_point_kind"), ("max |π − fixed point|", "max_abs_diff_to_fixed_point")])}
<h2>Figures</h2>
{figure("figure9", "IPO-MD Figure 9 (Appendix F): trajectories for β ∈ {0, 0.25, 0.5, 0.75, 1}, stars at eq. 13.")}
{figure("vector-field", "One exact IPO-MD(0.5) step from every point of a grid: the dynamics' vector field.")}
{figure("convergence", "Duality gap (solid: last iterate; dotted: average of the iterates) and KL to the fixed "
         "point against iterations, log–log, with INPO's Theorem 3 and Theorem 4 bounds (paper's constants, B "
         "measured on the trajectory): both hold, by orders of magnitude.")}
<h2>Theorem checks</h2>
<p>The checks of <code>preference-games verify</code> on the named games and {verify_games} seeded random games (<code>preference-games verify</code> uses 200). "fails"
is a finding about the paper, with its counterexample; docs/theorems.md explains each check.</p>
{_theorem_table(theorems)}
</body></html>
"""
