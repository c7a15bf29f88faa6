"""The demo report: a self-contained page whose numbers are the library's."""

import base64
import re

import numpy as np
import pytest

from preference_games.algorithms import names
from preference_games.equilibria import regularized_nash
from preference_games.games import rps_variant
from preference_games.report import build_report, run_every_algorithm, solve_builtin_games


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One small report for the tests that read it (a report runs every theorem check, which takes seconds)."""
    out = tmp_path_factory.mktemp("report")
    return out, build_report(out, algorithm_steps=10, verify_games=2)


def test_report_is_one_self_contained_page_with_every_game_algorithm_and_figure(built):
    tmp_path, report = built
    text = report.page.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3 and all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert 'src="http' not in text and "<link" not in text  # nothing fetched from elsewhere
    for name in names():
        assert name in text
    for figure in ("figure9", "vector-field", "convergence"):
        assert (tmp_path / f"{figure}.png").read_bytes().startswith(b"\x89PNG")


def test_report_summarises_the_theorem_checks_with_their_verdicts(built):
    from preference_games.verify import checks

    _, report = built
    assert [t["name"] for t in report.theorems] == [c.name for c in checks()]
    text = report.page.read_text(encoding="utf-8")
    for t in report.theorems:
        assert t["verdict"] in ("holds", "fails", "holds-with-correction")
        assert f"<td>{t['name']}</td>" in text and f"<td class='{t['verdict']}'>{t['verdict']}</td>" in text


def test_report_numbers_are_the_libraries():
    row = next(r for r in solve_builtin_games() if r.game == "rps-variant")
    expected = regularized_nash(rps_variant(antisymmetrize=True), 0.1)
    np.testing.assert_array_equal(row.regularised_policy, expected.policy.probs[0].tolist())
    assert row.regularised_gap == expected.duality_gap


def test_algorithm_table_compares_with_the_stated_fixed_point():
    rows = {row.algorithm.split("(")[0]: row for row in run_every_algorithm(steps=400)}
    assert len(rows) == len(names())  # one row per registered algorithm
    assert rows["online-ipo"].max_abs_diff_to_fixed_point < 1e-10  # converged within the budget
    assert rows["online-dpo"].max_abs_diff_to_fixed_point is None  # numerical on a non-Bradley-Terry game


def test_demo_out_writes_the_report(tmp_path, capsys, monkeypatch, short_transformer_demo):
    from preference_games import report
    from preference_games.cli import main

    monkeypatch.setattr(report, "ALGORITHM_STEPS", 10)
    monkeypatch.setattr(report, "VERIFY_GAMES", 2)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'demo' / 'report.html'}" in out and "Theorem checks" in out
    assert (tmp_path / "demo" / "report.html").stat().st_size > 0
