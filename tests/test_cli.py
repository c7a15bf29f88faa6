"""The command line: the numbers it prints are the library's, and every bad input ends in one line and status 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from preference_games.cli import EXIT_BAD_INPUT, main
from preference_games.equilibria import nash_lp, regularized_nash
from preference_games.games import IPO_MD_FIGURE9_PRINTED, by_name, rps_variant


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def run_error(capsys, *argv) -> str:
    assert main(list(argv)) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err  # one line, never a traceback
    return lines[0]


def test_solve_rps_variant_repaired_reaches_certified_equilibrium(capsys):
    """The issue's acceptance call: the equilibrium with gap ≤ 1e-12, equal to the library's own solve."""
    out = run_json(capsys, "solve", "--game", "rps-variant", "--tau", "0.1", "--antisymmetrize", "--json")
    assert out["duality_gap"] <= 1e-12
    expected = regularized_nash(rps_variant(antisymmetrize=True), 0.1).policy.probs[0]
    np.testing.assert_allclose(out["policy"], expected, rtol=0, atol=1e-15)
    assert set(out) >= {"policy", "duality_gap", "kl_to_ref", "unregularized_gap", "exploitability"}
    assert out["unregularized_gap"] == pytest.approx(2 * out["exploitability"], rel=1e-12)


def test_solve_rps_variant_without_repair_names_the_offending_pairs(capsys):
    message = run_error(capsys, "solve", "--game", "rps-variant", "--tau", "0.1")
    assert "P[0, 1] + P[1, 0] = 0.9" in message and "P[1, 2] + P[2, 1] = 0.9" in message
    assert "--antisymmetrize" in message


def test_python_dash_m_entry_point_prints_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "preference_games", "solve", "--game", "rps-variant", "--tau", "0.1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in result.stderr and "not constant-sum" in result.stderr


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".json"])
def test_matrix_files_in_every_format_give_the_same_answer(tmp_path, capsys, suffix):
    P = np.array(IPO_MD_FIGURE9_PRINTED)
    path = tmp_path / f"P{suffix}"
    if suffix == ".npy":
        np.save(path, P)
    elif suffix == ".csv":
        np.savetxt(path, P, delimiter=",")
    else:
        path.write_text(json.dumps(P.tolist()))
    out = run_json(capsys, "solve", "--matrix", str(path), "--tau", "0.1", "--antisymmetrize", "--json")
    np.testing.assert_allclose(out["policy"], regularized_nash(rps_variant(antisymmetrize=True), 0.1).policy.probs[0],
                               atol=1e-14)
    message = run_error(capsys, "solve", "--matrix", str(path), "--tau", "0.1")
    assert "P[0, 1] + P[1, 0] = 0.9" in message


def test_reference_file_with_zeros_restricts_the_support(tmp_path, capsys):
    ref = tmp_path / "ref.json"
    ref.write_text("[0.5, 0.5, 0.0]")
    out = run_json(capsys, "solve", "--game", "rps", "--ref", str(ref), "--tau", "0.1", "--json")
    assert out["policy"][2] == 0.0
    assert out["duality_gap"] <= 1e-12
    # Without scissors, paper beats rock surely: the LP equilibrium is pure paper.
    out = run_json(capsys, "solve", "--game", "rps", "--ref", str(ref), "--tau", "0", "--json")
    assert out["policy"] == [0.0, 1.0, 0.0] and out["unique"] == [True]


def test_contextual_matrix_stack_gives_one_policy_per_prompt(tmp_path, capsys):
    stack = np.stack([by_name("rps").P[0], by_name("biased-rps").P[0]])
    path = tmp_path / "stack.npy"
    np.save(path, stack)
    out = run_json(capsys, "solve", "--matrix", str(path), "--tau", "0", "--json")
    assert out["num_prompts"] == 2
    np.testing.assert_allclose(out["policy"], [[1 / 3] * 3, [1 / 6, 1 / 3, 1 / 2]], atol=1e-12)


def test_tau_zero_reports_uniqueness_and_the_selection(capsys):
    out = run_json(capsys, "solve", "--game", "cyclic", "--actions", "4", "--tau", "0", "--json")
    assert out["unique"] == [False] and out["selection"] == "max-entropy"
    assert out["duality_gap"] <= 1e-9
    np.testing.assert_allclose(out["policy"], nash_lp(by_name("cyclic", actions=4)).policy.probs[0], atol=0)


def test_human_readable_output_shows_policy_and_certificate(capsys):
    assert main(["solve", "--game", "biased-rps", "--tau", "0"]) == 0
    text = capsys.readouterr().out
    assert "0.16666667" in text and "0.50000000" in text and "unique" in text


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["solve", "--game", "rps", "--tau", "-1"], "tau must be"),
        (["solve", "--game", "rps", "--tau", "nan"], "tau must be"),
        (["solve", "--matrix", "/no/such/file.csv", "--tau", "1"], "not found"),
        (["solve", "--game", "rps", "--actions", "5", "--tau", "1"], "exactly 3 actions"),
        (["solve", "--game", "random", "--actions", "2", "--tau", "1"], "at least 3 actions"),
    ],
)
def test_bad_arguments_get_one_line(capsys, argv, fragment):
    assert fragment in run_error(capsys, *argv)


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("P.txt", "0.5", "must end in .npy, .csv or .json"),
        ("P.csv", "0.5,0.2\n0.8", "cannot read"),
        ("P.json", "{not json", "cannot read"),
        ("P.json", "[[0.5, 0.2], [0.8]]", "rectangular numeric array"),
        ("P.json", "[[0.5, \"a\"], [0.5, 0.5]]", "rectangular numeric array"),
        ("P.json", "[[0.5, 1.2], [-0.2, 0.5]]", "must lie in [0, 1]"),
        ("P.json", "[[0.5, 0.7, 0.1], [0.3, 0.5, 0.2]]", "must be square"),
    ],
)
def test_bad_matrix_files_get_one_line(tmp_path, capsys, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    assert fragment in run_error(capsys, "solve", "--matrix", str(path), "--tau", "0.1")


def test_bad_reference_file(tmp_path, capsys):
    path = tmp_path / "ref.json"
    path.write_text("[0.5, 0.6, 0.0]")
    assert "must sum to 1" in run_error(capsys, "solve", "--game", "rps", "--ref", str(path), "--tau", "0.1")


@pytest.fixture
def quick_demo(monkeypatch, tmp_path, short_transformer_demo):
    """The demo's content, not its budget, is under test: 10 steps per algorithm, the report in a temp folder."""
    from preference_games import report

    monkeypatch.setattr(report, "ALGORITHM_STEPS", 10)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_demo_solves_every_built_in_game_with_certificates(capsys, quick_demo):
    out = run_json(capsys, "demo", "--json")
    rows = out["games"]
    assert out["report"] == "preference-games-report/report.html" and (quick_demo / out["report"]).is_file()
    assert {row["game"] for row in rows} >= {"rps", "rps-variant", "bradley-terry", "cyclic", "random", "condorcet"}
    for row in rows:
        assert row["regularised_gap"] <= 1e-12 and row["lp_gap"] <= 1e-9
    by_game = {row["game"]: row for row in rows}
    assert by_game["condorcet"]["lp_policy"][0] == pytest.approx(1.0)  # the Condorcet winner
    transformer = out["transformer"]
    if transformer is not None:  # with the llm extra: the tiny transformer's exact gap, recomputed independently
        import torch
        from llm_backend import TransformerPolicy
        from preference_games.sequences import exact_duality_gap, sequence_game_by_name

        game = sequence_game_by_name("rps-sequences")
        ref = TransformerPolicy.for_game(game, dtype=torch.float64, init_scale=0.1)
        assert abs(transformer["initial_duality_gap"] - exact_duality_gap(ref, game, ref, 0.1)) < 1e-12
        assert [step for step, _ in transformer["duality_gap"]] == [0, 2, 4]
        assert all(0 <= tv < 1 for tv in transformer["mixture_tv"].values())
        assert (quick_demo / transformer["figure"]).is_file()
    np.testing.assert_allclose(by_game["biased-rps"]["lp_policy"], [1 / 6, 1 / 3, 1 / 2], atol=1e-12)


def test_demo_table_and_games_listing(capsys, quick_demo):
    assert main(["demo"]) == 0
    printed = capsys.readouterr().out
    assert "rps-variant" in printed and "preference-games-report/report.html" in printed
    listing = run_json(capsys, "games", "--json")
    assert "rps-variant" in listing and "not constant-sum" in listing["rps-variant"]


def test_solve_starts_without_torch():
    """solve is linear algebra: the command modules import torch only inside the commands that train."""
    code = ("import sys; from preference_games.cli import main; "
            "status = main(['solve', '--game', 'rps', '--tau', '0.1', '--json']); "
            "print(status, 'torch' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr.strip() == "0 False", result.stderr
