"""README.md's examples run as written, so they cannot rot.

* Every ```bash block is split into command lines (a trailing backslash continues a line; ``#`` starts a comment;
  ``&&`` separates commands). Each ``preference-games ...`` command runs in a subprocess from the repository root
  (``python -m preference_games``, this working tree first on ``PYTHONPATH``) and must exit with status 0 and print no
  traceback. ``--out DIR`` is redirected to a temporary folder, so nothing is written into the repository; ``demo``
  without ``--out`` runs in a temporary working directory and must write its report to the default
  ``preference-games-report/``.
* Lines that are not ``preference-games`` commands are not run here: ``pip install ...`` (CI installs the package
  itself), ``python -m pytest`` (this suite) and ``python benchmarks/...`` (minutes each; benchmarks/README.md).
  :func:`test_readme_runs_only_known_kinds_of_command` fails on any other kind of line, so a new one gets a decision.
* The ```python blocks run in order in one namespace. Where a ``print(...)`` line carries a comment, the comment is
  what it prints: each number there must match the printed number in the same position at the comment's precision
  (``0.311`` to three decimals, ``4.5e-23`` to two significant digits, ``≤ 1e-12`` as a bound), each word must
  appear in the output; text in parentheses is prose.
* The files in ``examples/`` are what examples/README.md says they are.

``demo``, the full-size ``verify`` runs, sequence-model training and ``train`` (30 s to minutes each on an idle
2-core machine, several times that on a loaded one) are marked slow; ``verify --list`` and ``verify --quick`` are not.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
PROGRAM = "preference-games"
#: Command lines the README shows but this test does not run (see the module docstring).
NOT_RUN = ("pip install ", "python -m pytest", "python benchmarks/")
DEMO_DEFAULT_OUT = "preference-games-report"  # cli.DEMO_OUT, spelled out: the README promises this folder


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _command_lines() -> list[list[str]]:
    """Every command of every bash block as an argument list (comments stripped, ``&&`` split)."""
    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:cut])
                words = words[cut + 1:]
    return commands


def _is_not_run(words: list[str]) -> bool:
    return shlex.join(words).startswith(NOT_RUN)


def _program_commands() -> list[list[str]]:
    return [words for words in _command_lines() if words[0] == PROGRAM]


def _is_slow(words: list[str]) -> bool:
    """demo, verify (but --list and --quick) and training a sequence model or a transformer take 30 s to minutes."""
    return (words[1] in ("demo", "train") or (words[1] == "verify" and not {"--list", "--quick"} & set(words))
            or "autoregressive" in words)


def _params():
    for words in _program_commands():
        command = shlex.join(words)
        marks = [pytest.mark.slow] if _is_slow(words) else []
        yield pytest.param(words, id=command[len(PROGRAM) + 1:][:90], marks=marks)


def test_readme_runs_only_known_kinds_of_command():
    others = [shlex.join(w) for w in _command_lines() if w[0] != PROGRAM and not _is_not_run(w)]
    assert not others, f"README bash blocks hold commands this test neither runs nor skips on purpose: {others}"
    assert len(_program_commands()) >= 20  # the blocks were found and parsed (22 commands when this was written)


@pytest.mark.parametrize("words", _params())
def test_readme_command_runs(words, tmp_path):
    args = list(words[1:])
    cwd = ROOT
    if "--out" in args:
        args[args.index("--out") + 1] = str(tmp_path / "out")
    elif args[0] == "demo":
        cwd = tmp_path  # the default output folder is relative to the working directory
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    result = subprocess.run([sys.executable, "-m", "preference_games", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(words)} exited with {result.returncode}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    if args[0] == "plot":
        assert list((tmp_path / "out").glob(f"{args[1]}.*")), f"plot {args[1]} wrote nothing"
    if args[0] == "demo":
        out = tmp_path / "out" if "--out" in args else tmp_path / DEMO_DEFAULT_OUT
        assert (out / "report.html").is_file()
    if "--json" in args:
        json.loads(result.stdout)


# ------------------------------------------------------------------------------------------------ python blocks
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _expected(comment: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(numbers as (relation, text), words) of a README comment; parenthesised text is prose."""
    comment = re.sub(r"\([^)]*\)", " ", comment)
    numbers = [(rel or "=", num) for rel, num in re.findall(rf"(≤\s*)?({_NUMBER})", comment)]
    words = re.findall(r"\b[A-Za-z_]\w*", re.sub(_NUMBER, " ", comment))
    return numbers, words


