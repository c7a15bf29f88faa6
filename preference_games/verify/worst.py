"""Worst-case bookkeeping the checks share: the largest value of each measured quantity and where it occurred
(:class:`Worst`), the name of a configuration (:func:`namer`), and the verdict of a claim checked as printed and
as corrected (:func:`corrected_verdict`).

>>> from preference_games.games import cyclic
>>> worst = Worst("error")
>>> worst.update("error", [1e-14, 3e-13, 2e-13], namer([cyclic(3), cyclic(4), cyclic(5)], τ=[0.05, 0.2, 1.0]))
>>> worst["error"]
(3e-13, 'cyclic(4), τ = 0.2')
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .core import CORRECTED, FAILS, HOLDS


class Worst:
    """The largest value seen for each key, and where. Keys start at ``start`` with no place: 0 for errors (which
    are ≥ 0), −inf for quantities of either sign. NaN counts as +inf, so a computation that broke down can never
    pass as a small error."""

    def __init__(self, *keys: str, start: float = 0.0):
        self.value = dict.fromkeys(keys, start)
        self.where = dict.fromkeys(keys, "")

    def __getitem__(self, key: str) -> tuple[float, str]:
        return self.value[key], self.where[key]

    def update(self, key: str, values, where: Callable[[int], str], mask=None) -> None:
        """``values``: one per configuration (or a scalar); ``where(i)`` names configuration i (:func:`namer`);
        ``mask`` selects the configurations that count. A value replaces the key's only if it is strictly larger,
        so the first place of the largest value is kept."""
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
        values = np.where(np.isnan(values), np.inf, values)
        if mask is not None:
            values = np.where(mask, values, -np.inf)
        i = int(np.argmax(values))
        if values[i] > self.value[key]:
            self.value[key], self.where[key] = float(values[i]), where(i)

    def largest(self, keys=None) -> str:
        """The key among ``keys`` (default: all, in the order given to the constructor) with the largest value (the
        first on ties)."""
        return max(keys or self.value, key=lambda k: self.value[k])

    def overall(self, keys=None) -> tuple[float, str]:
        """The largest value among ``keys`` (default: all) and where it occurred."""
        return self[self.largest(keys)]


def namer(games, suffix: str = "", **columns) -> Callable[[int], str]:
    """``where(i)`` for :meth:`Worst.update`: configuration i's game and parameters, e.g. "rps, β = 0.5, τ = 0.05".
    ``games``: one game per configuration; ``columns``: one value per configuration each, printed as
    ``key = value`` for numbers and ``key: value`` otherwise; ``suffix``: appended to every name."""

    def where(i: int) -> str:
        parts = [f"{key} = {column[i]:g}" if np.isscalar(column[i]) and not isinstance(column[i], str)
                 else f"{key}: {column[i]}" for key, column in columns.items()]
        return ", ".join([games[i].name] + parts + ([suffix] if suffix else []))

    return where


def corrected_verdict(printed_ok: bool, corrected_ok: bool) -> str:
    """holds (true as printed), holds-with-correction (false as printed, the correction measured true) or fails."""
    if printed_ok and corrected_ok:
        return HOLDS
    return CORRECTED if corrected_ok else FAILS
