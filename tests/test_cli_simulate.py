"""`preference-games simulate` and `preference-games algorithms`: the numbers are the engine's own, bad input ends in
one line and status 2, and every registered algorithm is handled without knowing its name."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from preference_games import fixed_points
from preference_games.algorithms import make, names, parameters
from preference_games.cli import main
from preference_games.cli import simulate as cli_simulate
from preference_games.cli.common import jsonable, parse_value
from preference_games.dynamics import MODES, simulate
from preference_games.games import by_name, rps_variant
from preference_games.samplers import LABELS
from preference_games.tabular import facts
from test_cli import run_error, run_json

ACCEPTANCE = ["simulate", "--algo", "ipo-md", "--beta", "0.5", "--tau", "0.1", "--game", "rps-variant",
              "--antisymmetrize", "--json"]
REQUIRED_KEYS = {"algorithm", "params", "paper", "mode", "steps", "stopped", "final_policy", "duality_gap",
                 "unregularized_gap", "kl_to_ref", "fixed_point", "fixed_point_kind", "max_abs_diff_to_fixed_point",
                 "loss"}


def first(predicate):
    """The first registered algorithm (by name) that satisfies ``predicate(name, algorithm)``, or None."""
    return next((n for n in names() if predicate(n, make(n))), None)


# ---------------------------------------------------------------------------------------------- acceptance
@pytest.fixture(scope="module")
def acceptance():
    """The issue's acceptance call, run once through main() (module scope: capsys is per-test)."""
    from io import StringIO
    from contextlib import redirect_stdout

    out = StringIO()
    with redirect_stdout(out):
        assert main(ACCEPTANCE) == 0
    return json.loads(out.getvalue())


def test_acceptance_call_ends_at_the_eq13_fixed_point(acceptance):
    out = acceptance
    assert set(out) >= REQUIRED_KEYS
    assert out["algorithm"] == "ipo-md" and out["params"] == {"beta": 0.5, "tau": 0.1}
    assert out["mode"] == "exact" and out["stopped"] == "stationary" and out["steps"] > 0
    expected = fixed_points.ipo_md(rps_variant(antisymmetrize=True), 0.1, 0.5).probs[0]
    np.testing.assert_allclose(out["fixed_point"], expected, rtol=0, atol=1e-12)
    # Measured here, not only read from the report:
    assert np.abs(np.array(out["final_policy"]) - expected).max() <= 1e-6
    assert out["max_abs_diff_to_fixed_point"] <= 1e-6
    assert out["max_abs_diff_to_fixed_point"] == np.abs(np.array(out["final_policy"]) - out["fixed_point"]).max()
    assert "eq. 13" in out["fixed_point_kind"] and "IPO-MD" in out["paper"]
    assert out["tau"] == 0.1 and out["duality_gap"] > 0  # eq. 13 is not the regularised equilibrium for beta > 0


def test_json_final_policy_is_bitwise_what_simulate_returns(acceptance):
    run = simulate(make("ipo-md", beta=0.5, tau=0.1), rps_variant(antisymmetrize=True), lr=cli_simulate.DEFAULT_LR)
    assert acceptance["final_policy"] == run.final[0, 0].tolist()
    assert acceptance["steps"] == int(run.steps[-1]) and acceptance["stopped"] == run.stopped
    assert acceptance["duality_gap"] == float(run.duality_gap[-1, 0])
    assert acceptance["kl_to_ref"] == float(run.kl_to_ref[-1, 0])
    assert acceptance["loss"] == float(run.loss[-1, 0])


# ---------------------------------------------------------------------------------------------- step counts
@pytest.mark.parametrize("steps", [0, 7])
def test_steps_runs_exactly_that_many_steps(capsys, steps):
    out = run_json(capsys, "simulate", "--algo", "online-ipo", "--game", "rps-variant", "--antisymmetrize",
                   "--steps", str(steps), "--lr", "0.05", "--json")
    assert out["steps"] == steps and out["stopped"] == "steps"
    run = simulate(make("online-ipo"), rps_variant(antisymmetrize=True), steps=steps, lr=0.05)
    assert out["final_policy"] == run.final[0, 0].tolist()
    if steps == 0:
        assert out["final_policy"] == [1 / 3] * 3 and out["loss"] is None


