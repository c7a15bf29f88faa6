"""The terminal table of a verify run: one row per result, then the counterexamples and corrections in full.

>>> from preference_games.verify import Suite, checks, run_checks
>>> print(format_table(run_checks(checks(["ipo-md/prop-4.1"]), Suite(games=4))).splitlines()[0].split())
['result', 'paper,', 'location', 'measured', 'worst', 'tolerance', 'verdict']
"""

from __future__ import annotations

import textwrap
from collections import Counter

#: Columns: (title, width to wrap at or None, right-aligned). The two prose columns wrap onto further lines.
COLUMNS = (("result", None, False), ("paper, location", 30, False), ("measured", 52, False),
           ("worst", None, True), ("tolerance", None, True), ("verdict", None, False))
NOTE_WIDTH = 118


def _number(value: float) -> str:
    return "—" if value != value else f"{value:.2e}"  # NaN (a check that raised) shows as a dash


def _cells(result) -> list[str]:
    c, o = result.check, result.outcome
    return [c.name, f"{c.paper}, {c.location}", o.measured, _number(o.worst_error), _number(o.tolerance), o.verdict]


def format_table(results) -> str:
    """The results as an aligned text table (prose columns wrapped), then every correction and counterexample, and
    a count of the verdicts."""
    rows = [[[text] if wrap is None else textwrap.wrap(text, wrap) or [""]
             for text, (_, wrap, _) in zip(cells, COLUMNS)]
            for cells in [[title for title, _, _ in COLUMNS]] + [_cells(r) for r in results]]
    widths = [wrap or max(len(row[i][0]) for row in rows) for i, (_, wrap, _) in enumerate(COLUMNS)]

    def lines(row) -> list[str]:
        height = max(len(cell) for cell in row)
        out = []
        for k in range(height):
            parts = [(cell[k] if k < len(cell) else "") for cell in row]
            out.append("  ".join(p.rjust(w) if right else p.ljust(w)
                                 for p, w, (_, _, right) in zip(parts, widths, COLUMNS)).rstrip())
        return out

    text = lines(rows[0]) + ["-" * (sum(widths) + 2 * (len(widths) - 1))]
    for row in rows[1:]:
        text += lines(row)
    notes = [f"{r.check.name}: {kind}: {getattr(r.outcome, kind)}" for r in results
             for kind in ("correction", "counterexample") if getattr(r.outcome, kind)]
    if notes:
        text += [""] + [textwrap.fill(n, NOTE_WIDTH, subsequent_indent="    ") for n in notes]
    counts = Counter(r.outcome.verdict for r in results)
    text += ["", ", ".join(f"{n} {verdict}" for verdict, n in counts.items())]
    return "\n".join(text)
