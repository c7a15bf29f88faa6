"""Every subcommand against bad input: exit status 2, exactly one line on stderr, nothing on stdout, no traceback,
no warning, and nothing written or created. Then the library validations those lines come from.

The table is checked against the parser itself, so a new subcommand without bad-input rows fails
``test_every_subcommand_has_bad_input_rows``. Bad files are built in ``tmp_path``; ``{name}`` in an argument is
replaced by the path of the bad file ``name`` (see ``BAD_FILES``).
"""

import argparse
import subprocess
import sys
import warnings

import numpy as np
import pytest

from preference_games.algorithms import make
from preference_games.cli import EXIT_BAD_INPUT, build_parser, main
from preference_games.dynamics import simulate
from preference_games.equilibria import MIN_TAU, duality_gap, regularized_nash
from preference_games.games import PreferenceGame, by_name, rps_variant
from preference_games.policies import TabularPolicy
from test_cli import run_json

RPS = ["--game", "rps-variant", "--antisymmetrize"]


#: name -> writer(path): the bad (and a few good) files the table refers to.
BAD_FILES = {
    "empty.npy": lambda p: p.write_bytes(b""),
    "empty.csv": lambda p: p.write_text(""),
    "empty.json": lambda p: p.write_text(""),
    "deep.json": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
    "complex.npy": lambda p: np.save(p, np.array([[0.5, 0.2 + 1e-3j], [0.8, 0.5]])),
    "complex-ref.npy": lambda p: np.save(p, np.array([0.5 + 0.1j, 0.5, 0.0])),
    "ragged.json": lambda p: p.write_text("[[0.5, 0.2], [0.8]]"),
    "text.json": lambda p: p.write_text('[[0.5, "a"], [0.5, 0.5]]'),
    "nan.json": lambda p: p.write_text("[[0.5, NaN], [0.5, 0.5]]"),
    "inf.npy": lambda p: np.save(p, np.array([[0.5, np.inf], [0.0, 0.5]])),
    "not-constant-sum.csv": lambda p: p.write_text("0.5,0.7\n0.2,0.5\n"),
    "wrong-suffix.txt": lambda p: p.write_text("0.5"),
    "zero-ref.json": lambda p: p.write_text("[0.5, 0.5, 0.0]"),
    "bad-ref.json": lambda p: p.write_text("[0.5, 0.6, 0.0]"),
    "mu.json": lambda p: p.write_text("[0.2, 0.3, 0.5]"),
    "a-file": lambda p: p.write_text("not a folder"),
    "prompts.jsonl": lambda p: p.write_text('{"prompt": "Say hi."}\n{"prompt": "Why?"}\n'),
    "no-prompt.jsonl": lambda p: p.write_text('{"question": "Say hi."}\n'),
    "prefs.jsonl": lambda p: p.write_text('{"prompt": "Hi", "chosen": "a", "rejected": "b"}\n'),
    "reward-2-outputs": lambda p: _save_classifier(p, labels=2),
    "reward": lambda p: _save_classifier(p, labels=1),
    "no-pad-model": lambda p: _save_causal_lm_without_pad(p),
}


