"""Sequence games on the command line: ``games`` lists them, ``simulate --policy autoregressive`` prints what
:func:`preference_games.sequence_runs.train` returns for the same settings, and what does not apply is refused in
one line that names the fix."""

import inspect

import pytest

from preference_games import sequence_runs
from preference_games.algorithms import make
from preference_games.cli import main
from preference_games.cli.games import SEQUENCE_HEADING
from preference_games.games import named_games
from preference_games.sequences import SEQUENCE_GAMES, sequence_game_by_name
from preference_games.tabular import facts
from test_cli import run_error, run_json

AUTOREGRESSIVE = ["simulate", "--game", "rps-sequences", "--policy", "autoregressive"]


def trained(name, params, *, seed=0, **options):
    """``train`` called directly, as the command should call it."""
    return sequence_runs.train(make(name, **params), sequence_game_by_name("rps-sequences", seed), seed=seed,
                               **options)


def assert_same_run(out, run):
    assert out["steps"] == int(run.steps[-1]) and out["pairs"] == run.pairs
    assert [step for step, _ in out["duality_gap"]] == run.steps.tolist()
    assert [gap for _, gap in out["duality_gap"]] == pytest.approx(run.duality_gap.tolist(), rel=0, abs=1e-12)
    assert out["initial_duality_gap"] == pytest.approx(run.initial_duality_gap, rel=0, abs=1e-12)
    assert out["final_duality_gap"] == pytest.approx(run.final_duality_gap, rel=0, abs=1e-12)
    if run.kl_to_fixed_point is None:
        assert out["kl_to_fixed_point"] is None
    else:
        assert [kl for _, kl in out["kl_to_fixed_point"]] == pytest.approx(run.kl_to_fixed_point.tolist(), rel=0,
                                                                            abs=1e-12)
    if run.mixture_tv is None:
        assert out["mixture_tv"] is None
    else:
        assert out["mixture_tv"] == pytest.approx(run.mixture_tv, rel=0, abs=1e-12)


def test_json_is_train_at_its_defaults(capsys):
    out = run_json(capsys, *AUTOREGRESSIVE, "--algo", "online-ipo", "--tau", "0.1", "--steps", "20", "--eval-every",
                   "10", "--json")
    run = trained("online-ipo", {"tau": 0.1}, steps=20, eval_every=10)
    assert_same_run(out, run)
    algorithm = make("online-ipo", tau=0.1)
    defaults = inspect.signature(sequence_runs.train).parameters
    assert out["algorithm"] == algorithm.describe() and out["game"] == "rps-sequences"
    assert out["policy"] == "autoregressive" and out["mode"] == "sampled" and out["steps"] == 20
    assert out["lr"] == sequence_runs.DEFAULT_LR and out["batch"] == sequence_runs.DEFAULT_BATCH
    assert out["labels"] == defaults["labels"].default and out["optimizer"] == defaults["optimizer"].default
    assert out["tau"] == facts(algorithm).gap_tau and out["fixed_point_kind"] == facts(algorithm).fixed_point_kind
    assert out["seconds"] > 0 and out["pairs_per_second"] > 0


def test_every_option_reaches_train(capsys):
    """A mixture-sampling algorithm (so mixture_tv is measured) with every trainer option given."""
    out = run_json(capsys, *AUTOREGRESSIVE, "--algo", "ipo-md", "--beta", "0.5", "--steps", "6", "--eval-every", "3",
                   "--lr", "0.01", "--batch", "8", "--labels", "bernoulli", "--optimizer", "sgd", "--seed", "3",
                   "--sampled", "--json")
    run = trained("ipo-md", {"beta": 0.5}, seed=3, steps=6, eval_every=3, lr=0.01, batch=8, labels="bernoulli",
                  optimizer="sgd")
    assert_same_run(out, run)
    assert out["mixture_tv"] is not None
    assert (out["lr"], out["batch"], out["labels"], out["optimizer"], out["seed"]) == (0.01, 8, "bernoulli", "sgd", 3)


def test_text_summary_and_progress_bar(capsys):
    assert main([*AUTOREGRESSIVE, "--algo", "online-ipo", "--steps", "4", "--eval-every", "2", "--progress"]) == 0
    captured = capsys.readouterr()
    for fragment in ("online-ipo(tau=0.1) on rps-sequences: autoregressive policy, 4 sampled steps",
                     "duality gap at tau = 0.1:", "->", "KL(pi || fixed point):", "time:", "pairs/s"):
        assert fragment in captured.out, fragment
    assert "online-ipo" in captured.err  # tqdm's bar, described by the algorithm's name, on stderr only


def test_games_lists_the_sequence_games(capsys):
    assert main(["games"]) == 0
    text = capsys.readouterr().out
    tables, sequences = text.split(SEQUENCE_HEADING)
    assert all(name in tables for name in named_games()) and not any(name in tables for name in SEQUENCE_GAMES)
    assert all(f"{name} " in sequences and description in sequences
               for name, (description, _) in SEQUENCE_GAMES.items())
    listing = run_json(capsys, "games", "--json")
    assert listing.pop("sequence_games") == {name: description for name, (description, _) in SEQUENCE_GAMES.items()}
    assert listing == named_games()  # the table games keep the shape they always had


@pytest.mark.parametrize(
    "argv, fixes",
    [
        (["simulate", "--algo", "online-ipo", "--game", "rps-sequences"], ["add --policy autoregressive"]),
        (["simulate", "--algo", "online-ipo", "--game", "rps", "--policy", "autoregressive"],
         ["rps-sequences", "drop --policy autoregressive"]),
        (["simulate", "--algo", "online-ipo", "--matrix", "P.csv", "--policy", "autoregressive"],
         ["use --game", "rps-sequences"]),
        ([*AUTOREGRESSIVE, "--algo", "online-ipo", "--mode", "exact"], ["table policy", "drop --mode"]),
        ([*AUTOREGRESSIVE, "--algo", "online-ipo", "--ref", "ref.json", "--antisymmetrize"],
         ["--ref --antisymmetrize do not apply", "the reference is the initial policy"]),
        ([*AUTOREGRESSIVE, "--algo", "online-ipo", "--mode", "exact", "--sampled"], ["contradicts --mode exact"]),
        (["simulate", "--algo", "online-ipo", "--game", "rps", "--optimizer", "sgd"],
         ["--optimizer apply to --policy autoregressive only"]),
    ],
    ids=["sequence-game-on-a-table", "table-game", "matrix", "exact-mode", "table-flags", "contradiction",
         "trainer-option-on-a-table"],
)
def test_refusals_name_the_fix(capsys, argv, fixes):
    line = run_error(capsys, *argv)
    assert line.startswith("preference-games simulate: error:")
    assert all(fix in line for fix in fixes), line
