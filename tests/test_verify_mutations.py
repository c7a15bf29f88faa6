"""Mutation test of `preference-games verify`: plausible bugs planted in the engine must change a check's verdict.

Each mutation edits one function of the engine — its source text, a unique snippet replaced, recompiled in its
module's namespace — and patches every reference to it in the loaded ``preference_games`` modules (module
attributes, ``from x import y`` copies and registries such as ``algorithms.FACTORIES``), so the checks call the
mutant wherever they reach the engine. The checks themselves are never touched. For each mutation we name the checks
it must flip, away from their verdict on the unmutated engine (holds → fails or error, holds-with-correction → fails
or error), on a small suite (the named games and 4 random ones). The mutations cover: the equilibrium solver at the
wrong τ (2τ and 1.01τ), the engine's geometric mixture with swapped exponents (in the tabular policies and in the
exact dynamics' fused step, which builds its own), an off-by-one in each η
schedule of the algorithms (INPO's Theorem 4 schedule, Nash-MD's decreasing step), the IPO target 1/τ for 1/(2τ),
and swapped soft labels. About a minute on a 2-core machine.
"""

from __future__ import annotations

import ast
import functools
import importlib
import sys
import textwrap

import pytest
from test_verify_full import EXPECTED

from preference_games.verify import Suite, checks, run_checks

#: The suite the mutations run on: small, since only the named checks run.
SUITE = Suite(games=4, seed=0)

#: (id, module, function or Class.method, snippet of its source, replacement, checks that must flip).
MUTATIONS = [
    ("solver at 2τ", "preference_games.equilibria", "_newton_solve",
     "newton = _Newton(game, tau, mass_floor)", "newton = _Newton(game, 2 * tau, mass_floor)",
     ["ipo-md/prop-4.1", "inpo/lemma-2", "inpo/thm-4", "inpo/nash-property", "nash-md/last-iterate",
      "nash-md/decreasing-step"]),
    ("solver at 1.01τ", "preference_games.equilibria", "_newton_solve",
     "newton = _Newton(game, tau, mass_floor)", "newton = _Newton(game, 1.01 * tau, mass_floor)",
     ["ipo-md/prop-4.1", "inpo/lemma-2", "inpo/thm-4", "inpo/nash-property", "nash-md/last-iterate",
      "nash-md/decreasing-step"]),
    ("torch mixture π^β π_ref^(1−β)", "preference_games.models", "geometric_mixture",
     "(1 - beta) * a + beta * b", "beta * a + (1 - beta) * b",
     ["ipo-md/prop-5.1", "nash-md/last-iterate"]),
    # the exact dynamics' fused step builds the mixture itself (IPO-MD's Figure 9 runs through it)
    ("fused-step mixture π^β π_ref^(1−β)", "preference_games.tabular", "ExactContrastiveGradient.__init__",
     "self.keep = None if self.beta is None else 1 - self.beta",
     "self.keep, self.beta = (None, None) if self.beta is None else (self.beta, 1 - self.beta)",
     ["ipo-md/app-F-figure-9"]),
    ("INPO Theorem 4 η_t = τ(t + 1)/2", "preference_games.algorithms.mirror_descent", "inverse_step",
     "(iteration + 3) / 2.0", "(iteration + 2) / 2.0",
     ["inpo/thm-4"]),
    ("Nash-MD decreasing η_t = τ(t + 1)/2", "preference_games.algorithms.mirror_descent", "nash_md_inverse_step",
     "(t + 2) / 2.0", "(t + 1) / 2.0",
     ["nash-md/decreasing-step"]),
    ("IPO target 1/τ", "preference_games.losses", "ipo",
     "0.5 / tau", "1.0 / tau",
     ["ipo-md/eq-7", "ipo-md/prop-4.1", "ipo-md/soft-label", "ipo-md/thm-G.7", "inpo/prop-6", "bpo/fixed-point"]),
    ("soft label p(y′ ≻ y)", "preference_games.samplers", "PairSampler.exhaustive",
     "oracle.prob(x, y, y2)", "oracle.prob(x, y2, y)",
     ["ipo-md/soft-label", "ipo-md/lemma-G.3", "ipo-md/thm-G.7", "inpo/prop-6", "sppo/multiplicative-update"]),
]


def _source(module, qualname: str) -> str:
    """The current source text of ``module.qualname`` (a function, or Class.method), found by name in the module's
    file (not by line number: the file may have been edited since it was imported)."""
    with open(module.__file__, encoding="utf-8") as file:
        text = file.read()
    node = ast.parse(text)
    for part in qualname.split("."):
        node = next(n for n in node.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part)
    start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
    return textwrap.dedent("".join(text.splitlines(keepends=True)[start:node.end_lineno]))


def mutate(monkeypatch, module_name: str, qualname: str, snippet: str, replacement: str) -> None:
    """Replace the one occurrence of ``snippet`` in the source of ``module_name.qualname`` by ``replacement``,
    compile it in (a copy of) the module's namespace and patch it in: a method on its class, a function everywhere
    the original object is referenced — module attributes (``from x import y`` copies included) and the keys and
    values of module-level dicts (registries) of every loaded ``preference_games`` module."""
    module = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    owner = functools.reduce(getattr, path, module)
    original = vars(owner)[name]
    source = _source(module, qualname)
    assert source.count(snippet) == 1, f"{snippet!r} must occur once in {qualname}; the engine changed?"
    namespace = dict(vars(module))
    exec(compile(source.replace(snippet, replacement), f"<mutant of {module_name}.{qualname}>", "exec"), namespace)
    mutant = namespace[name]
    if path:
        monkeypatch.setattr(owner, name, mutant)
        return
    for loaded in _engine_modules():
        for attribute, value in list(vars(loaded).items()):
            if value is original:
                monkeypatch.setattr(loaded, attribute, mutant)
            elif isinstance(value, dict):
                for key, item in list(value.items()):
                    if item is original:
                        monkeypatch.setitem(value, key, mutant)
                    if key is original:
                        monkeypatch.setitem(value, mutant, item)


def _engine_modules():
    return [m for name, m in list(sys.modules.items()) if name.startswith("preference_games") and m is not None]


def clear_caches() -> None:
    """Empty every functools cache of the package (solver results, the trajectories the INPO checks share, the
    suite's games), so that no result of the unmutated engine survives into a mutated run or back."""
    for module in _engine_modules():
        for value in list(vars(module).values()):
            for candidate in [value, *(vars(value).values() if isinstance(value, type) else ())]:
                if hasattr(candidate, "cache_clear"):
                    candidate.cache_clear()


@pytest.fixture
def fresh_caches():
    clear_caches()
    yield
    clear_caches()


@pytest.mark.slow
@pytest.mark.parametrize("label, module, qualname, snippet, replacement, flips", MUTATIONS,
                         ids=[m[0] for m in MUTATIONS])
def test_a_planted_engine_bug_flips_the_named_checks(monkeypatch, fresh_caches, label, module, qualname, snippet,
                                                     replacement, flips):
    selected = checks(flips)
    assert {r.check.name: r.outcome.verdict for r in run_checks(selected, SUITE)} == {n: EXPECTED[n] for n in flips}
    clear_caches()
    mutate(monkeypatch, module, qualname, snippet, replacement)
    mutated = {r.check.name: r.outcome for r in run_checks(selected, SUITE)}
    unflipped = {name: outcome for name, outcome in mutated.items() if outcome.verdict == EXPECTED[name]}
    assert not unflipped, f"{label}: still {[(n, o.verdict, o.measured) for n, o in unflipped.items()]}"
    assert all(o.verdict in ("fails", "error") for o in mutated.values())
