"""The terminal table of a verify run: one row per result, then the counterexamples and corrections in full.

>>> from preference_games.verify import Suite, checks, run_checks
>>> print(format_table(run_checks(checks(["ipo-md/prop-4.1"]), Suite(games=4))).splitlines()[0].split())
['result', 'paper,', 'location', 'measured', 'worst', 'tolerance', 'verdict']
"""

from __future__ import annotations

import textwrap
from collections import Counter

MEASURED_WIDTH = 52


def _number(value: float) -> str:
    return "—" if value != value else f"{value:.2e}"  # NaN (a check that raised) shows as a dash


def format_table(results) -> str:
    """The results as an aligned text table with the measured text wrapped, followed by every counterexample and
    correction, and a count of verdicts."""
    rows = [(r.check.name, f"{r.check.paper}, {r.check.location}", textwrap.wrap(r.outcome.measured, MEASURED_WIDTH)
             or [""], _number(r.outcome.worst_error), _number(r.outcome.tolerance), r.outcome.verdict)
            for r in results]
    header = ("result", "paper, location", ["measured"], "worst", "tolerance", "verdict")
    widths = [max(len(row[i]) for row in rows + [header]) for i in (0, 1)]
    widths.insert(2, MEASURED_WIDTH)
    widths += [max(len(row[i]) for row in rows + [header]) for i in (3, 4, 5)]

    def line(row) -> list[str]:
        measured = row[2]
        first = [row[0], row[1], measured[0], row[3], row[4], row[5]]
        out = ["  ".join(cell.ljust(w) if i < 3 or i == 5 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(first, widths))).rstrip()]
        pad = " " * (widths[0] + widths[1] + 4)
        out += [pad + more for more in measured[1:]]
        return out

    lines = line(header) + ["-" * (sum(widths) + 2 * (len(widths) - 1))]
    for row in rows:
        lines += line(row)
    notes = []
    for r in results:
        if r.outcome.correction:
            notes.append(f"{r.check.name}: correction: {r.outcome.correction}")
        if r.outcome.counterexample:
            notes.append(f"{r.check.name}: counterexample: {r.outcome.counterexample}")
    if notes:
        lines += [""] + [textwrap.fill(n, 118, subsequent_indent="    ") for n in notes]
    counts = Counter(r.outcome.verdict for r in results)
    lines += ["", ", ".join(f"{n} {verdict}" for verdict, n in counts.items())]
    return "\n".join(lines)