def _matches(printed: float, relation: str, text: str) -> bool:
    if relation.startswith("≤"):
        return printed <= float(text)
    if re.search(r"[eE]", text):
        digits = len(text.lower().split("e")[0].replace("-", "").replace(".", "")) - 1
        return f"{printed:.{digits}e}" == f"{float(text):.{digits}e}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(f"{printed:.{decimals}f}") == float(text)


def _comments(source: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string.lstrip("#").strip() for tok in tokens if tok.type == tokenize.COMMENT}


def test_readme_python_blocks_run_and_print_what_they_say():
    namespace: dict = {"__name__": "readme"}
    checked = 0
    for block in _blocks("python"):
        comments = _comments(block)
        for statement in ast.parse(block).body:
            code = compile(ast.Module([statement], type_ignores=[]), "README.md", "exec")
            with contextlib.redirect_stdout(io.StringIO()) as captured:
                exec(code, namespace)
            comment = comments.get(statement.end_lineno)
            is_print = (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
                        and getattr(statement.value.func, "id", None) == "print")
            if not (is_print and comment):
                continue
            output = captured.getvalue()
            numbers, words = _expected(comment)
            printed = [float(x) for x in re.findall(_NUMBER, re.sub(r"\b[A-Za-z_]\w*", " ", output))]
            line = ast.get_source_segment(block, statement)
            assert len(printed) == len(numbers), f"{line}: printed {output!r}, README says {comment!r}"
            for value, (relation, text) in zip(printed, numbers):
                assert _matches(value, relation, text), f"{line}: printed {output!r}, README says {comment!r}"
            for word in words:
                assert word in output, f"{line}: printed {output!r}, README says {comment!r}"
            checked += 1
    assert checked >= 5


# ----------------------------------------------------------------------------------------------------- examples
def test_examples_are_what_their_readme_says():
    from preference_games import PreferenceGame
    from preference_games.equilibria import nash_lp

    from_csv = np.loadtxt(EXAMPLES / "P.csv", delimiter=",")
    from_json = np.array(json.loads((EXAMPLES / "P.json").read_text()))
    np.testing.assert_array_equal(from_csv, from_json)
    P = from_csv
    assert P.shape == (4, 4) and np.all((P >= 0) & (P <= 1))
    np.testing.assert_allclose(P + P.T, 1.0, atol=1e-15, rtol=0)
    beaten = (P < 0.5).any(axis=1)  # every action loses to some other: no Condorcet winner
    assert beaten.all()
    ref = np.loadtxt(EXAMPLES / "ref.csv", delimiter=",")
    mu = np.array(json.loads((EXAMPLES / "mu.json").read_text()))
    assert np.isclose(ref.sum(), 1) and (ref == 0).any() and np.isclose(mu.sum(), 1)
    np.testing.assert_array_equal(mu > 0, ref > 0)  # μ covers exactly Supp(π_ref)
    game = PreferenceGame(P, ref)
    game.policy(mu)  # simulate's check of a data policy
    np.testing.assert_allclose(nash_lp(PreferenceGame(P)).policy.probs[0], [0, 1 / 2, 1 / 8, 3 / 8], atol=1e-12)
    np.testing.assert_allclose(nash_lp(game).policy.probs[0], [1 / 2, 1 / 6, 1 / 3, 0], atol=1e-12)
