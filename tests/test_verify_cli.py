"""The verify framework and command: the suite of games, verdicts, the table, JSON, errors."""

import json

import numpy as np
import pytest

from preference_games.cli import main
from preference_games.verify import FAMILIES, Suite, checks, judged, run_checks
from preference_games.verify import core
from preference_games.verify.table import format_table


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_suite_is_reproducible_and_names_say_how_to_rebuild_each_game():
    a, b = Suite(games=12, seed=4), Suite(games=12, seed=4)
    for g, h in zip(a.games(), b.games()):
        np.testing.assert_array_equal(g.P, h.P)
        np.testing.assert_array_equal(g.ref.log_probs, h.ref.log_probs)
    family, index = a.random()[7].name.split(" ")[0].split("#")
    rebuilt = Suite(games=12, seed=4).random(family)[int(index)]
    np.testing.assert_array_equal(rebuilt.P, a.random()[7].P)
    assert not np.array_equal(Suite(games=12, seed=5).random()[0].P, a.random()[0].P)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_its_structure(family):
    from preference_games.fixed_points import bradley_terry_rewards

    games = Suite(games=20, seed=1).random(family)
    assert len(games) == 20 and all(g.name.startswith(family) for g in games)
    for g in games:
        assert np.all(g.support)  # full-support references
        if family == "bradley-terry":
            assert bradley_terry_rewards(g) is not None
        if family == "contextual":
            assert g.num_prompts >= 2
        if family == "cyclic":  # every row a rotation of the first: uniform is an equilibrium (S·1 = 0)
            assert np.abs(g.S.sum(-1)).max() < 1e-15


def test_fixed_size_games_have_their_own_streams_and_names():
    suite = Suite(games=6, seed=2)
    three = suite.random("cyclic", actions=3)
    assert all(g.num_actions == 3 and g.name == f"cyclic-3#{i} (seed 2)" for i, g in enumerate(three))
    assert not np.array_equal(suite.random("bradley-terry", actions=4)[0].P, suite.random("bradley-terry")[0].P)
    with pytest.raises(ValueError, match="needs an integer number of actions >= 3"):
        suite.random("intransitive", actions=2)
    with pytest.raises(ValueError, match="needs a family"):
        suite.random(actions=3)


def test_bad_suite_arguments_are_rejected():
    with pytest.raises(ValueError, match="non-negative integer"):
        Suite(games=2.5)
    with pytest.raises(ValueError, match="unknown game family"):
        Suite(games=2).random("transitive")


def test_judged_verdicts():
    assert judged("m", 1e-12, 1e-9, 3).verdict == "holds"
    assert judged("m", 1e-3, 1e-9, 3).verdict == "fails"
    assert judged("m", 1e-12, 1e-9, 3, correction="centre it").verdict == "holds-with-correction"
    assert judged("m", 1.0, 1e-9, 3, correction="centre it").verdict == "fails"
    with pytest.raises(ValueError, match="unknown verdict"):
        core.Outcome("m", 0.0, 0.0, "maybe", 1)


def test_only_selects_by_name_and_prefix():
    every = checks()
    assert [c.name for c in checks([every[0].name])] == [every[0].name]
    inpo = checks(["inpo/"])
    assert inpo and all(c.name.startswith("inpo/") for c in inpo)
    with pytest.raises(ValueError, match="no check named"):
        checks(["no-such-check"])
    assert checks("inpo/") == inpo  # one name or prefix as a string
    for empty in ([""], [], ["  "]):  # an empty selection is a slip, never "everything"
        with pytest.raises(ValueError, match="non-empty list"):
            checks(empty)


@pytest.fixture
def broken_check(monkeypatch):
    def raises(suite):
        raise RuntimeError("boom")

    check = core.Check("test/broken", "nobody", "nowhere", "a check that raises", raises)
    monkeypatch.setitem(core._REGISTRY, check.name, check)
    return check


def test_a_check_that_raises_is_reported_not_swallowed(broken_check, capsys):
    (result,) = run_checks([broken_check], Suite(games=1))
    assert result.outcome.verdict == "error" and "RuntimeError: boom" in result.outcome.counterexample
    code, out, err = run_cli(capsys, "verify", "--only", "test/broken", "--json")
    assert code == 1 and "test/broken" in err
    (row,) = json.loads(out)  # NaN would not be valid JSON: it is null
    assert row["verdict"] == "error" and row["worst_error"] is None


def test_cli_json_has_the_required_keys_and_the_table_names_every_counterexample(capsys):
    code, out, _ = run_cli(capsys, "verify", "--only", "ipo-md/prop-4.1", "--games", "3", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert {"name", "paper", "verdict", "worst_error", "tolerance", "games", "measured"} <= set(row)
    assert row["games"] == len(Suite(games=3).games()) and row["verdict"] == "holds"
    failing = core.Result(checks()[0], judged("m", 2.0, 1.0, 1, counterexample="game X at τ = 1"), 0.0)
    text = format_table([failing])
    assert "fails" in text and "counterexample: game X at τ = 1" in text


def test_cli_bad_input_is_one_line(capsys):
    for argv in (["verify", "--only", "nope"], ["verify", "--games", "-3"], ["verify", "--seed", "x"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_list_shows_every_check_without_running(capsys):
    code, out, _ = run_cli(capsys, "verify", "--list", "--json")
    listed = json.loads(out)
    assert code == 0 and [c["name"] for c in listed] == [c.name for c in checks()]
    assert all(c["statement"] and c["paper"] and c["location"] for c in listed)


def test_population_gradient_batches_games_with_their_own_references_and_default_data():
    """Offline IPO (pairs from μ, default μ = π_ref) on two games that differ in π_ref, batched in one call, equals
    one call per game: each configuration uses its own game's reference and data policy."""
    from preference_games.algorithms import make
    from preference_games.verify.exact import population_gradient, random_policies

    games = list(Suite(games=12, seed=0).random("intransitive", actions=4)[:2])
    assert not np.array_equal(games[0].ref.log_probs, games[1].ref.log_probs)
    rng = np.random.default_rng(0)
    log_pi = np.concatenate([random_policies(g, 1, rng) for g in games])
    loss, grad = population_gradient(make("offline-ipo", tau=0.2), games, log_pi)
    for c, game in enumerate(games):
        alone_loss, alone_grad = population_gradient(make("offline-ipo", tau=0.2), [game], log_pi[c:c + 1])
        np.testing.assert_allclose(grad[c], alone_grad[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(loss[c], alone_loss[0], rtol=0, atol=1e-13)
