"""Executable checks of every numbered result of the seed papers (``preference-games verify``).

Each check measures one claim on the named games and N seeded random games and reports its worst error and a verdict
(holds / fails / holds-with-correction). The checks live in one module per paper; ``docs/theorems.md`` gives, per
result, the statement in our notation, how it is checked and what we found.

>>> from preference_games.verify import Suite, checks, run_checks
>>> [r.outcome.verdict for r in run_checks(checks(["ipo-md/prop-4.1"]), Suite(games=10))]
['holds']
"""

from .core import CORRECTED, FAILS, HOLDS, VERDICTS, Check, Outcome, Result, check, checks, judged, run_checks
from .suite import FAMILIES, Suite

__all__ = ["CORRECTED", "FAILS", "FAMILIES", "HOLDS", "VERDICTS", "Check", "Outcome", "Result", "Suite", "check",
           "checks", "judged", "run_checks"]