def _save_classifier(folder, labels: int) -> None:
    """A tiny sequence classifier with ``labels`` outputs and a character tokenizer, saved to ``folder``."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from llm_backend.text import char_tokenizer

    tokenizer = char_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=labels,
                         pad_token_id=tokenizer.pad_token_id, max_position_embeddings=128)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _save_causal_lm_without_pad(folder) -> None:
    """A tiny causal LM whose tokenizer has no pad token."""
    from llm_backend.policy import tiny_llama
    from llm_backend.text import char_tokenizer

    tokenizer = char_tokenizer()
    tiny_llama(len(tokenizer), pad_id=tokenizer.pad_token_id, hidden=16, layers=1).save_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)

#: (command, arguments, a fragment the one line must contain). Missing files and unknown names need no file.
CASES = [
    # ----------------------------------------------------------------------------------------------------- demo
    ("demo", ["--out", "{a-file}"], "--out: "),
    ("demo", ["--out", "{a-file}/report"], "is a file, not a folder"),
    ("demo", ["--bogus"], "unrecognized arguments"),
    # ---------------------------------------------------------------------------------------------------- games
    ("games", ["--bogus"], "unrecognized arguments"),
    # ----------------------------------------------------------------------------------------------- algorithms
    ("algorithms", ["extra"], "unrecognized arguments"),
    # ---------------------------------------------------------------------------------------------------- solve
    ("solve", ["--matrix", "{empty.npy}", "--tau", "0.1"], "cannot read matrix file"),
    ("solve", ["--matrix", "{empty.csv}", "--tau", "0.1"], "cannot read matrix file"),
    ("solve", ["--matrix", "{empty.json}", "--tau", "0.1"], "cannot read matrix file"),
    ("solve", ["--matrix", "{deep.json}", "--tau", "0.1"], "nested too deeply"),
    ("solve", ["--matrix", "{complex.npy}", "--tau", "0.1"], "complex entries"),
    ("solve", ["--matrix", "{ragged.json}", "--tau", "0.1"], "rectangular numeric array"),
    ("solve", ["--matrix", "{text.json}", "--tau", "0.1"], "rectangular numeric array"),
    ("solve", ["--matrix", "{nan.json}", "--tau", "0.1"], "non-finite entry"),
    ("solve", ["--matrix", "{inf.npy}", "--tau", "0.1"], "non-finite entry"),
    ("solve", ["--matrix", "{not-constant-sum.csv}", "--tau", "0.1"], "not constant-sum"),
    ("solve", ["--matrix", "{wrong-suffix.txt}", "--tau", "0.1"], "must end in .npy, .csv or .json"),
    ("solve", ["--matrix", "no/such/file.npy", "--tau", "0.1"], "not found"),
    ("solve", ["--game", "rps", "--ref", "{complex-ref.npy}", "--tau", "0.1"], "complex entries"),
    ("solve", ["--game", "rps", "--ref", "{bad-ref.json}", "--tau", "0.1"], "must sum to 1"),
    ("solve", ["--game", "rps", "--tau", "-1"], "tau must be"),
    ("solve", ["--game", "rps", "--tau", "nan"], "tau must be"),
    ("solve", [*RPS, "--tau", "1e-300"], f"smallest supported tau > 0, {MIN_TAU:g}"),
    ("solve", [*RPS, "--tau", "5e-324"], f"smallest supported tau > 0, {MIN_TAU:g}"),
    ("solve", ["--game", "no-such-game", "--tau", "0.1"], "unknown game"),
    ("solve", ["--game", "random", "--actions", "10000000", "--tau", "0.1"], "GiB for P"),
    ("solve", ["--game", "random", "--seed", "-1", "--tau", "0.1"], "--seed"),
    ("solve", ["--game", "rps", "--seed", "x", "--tau", "0.1"], "--seed"),
    # ------------------------------------------------------------------------------------------------- simulate
    ("simulate", ["--algo", "no-such-algo", "--game", "rps"], "unknown algorithm"),
    ("simulate", ["--algo", "online-ipo", "--matrix", "{complex.npy}", "--steps", "1"], "complex entries"),
    ("simulate", ["--algo", "offline-ipo", "--game", "rps", "--data", "{complex-ref.npy}", "--steps", "1"],
     "complex entries"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps", "--data", "{mu.json}", "--steps", "1"],
     "does not use a data policy"),
    ("simulate", ["--algo", "online-ipo", "--tau", "-1", "--game", "rps", "--steps", "1"], "tau"),
    ("simulate", ["--algo", "online-ipo", "--tau", "5e-324", "--game", "rps", "--steps", "1"], "1/tau overflows"),
    ("simulate", ["--algo", "inpo", "--game", "rps", "--mode", "closed-form", "--lr", "0.1"], "--lr"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps", "--max-steps", "0"], "max_steps"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps", "--seed", "-1", "--steps", "1"], "--seed"),
    ("simulate", ["--algo", "online-ipo", "--game", "random", "--actions", "10000000", "--steps", "1"], "GiB for P"),
    # simulate --policy autoregressive: what does not apply is refused by the command line, values by the trainer
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences"], "add --policy autoregressive"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps", "--policy", "autoregressive"], "not a sequence game"),
    ("simulate", ["--algo", "online-ipo", "--matrix", "{complex.npy}", "--policy", "autoregressive"],
     "not on a --matrix"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "autoregressive", "--mode", "exact"],
     "sampled pairs only"),
    ("simulate", ["--algo", "inpo", "--game", "rps-sequences", "--policy", "autoregressive", "--mode",
                  "closed-form"], "sampled pairs only"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "autoregressive", "--max-steps", "5"],
     "--max-steps do not apply"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps", "--eval-every", "5"], "--policy autoregressive only"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "autoregressive", "--steps", "0"],
     "steps must be"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "autoregressive", "--lr", "0"],
     "lr must be"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "autoregressive", "--batch", "0"],
     "batch must be"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "autoregressive", "--eval-every",
                  "0"], "eval_every must be"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "autoregressive", "--optimizer",
                  "rmsprop"], "optimizer must be"),
    ("simulate", ["--algo", "online-ipo", "--game", "rps-sequences", "--policy", "recurrent"], "invalid choice"),
    # ----------------------------------------------------------------------------------------------------- plot
    ("plot", ["tau-path", "--out", "{a-file}", *RPS], "--out: "),
    ("plot", ["tau-path", "--out", "{a-file}/figures", *RPS], "is a file, not a folder"),
    ("plot", ["contour", "--out", "figures", "--game", "rps", "--ref", "{zero-ref.json}"], "--ref"),
    ("plot", ["convergence", "--out", "figures", "--algo", "no-such-algo", "--game", "rps"], "unknown algorithm"),
    ("plot", ["contour", "--out", "figures", *RPS, "--tau", "1e-300"], "smallest supported tau"),
    ("plot", ["tau-path", "--out", "figures", "--matrix", "{deep.json}"], "nested too deeply"),
    ("plot", ["tau-path", "--out", "figures", "--game", "random", "--seed", "-1", "--actions", "3"], "--seed"),
    # --------------------------------------------------------------------------------------------------- verify
    ("verify", ["--only", ""], "--only"),
    ("verify", ["--only", "no-such-check"], "no check named"),
    ("verify", ["--seed", "-1", "--list"], "--seed"),
    ("verify", ["--games", "-1", "--only", "inpo/"], "random games"),
    # ---------------------------------------------------------------------------------------------------- train
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--game", "rps", "--out", "o"], "unknown sequence game"),
    ("train", ["--algo", "online-ipo", "--model", "no-such-dir", "--game", "rps-sequences", "--out", "o"],
     "no model directory at no-such-dir"),
    ("train", ["--algo", "online-ipo", "--model", "no-such-dir", "--prompts", "{prompts.jsonl}", "--oracle",
               "reward:{reward}", "--out", "o"], "no model directory at no-such-dir"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--prompts", "{prompts.jsonl}", "--out", "o"],
     "--prompts needs a judge"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--prompts", "{prompts.jsonl}", "--oracle", "judge:x",
               "--out", "o"], "--oracle must be"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--prompts", "{prompts.jsonl}", "--oracle",
               "reward:{reward-2-outputs}", "--out", "o"], "exactly one output"),
    ("train", ["--algo", "online-ipo", "--model", "{no-pad-model}", "--prompts", "{prompts.jsonl}", "--oracle",
               "reward:{reward}", "--out", "o"], "no pad token"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--prompts", "{prompts.jsonl}", "--oracle",
               "reward:{reward}", "--max-new-tokens", "300", "--out", "o"], "context (256 positions) is shorter"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--prompts", "{no-prompt.jsonl}", "--oracle",
               "reward:{reward}", "--out", "o"], "prompt"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--prompts", "{prompts.jsonl}", "--oracle",
               "reward:{reward}", "--preferences", "{prefs.jsonl}", "--out", "o"],
     "does not train on a preference dataset"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--game", "rps-sequences", "--steps", "0", "--out", "o"],
     "--steps must be"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--game", "rps-sequences", "--temperature", "0", "--out",
               "o"], "temperature must lie in"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--game", "rps-sequences", "--device", "cuda", "--out",
               "o"], "no GPU"),
    ("train", ["--algo", "online-ipo", "--model", "tiny", "--game", "rps-sequences", "--out", "{a-file}"],
     "is not a directory"),
]


def fill(arguments, folder) -> list[str]:
    """The arguments with every ``{name}`` of ``BAD_FILES`` replaced by that file's path in ``folder``."""
    filled = []
    for argument in arguments:
        for name in BAD_FILES:
            argument = argument.replace(f"{{{name}}}", str(folder / name))
        filled.append(argument)
    return filled


