"""Every algorithm of the seed papers behind one interface: construct by name with :func:`make`.

>>> algorithm = make("ipo-md", beta=0.5, tau=0.1)
>>> algorithm.describe()
'ipo-md(beta=0.5, tau=0.1)'
"""

from __future__ import annotations

import inspect

from . import dap, mirror_descent, rlhf
from . import bpo, iopo
from .base import Algorithm, EMA, EveryK, Schedule

FACTORIES = {**dap.FACTORIES, **mirror_descent.FACTORIES, **rlhf.FACTORIES, **bpo.FACTORIES, **iopo.FACTORIES}


def names() -> list[str]:
    return sorted(FACTORIES)


def make(name: str, **params) -> Algorithm:
    """The algorithm called ``name`` with the given parameters (see :func:`parameters` for each one's names)."""
    if name not in FACTORIES:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(names())}")
    accepted = parameters(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"{name} takes no parameter {', '.join(unknown)} (it takes: {', '.join(accepted) or 'none'})")
    return FACTORIES[name](**params)


def parameters(name: str) -> dict:
    """The parameters of an algorithm with their defaults."""
    factory = FACTORIES[name]
    fixed = set(getattr(factory, "keywords", {}))  # arguments a registry entry binds (e.g. the update rule)
    signature = inspect.signature(factory)
    return {k: p.default for k, p in signature.parameters.items() if k not in fixed | {"name"}}


__all__ = ["Algorithm", "EMA", "EveryK", "Schedule", "make", "names", "parameters"]