def test_max_steps_caps_a_run_and_says_so(capsys):
    out = run_json(capsys, "simulate", "--algo", "ipo-md", "--game", "rps-variant", "--antisymmetrize",
                   "--max-steps", "5", "--json")
    assert out["steps"] == 5 and out["stopped"] == "step cap"
    assert out["max_abs_diff_to_fixed_point"] > 1e-6


# ------------------------------------------------------------------------------------------------- sampled
def sampled(capsys, *extra):
    return run_json(capsys, "simulate", "--algo", "online-ipo", "--game", "rps", "--steps", "20", "--batch", "16",
                    "--json", *extra)


def test_sampled_mode_is_reproducible_by_seed_and_differs_across_seeds(capsys):
    a = sampled(capsys, "--sampled", "--seed", "1")
    b = sampled(capsys, "--mode", "sampled", "--seed", "1")  # --sampled is shorthand for --mode sampled
    c = sampled(capsys, "--sampled", "--seed", "2")
    assert a["mode"] == "sampled" and a["batch"] == 16 and a["labels"] == "bernoulli"
    assert a["final_policy"] == b["final_policy"]
    assert a["final_policy"] != c["final_policy"]
    soft = sampled(capsys, "--sampled", "--seed", "1", "--labels", "soft")
    assert soft["labels"] == "soft" and soft["final_policy"] != a["final_policy"]


# ---------------------------------------------------------------------------------------------- parameters
def test_param_is_the_same_as_the_dedicated_flag(capsys):
    common = ["simulate", "--algo", "ipo-md", "--game", "rps", "--steps", "5", "--json"]
    flag = run_json(capsys, *common, "--beta", "0.25", "--tau", "0.2")
    param = run_json(capsys, *common, "--param", "beta=0.25", "--param", "tau=0.2")
    assert flag == param and flag["params"] == {"beta": 0.25, "tau": 0.2}


def test_param_values_are_parsed_as_int_float_or_text():
    assert parse_value("100", 100) == 100 and isinstance(parse_value("100", 100), int)
    assert parse_value("2", 0.5) == 2.0 and isinstance(parse_value("2", 0.5), float)
    assert parse_value("1e-3", 0.5) == 1e-3
    assert parse_value("theorem-4", "constant") == "theorem-4"
    assert parse_value("7", "constant") == "7"  # a text parameter stays text
    assert parse_value("ipo", None) == "ipo" and parse_value("3", None) == 3


INT_AND_TEXT = first(
    lambda n, a: any(type(v) is int for v in parameters(n).values())
    and any(isinstance(v, str) for v in parameters(n).values())
)


@pytest.mark.skipif(INT_AND_TEXT is None, reason="no registered algorithm takes both an integer and a text parameter")
def test_integer_and_text_parameters_reach_the_algorithm(capsys):
    params = parameters(INT_AND_TEXT)
    key_int = next(k for k, v in params.items() if type(v) is int)
    key_text = next(k for k, v in params.items() if isinstance(v, str))
    common = ["simulate", "--algo", INT_AND_TEXT, "--game", "rps", "--steps", "2", "--json"]
    given = run_json(capsys, *common, "--param", f"{key_int}={params[key_int]}", "--param",
                     f"{key_text}={params[key_text]}")  # the defaults, written out: valid whatever the algorithm
    assert given["params"][key_int] == params[key_int] and type(given["params"][key_int]) is int
    assert given["params"][key_text] == params[key_text]
    assert given == run_json(capsys, *common)
    message = run_error(capsys, *common, "--param", f"{key_int}=-3")  # the factory's own check, one line
    assert key_int.replace("_", " ") in message.replace("_", " ") or "must" in message


