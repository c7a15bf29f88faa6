"""Checks of the main text of the IPO-MD paper (Calandriello et al. 2024, "Human alignment of large language models
through online preference optimisation"; ``../shared/papers/ipo-md-online-preference-optimisation.txt``).

Our notation (``docs/paper_notes.md`` §1): the paper's τ is our ``tau``, its β our ``beta``; P[y, y'] = p(y ≻ y').
"""

from __future__ import annotations

import numpy as np

from ..algorithms import make
from ..equilibria import duality_gap, regularized_nash
from .core import check, judged
from .exact import by_shape, population_gradient

#: KL temperatures every equilibrium check sweeps.
TAUS = (0.05, 0.2, 1.0)


@check("ipo-md/prop-4.1", paper="IPO-MD", location="Prop. 4.1, eq. 12",
       statement="the regularised Nash equilibrium π* ∝ π_ref exp(Pπ*/τ) is a stationary point of the online IPO "
                 "population loss (eq. 11), and its duality gap is 0")
def prop_4_1(suite):
    """For every game and τ ∈ TAUS: solve π* with the engine, then take the exact gradient of the online-IPO
    population loss (eq. 11, pairs from SG[π], λ_p labels) with respect to the logits at π*. The error is the larger
    of τ·max |∇| (the loss's targets are 1/2τ, so τ·∇ is the gradient on a unit scale) and DualGap(π*)."""
    games = suite.games()
    worst, where = 0.0, ""
    for tau in TAUS:
        algorithm = make("online-ipo", tau=tau)
        for indices in by_shape(games).values():
            group = [games[i] for i in indices]
            stars = [regularized_nash(g, tau).policy for g in group]
            _, grad = population_gradient(algorithm, group, np.stack([s.log_probs for s in stars]))
            for g, s, gr in zip(group, stars, grad):
                error = max(tau * float(np.abs(gr).max()), duality_gap(g, s, tau))
                if error > worst:
                    worst, where = error, f"{g.name}, τ = {tau:g}"
    return judged(f"max over games and τ ∈ {TAUS} of τ·|∇ online-IPO loss at π*| and DualGap(π*) (worst: {where})",
                  worst, 1e-9, len(games))