def subcommands() -> list[str]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def tree(root) -> set:
    return {(str(p.relative_to(root)), p.is_dir()) for p in root.rglob("*")}


def test_every_subcommand_has_bad_input_rows():
    assert set(subcommands()) == {command for command, _, _ in CASES}


@pytest.mark.parametrize("command, arguments, fragment", CASES,
                         ids=[f"{c}-{'-'.join(a)[:60]}" for c, a, _ in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(command, arguments, fragment, tmp_path, capsys,
                                                            monkeypatch):
    for name, write in BAD_FILES.items():
        if any(f"{{{name}}}" in argument for argument in arguments):  # models are slow to build: only those used
            write(tmp_path / name)
    capsys.readouterr()  # what building the files printed (HF's progress bars) is not the command's output
    argv = [command, *fill(arguments, tmp_path)]
    monkeypatch.chdir(tmp_path)  # relative --out folders land here, where the test looks for them
    before = tree(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main(argv)
    captured = capsys.readouterr()
    assert status == EXIT_BAD_INPUT, captured.err
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.endswith("\n"), captured.err
    assert "Traceback" not in captured.err and fragment in captured.err, captured.err
    # From a shell, a warning would be a second line on stderr (the library's DeprecationWarnings are not shown).
    assert [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)] == []
    assert tree(tmp_path) == before  # nothing written or created, not even a folder


@pytest.mark.parametrize("arguments", [["solve", "--matrix", "{deep.json}", "--tau", "0.1"],
                                       ["solve", *RPS, "--tau", "5e-324"]], ids=["deep-json", "subnormal-tau"])
def test_from_a_shell_one_line_and_no_warning(arguments, tmp_path):
    """The two inputs that leaked a RecursionError and RuntimeWarnings, through the real entry point."""
    BAD_FILES["deep.json"](tmp_path / "deep.json")
    result = subprocess.run([sys.executable, "-m", "preference_games", *fill(arguments, tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == EXIT_BAD_INPUT and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr


def test_one_by_one_matrix_is_the_same_game_from_every_format(tmp_path, capsys):
    """A .csv cannot tell [1] from [1, 1]: a matrix file is read as 2-D, so a one-action game loads from .csv as it
    does from .npy and .json; a reference file stays 1-D."""
    np.save(tmp_path / "P.npy", np.array([[0.5]]))
    (tmp_path / "P.json").write_text("[[0.5]]")
    (tmp_path / "P.csv").write_text("0.5\n")
    (tmp_path / "ref.csv").write_text("1.0\n")
    for name in ("P.npy", "P.json", "P.csv"):
        out = run_json(capsys, "solve", "--matrix", str(tmp_path / name), "--ref", str(tmp_path / "ref.csv"),
                       "--tau", "0.1", "--json")
        assert out["policy"] == [1.0] and out["num_actions"] == 1


def test_readme_closed_form_theorem_4_example_stops_at_its_cap_with_advice_for_the_mode(capsys, monkeypatch):
    """INPO's Theorem 4 schedule shrinks the step like 1/t, so the map never moves by < 1e-12 in a useful time: the
    closed-form run stops at its own cap (patched small here) and says what helps in that mode — not --lr."""
    from preference_games.cli import simulate

    monkeypatch.setattr(simulate, "CLOSED_FORM_MAX_STEPS", 300)
    argv = ["simulate", "--algo", "inpo", "--param", "schedule=theorem-4", "--mode", "closed-form", "--game",
            "random", "--actions", "6"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "steps:     300; reached the step cap" in text and "--lr" not in text and "--max-steps" in text


def test_demo_report_names_algorithms_as_the_registry_does():
    from preference_games.algorithms import names
    from preference_games.report import run_every_algorithm

    rows = run_every_algorithm(steps=1)
    assert [row.algorithm.split("(")[0] for row in rows] == names()  # bpo, bpo-ema: not bpo-ipo, bpo-ema-ipo


# ------------------------------------------------------------------------------------------- the library itself
GAME = rps_variant(antisymmetrize=True)


@pytest.mark.parametrize("max_iter", [-1, True, 2.5])
def test_regularized_nash_refuses_a_bad_max_iter(max_iter):
    with pytest.raises(ValueError, match="max_iter must be a non-negative integer"):
        regularized_nash(GAME, 0.1, max_iter=max_iter)


@pytest.mark.parametrize("tau", [True, np.True_, "0.1", 1e-300, 5e-324])
def test_tau_must_be_a_real_number_the_solver_supports(tau):
    with pytest.raises(ValueError, match="tau"):
        regularized_nash(GAME, tau)


def test_measures_accept_any_tau_whose_reciprocal_is_finite():
    assert duality_gap(GAME, [1.0, 0.0, 0.0], 1e-300) > 0  # the gap needs only a finite 1/τ, not the solver
    with pytest.raises(ValueError, match="1/tau overflows"):
        duality_gap(GAME, [1.0, 0.0, 0.0], 5e-324)
    with pytest.raises(ValueError, match="real number"):
        duality_gap(GAME, [1.0, 0.0, 0.0], True)


def test_simulate_refuses_anything_but_preference_games():
    with pytest.raises(TypeError, match="PreferenceGame"):
        simulate(make("online-ipo"), [[0.5, 0.2], [0.8, 0.5]], steps=1)
    with pytest.raises(TypeError, match="PreferenceGame"):
        simulate(make("online-ipo"), [], steps=1)
    with pytest.raises(ValueError, match="seed"):
        simulate(make("online-ipo"), GAME, steps=1, seed=-1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: PreferenceGame(np.array([[0.5, 0.5 + 0j], [0.5, 0.5]])),  # complex even with a zero imaginary part
        lambda: PreferenceGame([[0.5, 0.5], [0.5, 0.5]], ref=np.array([0.5 + 1e-3j, 0.5 - 1e-3j])),
        lambda: GAME.policy(np.array([1.0, 0.0, 0.0], dtype=complex)),
        lambda: TabularPolicy.from_probs(np.array([[0.5 + 0.1j, 0.5]])),
        lambda: TabularPolicy(np.log(np.array([[0.5, 0.5]])) + 0j),
    ],
    ids=["matrix", "reference", "policy", "from_probs", "log-probs"],
)
def test_complex_arrays_are_refused_not_truncated(build):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning would mean it was truncated instead
        with pytest.raises(ValueError, match="complex entries"):
            build()


def test_booleans_and_text_are_not_numbers():
    with pytest.raises(ValueError, match="boolean"):
        TabularPolicy.from_probs(np.array([True, False]))
    with pytest.raises(ValueError, match="rectangular numeric"):
        PreferenceGame([["0.5", "0.5"], ["0.5", "0.5"]])


def test_games_check_seed_and_size_before_building():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        by_name("random", seed=-1)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        by_name("rps", seed=True)
    with pytest.raises(ValueError, match=r"a 10000000-action game needs 7.45e\+05 GiB for P"):
        by_name("cyclic", actions=10_000_000)
