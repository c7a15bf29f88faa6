"""Tabular policies on the simplex, one distribution per prompt, stored as log-probabilities.

A :class:`TabularPolicy` is an immutable ``[X, Y]`` array of log-probabilities (prompts × actions). Actions outside
the support hold ``-inf`` explicitly, so a reference policy with zeros restricts everything built from it without
ever forming ``-inf - -inf``. Every normalisation goes through ``logsumexp``; everything is float64.

>>> pi = TabularPolicy.from_probs([[0.5, 0.5, 0.0]])
>>> ref = TabularPolicy.uniform(1, 3)
>>> round(float(pi.kl(ref)[0]), 12) == round(float(np.log(3 / 2)), 12)
True
>>> pi.geometric_mixture(ref, beta=0.5).probs.round(3).tolist()
[[0.5, 0.5, 0.0]]
"""

from __future__ import annotations

import numpy as np


class TabularPolicy:
    """An immutable batch of distributions over Y, one per prompt: ``log_probs`` float64 [X, Y]."""

    __slots__ = ("log_probs",)

    def __init__(self, log_probs):
        log_probs = real_array(log_probs, "log-probabilities")
        if log_probs.ndim == 1:
            log_probs = log_probs[None]
        if log_probs.ndim != 2 or log_probs.shape[1] == 0:
            raise ValueError(f"log-probabilities must have shape [X, Y]; got {log_probs.shape}")
        if np.any(np.isnan(log_probs)) or np.any(log_probs == np.inf):
            raise ValueError("log-probabilities contain NaN or +inf")
        norm = logsumexp(log_probs, axis=-1)
        if np.any(np.abs(norm) > 1e-9):
            raise ValueError(f"probabilities must sum to 1 per prompt; log of the sums: {norm.max():.3g}")
        log_probs = log_probs - norm[:, None]
        log_probs.flags.writeable = False
        object.__setattr__(self, "log_probs", log_probs)

    def __setattr__(self, name, value):
        raise AttributeError("TabularPolicy is immutable")

    # ------------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_probs(cls, probs) -> "TabularPolicy":
        """From probabilities [X, Y] (or [Y]); zeros become ``-inf`` and leave the support."""
        probs = real_array(probs, "probabilities")
        if np.any(probs < 0) or not np.all(np.isfinite(probs)):
            raise ValueError("probabilities must be finite and non-negative")
        with np.errstate(divide="ignore"):
            return cls(np.log(probs))

    @classmethod
    def from_logits(cls, logits, support=None) -> "TabularPolicy":
        """softmax(logits) per prompt; ``support`` (bool, same shape) forces zeros elsewhere."""
        logits = real_array(logits, "logits")
        if support is not None:
            logits = np.where(support, logits, -np.inf)
        if logits.ndim == 1:
            logits = logits[None]
        if np.any(np.all(logits == -np.inf, axis=-1)):
            raise ValueError("a prompt has an empty support")
        return cls(logits - logsumexp(logits, axis=-1, keepdims=True))

    @classmethod
    def uniform(cls, num_prompts: int, num_actions: int) -> "TabularPolicy":
        return cls(np.full((num_prompts, num_actions), -np.log(num_actions)))

    # ---------------------------------------------------------------------------------------------- views
    @property
    def shape(self) -> tuple[int, int]:
        return self.log_probs.shape

    @property
    def probs(self) -> np.ndarray:
        """float64 [X, Y], exact zeros off the support."""
        return np.exp(self.log_probs)

    @property
    def support(self) -> np.ndarray:
        """bool [X, Y]"""
        return self.log_probs > -np.inf

    def __repr__(self) -> str:
        return f"TabularPolicy({np.array2string(self.probs, precision=4)})"

    # ------------------------------------------------------------------------------------------- measures
    def kl(self, other: "TabularPolicy") -> np.ndarray:
        """KL(self ‖ other) per prompt, float64 [X]; ``inf`` where self has mass outside other's support.

        Computed as Σ_{p>0} p·(d + expm1(−d)) + Σ_{p=0} q with d = log p − log q. For normalised p and q this equals
        Σ p·d, but every term is non-negative, so a tiny KL (an equilibrium's duality gap, say) keeps its relative
        precision instead of drowning in the cancellation of Σ p·d.
        """
        return _kl(self.log_probs, _as_log_probs(other))

    def entropy(self) -> np.ndarray:
        """Shannon entropy per prompt (nats), float64 [X]."""
        p = self.probs
        return -np.sum(np.where(p > 0, p * np.where(p > 0, self.log_probs, 0.0), 0.0), axis=-1)

    def geometric_mixture(self, other: "TabularPolicy", beta: float) -> "TabularPolicy":
        """The normalised geometric mixture π^{1−β} other^β (IPO-MD §5.1; β is the weight of ``other``).

        Its support is the intersection of both supports; where the supports agree, β = 0 and β = 1 return the
        endpoints exactly (renormalising would move them by an ulp).
        """
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1]; got {beta}")
        other_policy = other if isinstance(other, TabularPolicy) else TabularPolicy(other)
        if beta in (0.0, 1.0) and np.array_equal(self.support, other_policy.support):
            return self if beta == 0.0 else other_policy
        other = other_policy.log_probs
        both = self.support & (other > -np.inf)
        a, b = np.where(both, self.log_probs, 0.0), np.where(both, other, 0.0)  # finite, so 0·a = 0 at β = 1
        return TabularPolicy.from_logits(np.where(both, (1.0 - beta) * a + beta * b, -np.inf))

    # ----------------------------------------------------------------------------------- per-sample access
    def log_prob(self, x, y) -> np.ndarray:
        """log π(y | x) for index arrays x, y of one shape."""
        return self.log_probs[np.asarray(x), np.asarray(y)]

    def sample(self, x, n: int, rng: np.random.Generator) -> np.ndarray:
        """n actions for each prompt index in x: int [len(x), n] (inverse-CDF on the exact probabilities)."""
        x = np.atleast_1d(np.asarray(x))
        cdf = np.cumsum(self.probs[x], axis=-1)  # [B, Y]
        u = rng.random((len(x), n)) * cdf[:, -1:]
        return np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(-1), self.shape[1] - 1)