# ------------------------------------------------------------------------------------------- bad input
ETA_AND_TAU = first(lambda n, a: {"eta", "tau"} <= set(parameters(n)))
CLOSED_FORM = first(lambda n, a: facts(a).closed_form is not None)


def bad_cases():
    base = ["simulate", "--algo", "ipo-md", "--game", "rps"]
    cases = [
        (["simulate", "--algo", "no-such-algo", "--game", "rps"], "unknown algorithm 'no-such-algo'"),
        (base + ["--beta", "1.5"], "beta must be"),
        (base + ["--beta", "-0.1"], "beta must be"),
        (base + ["--tau", "-1"], "tau must be"),
        (["simulate", "--algo", "ipo-md", "--game", "no-such-game"], "unknown game 'no-such-game'"),
        (["simulate", "--algo", "ipo-md", "--game", "rps-variant"], "not constant-sum"),
        (base + ["--lr", "0"], "lr must be"),
        (base + ["--lr", "-0.1"], "lr must be"),
        (base + ["--steps", "-1"], "steps must be"),
        (base + ["--max-steps", "0"], "max_steps must be"),
        (base + ["--mode", "closed-form"], "no closed-form map"),
        (base + ["--eta", "0.5"], "takes no parameter eta (it takes: beta, tau)"),
        (base + ["--param", "gamma=1"], "takes no parameter gamma (it takes: beta, tau)"),
        (base + ["--param", "beta"], "KEY=VALUE"),
        (base + ["--beta", "0.5", "--param", "beta=0.5"], "given twice"),
        (base + ["--batch", "8"], "--batch applies to --mode sampled"),
        (base + ["--sampled", "--batch", "0"], "batch must be"),
        (base + ["--mode", "exact", "--sampled"], "contradicts --mode exact"),
        (base + ["--steps", "3", "--max-steps", "9"], "--max-steps"),
        (base + ["--data", "mu.json"], "does not use a data policy"),
        (base + ["--steps", "1.5"], "invalid int value"),
        (["simulate", "--game", "rps"], "required: --algo"),
        (base + ["--mode", "magic"], "invalid choice"),
        (["simulate", "--algo", "ipo-md", "--matrix", "/no/such/P.csv"], "not found"),
    ]
    if ETA_AND_TAU:
        cases.append((["simulate", "--algo", ETA_AND_TAU, "--game", "rps", "--tau", "0.5", "--eta", "0.1"], "eta"))
    if CLOSED_FORM:
        cases.append((["simulate", "--algo", CLOSED_FORM, "--game", "rps", "--mode", "closed-form", "--lr", "0.1"],
                      "--lr does not apply"))
    return cases


