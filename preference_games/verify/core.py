"""The check registry: one executable check per numbered result of the seed papers, and what a check reports.

A check is a function ``suite -> Outcome`` registered with :func:`check`. It measures a claim on the suite's games
(the named games plus N seeded random ones, :mod:`preference_games.verify.suite`) and reports the worst error it saw
against a tolerance, with a verdict:

* ``holds`` — the claim as printed is true on every game within the tolerance;
* ``fails`` — it is false; ``counterexample`` names a game (and the numbers) where it breaks;
* ``holds-with-correction`` — false as printed, true after the correction stated in ``correction`` (a typo, a missing
  centring); ``worst_error`` is then the corrected statement's.

Checks never tune themselves to pass: the tolerance is fixed in the check (round-off for identities, a stated
statistical level for Monte Carlo), and the verdict is whatever the measurement says.

>>> from preference_games.verify import checks
>>> any(c.name == "ipo-md/prop-4.1" for c in checks())
True
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

HOLDS = "holds"
FAILS = "fails"
CORRECTED = "holds-with-correction"
ERROR = "error"  # the check itself raised: a bug in the check or the engine, never a statement about the paper
VERDICTS = (HOLDS, FAILS, CORRECTED)


@dataclass(frozen=True)
class Outcome:
    """What one check measured.

    measured: one line saying what was computed (e.g. "max |∇ online IPO + (4/τ)∇ self-play| over 212 games").
    worst_error: the largest error over all games (for a rate, the fitted rate); ``tolerance`` its threshold.
    games: how many games it ran on. counterexample / correction: one line each, where they apply.
    """

    measured: str
    worst_error: float
    tolerance: float
    verdict: str
    games: int
    counterexample: str = ""
    correction: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS + (ERROR,):
            raise ValueError(f"unknown verdict {self.verdict!r}; use one of {VERDICTS}")


def judged(measured: str, worst_error: float, tolerance: float, games: int, *, counterexample: str = "",
           correction: str = "") -> Outcome:
    """An Outcome whose verdict is ``holds`` if worst_error ≤ tolerance, else ``fails`` (or, with a correction,
    ``holds-with-correction`` / ``fails``: the correction is judged, the printed statement is reported alongside)."""
    ok = bool(worst_error <= tolerance)
    verdict = (CORRECTED if correction else HOLDS) if ok else FAILS
    return Outcome(measured, float(worst_error), float(tolerance), verdict, games, counterexample, correction)


@dataclass(frozen=True)
class Check:
    """One numbered result: ``name`` (``paper-slug/result``), ``paper``, ``location`` (numbers in the paper),
    ``statement`` (one line, our notation), ``quick`` (cheap enough for the demo's summary) and the function."""

    name: str
    paper: str
    location: str
    statement: str
    run: Callable = field(repr=False)
    quick: bool = True


_REGISTRY: dict[str, Check] = {}


def check(name: str, *, paper: str, location: str, statement: str, quick: bool = True):
    """Register ``fn(suite) -> Outcome`` as the check ``name``."""

    def register(fn):
        if name in _REGISTRY:
            raise ValueError(f"check {name!r} registered twice")
        _REGISTRY[name] = Check(name, paper, location, statement, fn, quick)
        return fn

    return register


def checks(only: Iterable[str] | None = None) -> list[Check]:
    """The registered checks in registration order; ``only``: names or name prefixes (``inpo/`` selects a paper),
    each of which must match some check."""
    from . import modules  # noqa: F401  (importing the modules registers their checks)

    listed = list(_REGISTRY.values())
    if only is None:
        return listed
    matches = lambda c, pattern: c.name == pattern or c.name.startswith(pattern)  # noqa: E731
    only = [only] if isinstance(only, str) else list(only)
    if not only or any(not isinstance(p, str) or not p.strip() for p in only):
        raise ValueError(f"only must be a non-empty list of check names or prefixes; got {only!r}")
    for pattern in only:
        if not any(matches(c, pattern) for c in listed):
            raise ValueError(f"no check named {pattern!r}; `preference-games verify --list` shows them")
    return [c for c in listed if any(matches(c, pattern) for pattern in only)]


@dataclass(frozen=True)
class Result:
    """A check together with its outcome and the seconds it took."""

    check: Check
    outcome: Outcome
    seconds: float

    def as_dict(self) -> dict:
        """A JSON-ready dict; a NaN error or tolerance (a check that raised) becomes None, which JSON can hold."""
        c = self.check
        outcome = {k: (None if isinstance(v, float) and v != v else v) for k, v in asdict(self.outcome).items()}
        return {"name": c.name, "paper": c.paper, "location": c.location, "statement": c.statement, **outcome,
                "seconds": round(self.seconds, 3)}


def run_checks(selected: list[Check], suite, *, progress: bool = False) -> list[Result]:
    """Run each check on ``suite``, with a progress bar on stderr if ``progress``.

    A check that raises is reported with the verdict ``error`` and the exception as its counterexample, so one broken
    check does not hide the others. Torch runs on one thread: the checks' tensors are small, and a second spinning
    thread made torch-heavy checks up to 16× slower on a loaded 2-core machine (measured).
    """
    from ..training import one_thread, progress_bar

    bar = progress_bar(len(selected), progress, "verify")
    results = []
    with one_thread():
        for c in selected:
            start = time.perf_counter()
            try:
                outcome = c.run(suite)
            except Exception as error:  # noqa: BLE001  (reported, not swallowed: the verdict says "error")
                outcome = Outcome("the check raised", float("nan"), float("nan"), ERROR, 0,
                                  counterexample=f"{type(error).__name__}: {error}")
            results.append(Result(c, outcome, time.perf_counter() - start))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return results