def real_array(values, what: str) -> np.ndarray:
    """``values`` as a new float64 array, or a one-line ``ValueError`` that names ``what``.

    numpy's own conversion is too lenient for input: it drops an imaginary part with only a ComplexWarning, reads
    booleans as 0 and 1 and parses text such as "0.5". Each of those is a mistake upstream (a complex matrix is not a
    preference matrix; a boolean mask is not a distribution), so each is refused, as is a ragged nested list.
    """
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):  # ragged nesting: numpy cannot build the array at all
        raise ValueError(f"{what} is not a rectangular numeric array") from None
    if array.dtype.kind == "c":
        raise ValueError(f"{what} has complex entries; expected real numbers")
    if array.dtype.kind == "b":
        raise ValueError(f"{what} has boolean entries; expected numbers")
    if array.dtype.kind not in "iufO":  # text, bytes, dates: not numbers, whatever numpy could parse them into
        raise ValueError(f"{what} is not a rectangular numeric array (it holds {array.dtype.name} values)")
    try:
        # An object array (e.g. Fractions, or None in a list) converts element by element: complex Python numbers
        # fail here too, since float() refuses them.
        return np.array(array, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{what} is not a rectangular numeric array") from None


def policy_lists(probs: np.ndarray) -> list:
    """Probabilities [X, Y] as JSON-ready lists: a list of floats for a one-prompt game, a list of lists otherwise."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs[0].tolist() if len(probs) == 1 else probs.tolist()


def logsumexp(a: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log Σ exp(a) along ``axis``, stable, with −inf for an all-(−inf) slice.

    scipy's algorithm (the m terms at the peak are summed exactly as m, the rest goes through log1p, so a uniform or
    already-normalised row gives exactly 0) without its array-API dispatch, which costs ~0.5 ms a call and dominated
    solving thousands of small games (the fixed points of a batched run).
    """
    peak = np.max(a, axis=axis, keepdims=True)
    at_peak = a == peak
    count = np.sum(at_peak, axis=axis, keepdims=True)  # the m terms equal to the peak sum to m exactly
    finite_peak = np.where(np.isfinite(peak), peak, 0.0)
    rest = np.sum(np.where(at_peak, 0.0, np.exp(a - finite_peak)), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):  # log(0) = −inf for an empty support is the intended answer
        out = np.where(np.isfinite(peak), peak + np.log1p(rest / count) + np.log(count), -np.inf)
    return out if keepdims else np.squeeze(out, axis=axis)


def _as_log_probs(policy) -> np.ndarray:
    if isinstance(policy, TabularPolicy):
        return policy.log_probs
    return TabularPolicy(policy).log_probs


def _kl(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p‖q) over the last axis for log-probability arrays (see :meth:`TabularPolicy.kl`)."""
    p_pos = log_p > -np.inf
    q_pos = log_q > -np.inf
    both = p_pos & q_pos
    lp, lq = np.where(both, log_p, 0.0), np.where(both, log_q, 0.0)
    p, d = np.exp(lp), lp - lq
    # p·(d − 1 + q/p): the expm1 form keeps full precision near d = 0; far from it there is no cancellation and
    # p·d + q − p avoids overflowing expm1(−d) when q ≫ p.
    near = np.abs(d) <= 1.0
    terms = np.where(near, p * (d + np.expm1(-np.where(near, d, 0.0))), p * d + np.exp(lq) - p)
    inside = np.where(both, terms, 0.0).sum(-1)
    outside = np.where(~p_pos & q_pos, np.exp(log_q), 0.0).sum(-1)
    escapes = np.any(p_pos & ~q_pos, axis=-1)  # p has mass where q has none
    return np.where(escapes, np.inf, inside + outside)