@pytest.mark.parametrize("argv, fragment", bad_cases(), ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_gets_exit_2_and_one_line(capsys, argv, fragment):
    message = run_error(capsys, *argv)
    assert fragment in message and message.startswith("preference-games simulate: error:")


# ----------------------------------------------------------------------------------------- every algorithm
def test_algorithms_json_lists_every_registered_algorithm(capsys):
    listing = run_json(capsys, "algorithms", "--json")
    assert set(listing) == set(names())
    for name, entry in listing.items():
        algorithm = make(name)
        assert isinstance(entry["paper"], str) and entry["paper"] == algorithm.paper != ""
        assert entry["params"] == {k: jsonable(v) for k, v in parameters(name).items()}
        assert entry["fixed_point_kind"] == facts(algorithm).fixed_point_kind
        assert entry["closed_form"] is (facts(algorithm).closed_form is not None)
        assert entry["update"] == algorithm.update
    assert main(["algorithms"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in names()) and "paper:" in text


@pytest.mark.parametrize("name", names())
def test_every_registered_algorithm_runs_with_its_defaults(capsys, name):
    out = run_json(capsys, "simulate", "--algo", name, "--game", "rps-variant", "--antisymmetrize", "--steps", "2",
                   "--json")
    assert set(out) >= REQUIRED_KEYS and out["steps"] == 2 and out["algorithm"] == name
    assert out["params"] == {k: jsonable(v) for k, v in parameters(name).items()}
    assert np.isclose(sum(out["final_policy"]), 1.0)


AVERAGING = first(lambda n, a: facts(a).average_iterate and facts(a).closed_form is not None)


@pytest.mark.skipif(AVERAGING is None, reason="no registered algorithm outputs the average of its iterates")
def test_average_iterate_algorithms_also_report_the_average(capsys):
    out = run_json(capsys, "simulate", "--algo", AVERAGING, "--game", "rps", "--mode", "closed-form", "--steps", "10",
                   "--json")
    assert out["lr"] is None and out["loss"] is None
    assert len(out["average_policy"]) == 3 and "average_max_abs_diff_to_fixed_point" in out


# ----------------------------------------------------------------------------------------------- output
def test_contextual_game_gives_one_policy_per_prompt(tmp_path, capsys):
    path = tmp_path / "stack.npy"
    np.save(path, np.stack([by_name("rps").P[0], by_name("biased-rps").P[0]]))
    out = run_json(capsys, "simulate", "--algo", "online-ipo", "--matrix", str(path), "--steps", "3", "--json")
    assert np.array(out["final_policy"]).shape == (2, 3) and np.array(out["fixed_point"]).shape == (2, 3)


def test_data_policy_file_moves_the_offline_fixed_point(tmp_path, capsys):
    data_user = first(lambda n, a: a.uses_data and facts(a).fixed_point is not None)
    mu = tmp_path / "mu.json"
    mu.write_text("[0.2, 0.3, 0.5]")
    common = ["simulate", "--algo", data_user, "--game", "rps", "--steps", "1", "--json"]
    with_data = run_json(capsys, *common, "--data", str(mu))
    without = run_json(capsys, *common)
    assert with_data["fixed_point"] != without["fixed_point"]


def test_text_output_names_actions_stopping_rule_and_fixed_point(capsys):
    assert main(["simulate", "--algo", "ipo-md", "--game", "rps-variant", "--antisymmetrize", "--steps", "5"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    for fragment in ("ipo-md(beta=0.5, tau=0.1)", "rock", "scissors", "ran the requested number of steps",
                     "duality gap at tau = 0.1", "KL(pi || pi_ref)", "eq. 13", "max |pi - fixed point|"):
        assert fragment in text, fragment
    assert captured.err == ""  # no progress bar when stderr is not a terminal


def test_progress_bar_goes_to_stderr_and_leaves_json_intact(capsys):
    assert main(["simulate", "--algo", "online-ipo", "--game", "rps", "--steps", "3", "--progress", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["steps"] == 3


def test_cli_choices_match_the_library():
    assert tuple(cli_simulate.MODES) == tuple(MODES) and tuple(cli_simulate.LABELS) == tuple(LABELS)


def test_python_dash_m_simulate_entry_point(acceptance):
    """The module entry point in a fresh interpreter: the acceptance call prints the same JSON, and nothing on
    stderr (no traceback, no warning, no progress bar when stderr is not a terminal)."""
    root = Path(fixed_points.__file__).resolve().parents[1]  # the repository
    result = subprocess.run([sys.executable, "-m", "preference_games", *ACCEPTANCE], capture_output=True, text=True,
                            cwd=root)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and result.stderr == ""
    assert json.loads(result.stdout) == acceptance


def test_inner_steps_none_runs_each_inner_argmin_to_convergence(capsys):
    out = run_json(capsys, "simulate", "--algo", "inpo", "--game", "rps-variant", "--antisymmetrize",
                   "--param", "inner_steps=none", "--lr", "1", "--json")
    assert out["stopped"] == "stationary" and out["max_abs_diff_to_fixed_point"] <= 1e-6
