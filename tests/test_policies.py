"""Tests for ``preference_games.policies.TabularPolicy``: construction, immutability, KL, entropy, geometric
mixtures, per-sample access and sampling.

Tolerances: naive reference formulas on well-conditioned policies agree to 1e-12 relative (plus 1e-14 absolute for
values near zero); places where the code promises exactness (β endpoints, zeros off the support, KL of a policy
with itself) are compared bitwise.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from preference_games.policies import TabularPolicy
from strategies import seeds

RTOL, ATOL = 1e-12, 1e-14


@st.composite
def policy_pairs(draw, zeros=False, scale=1.0):
    """Two random policies [X, Y] from softmax(N(0, scale²)) logits; with ``zeros`` each gets a random support,
    the two sharing at least one action per prompt."""
    rng = np.random.default_rng(draw(seeds))
    shape = (draw(st.integers(1, 3)), draw(st.integers(2, 8)))
    common = rng.integers(shape[1], size=shape[0])

    def one():
        support = rng.random(shape) < 0.7 if zeros else np.ones(shape, bool)
        support[np.arange(shape[0]), common] = True
        return TabularPolicy.from_logits(rng.normal(scale=scale, size=shape), support=support)

    return one(), one()


def naive_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Σ_{p>0} p log(p/q) per row, with loops."""
    out = []
    for prow, qrow in zip(p, q):
        total = 0.0
        for pi, qi in zip(prow, qrow):
            if pi > 0:
                total += np.inf if qi == 0 else pi * np.log(pi / qi)
        out.append(total)
    return np.array(out)


# ============================================================================================ construction
@pytest.mark.parametrize("log_probs", [np.zeros((1, 1, 1)), np.zeros((2, 0)), np.float64(0.0)], ids=["3-D", "Y=0", "0-D"])
def test_rejects_bad_shapes(log_probs):
    with pytest.raises(ValueError, match=r"shape \[X, Y\]"):
        TabularPolicy(log_probs)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rejects_nan_and_plus_inf(bad):
    with pytest.raises(ValueError, match=r"NaN or \+inf"):
        TabularPolicy([[np.log(0.5), bad]])


@pytest.mark.parametrize("log_probs", [[np.log(0.5), np.log(0.6)], [-np.inf, -np.inf], np.log([[0.5, 0.5], [0.5, 0.4]])])
def test_rejects_unnormalised(log_probs):
    with pytest.raises(ValueError, match="sum to 1"):
        TabularPolicy(log_probs)


def test_one_dimensional_input_is_one_prompt_and_tiny_drift_is_renormalised():
    pi = TabularPolicy(np.log([0.25, 0.75]) + 5e-10)
    assert pi.shape == (1, 2)
    np.testing.assert_allclose(pi.probs, [[0.25, 0.75]], rtol=1e-15, atol=0)


def test_immutable():
    pi = TabularPolicy.uniform(2, 3)
    with pytest.raises(AttributeError, match="immutable"):
        pi.log_probs = np.zeros((2, 3))
    with pytest.raises(AttributeError):
        pi.anything = 1
    with pytest.raises(ValueError):
        pi.log_probs[0, 0] = 0.0
    source = np.log(np.full((1, 2), 0.5))
    TabularPolicy(source)
    assert source.flags.writeable  # the caller's array is copied, not frozen


def test_from_probs_zeros_become_minus_inf_and_come_back_exactly():
    pi = TabularPolicy.from_probs([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]])
    assert np.array_equal(pi.log_probs[:, [0]], [[-np.inf], [0.0]])
    assert np.array_equal(pi.log_probs == -np.inf, [[True, False, False], [False, True, True]])
    assert np.array_equal(pi.probs, [[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]])  # dyadic, so exact everywhere
    assert np.array_equal(pi.support, [[False, True, True], [True, False, False]])


@pytest.mark.parametrize("probs", [[0.5, -0.5, 1.0], [np.nan, 1.0], [np.inf, 0.0]])
def test_from_probs_rejects_negative_or_non_finite(probs):
    with pytest.raises(ValueError, match="finite and non-negative"):
        TabularPolicy.from_probs(probs)


def test_from_logits_with_support_is_a_restricted_softmax():
    logits = np.array([[1.0, 2.0, 3.0, 1000.0], [0.0, -1.0, 5.0, 2.0]])
    support = np.array([[True, True, True, False], [False, True, True, True]])
    pi = TabularPolicy.from_logits(logits, support=support)
    expected = np.exp(np.where(support, logits, -np.inf) - [[3.0], [5.0]])  # largest supported logit per row
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(pi.probs, expected, rtol=1e-14, atol=0)
    assert np.array_equal(pi.support, support)


def test_from_logits_is_shift_invariant_and_handles_large_logits():
    logits = np.array([0.0, 1.0, -2.0])
    a, b = TabularPolicy.from_logits(logits), TabularPolicy.from_logits(logits + 800.0)
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-13, atol=0)
    assert np.all(np.isfinite(b.log_probs))


def test_from_logits_empty_support():
    with pytest.raises(ValueError, match="empty support"):
        TabularPolicy.from_logits([[1.0, 2.0], [3.0, 4.0]], support=[[True, False], [False, False]])
    with pytest.raises(ValueError, match="empty support"):
        TabularPolicy.from_logits([-np.inf, -np.inf])


def test_uniform():
    pi = TabularPolicy.uniform(2, 5)
    assert pi.shape == (2, 5)
    np.testing.assert_allclose(pi.probs, 0.2, rtol=1e-15, atol=0)
    np.testing.assert_allclose(pi.log_probs, -np.log(5), rtol=1e-15, atol=0)


# ===================================================================================================== KL
@given(policy_pairs())
def test_kl_matches_naive_formula(pair):
    p, q = pair
    np.testing.assert_allclose(p.kl(q), naive_kl(p.probs, q.probs), rtol=RTOL, atol=ATOL)


@given(policy_pairs(zeros=True, scale=4.0))
def test_kl_non_negative_and_inf_exactly_when_support_escapes(pair):
    p, q = pair
    kl = p.kl(q)
    escapes = np.any(p.support & ~q.support, axis=1)
    assert np.all(kl >= 0)
    assert np.array_equal(np.isinf(kl), escapes)
    np.testing.assert_allclose(kl[~escapes], naive_kl(p.probs, q.probs)[~escapes], rtol=1e-11, atol=ATOL)


@given(policy_pairs(zeros=True, scale=4.0))
def test_kl_of_a_policy_with_itself_is_exactly_zero(pair):
    p, _ = pair
    assert np.array_equal(p.kl(p), np.zeros(p.shape[0]))


def test_kl_known_answers():
    p = TabularPolicy.from_probs([[0.5, 0.5, 0.0]])
    q = TabularPolicy.uniform(1, 3)
    np.testing.assert_allclose(p.kl(q), [np.log(1.5)], rtol=1e-15, atol=0)  # q has extra support: finite
    assert np.array_equal(q.kl(p), [np.inf])  # q has mass where p has none
    point = TabularPolicy.from_probs([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(point.kl(q), [np.log(3.0)], rtol=1e-15, atol=0)


def test_kl_with_extreme_ratios_stays_finite_and_correct():
    """|log p − log q| ≫ 1 in both directions (the branch that avoids expm1 overflow)."""
    p = TabularPolicy([[np.log1p(-np.exp(-800.0)), -800.0]])
    q = TabularPolicy([[-800.0, np.log1p(-np.exp(-800.0))]])
    # KL(p‖q) = (1 − e⁻⁸⁰⁰)·log((1 − e⁻⁸⁰⁰)/e⁻⁸⁰⁰) + e⁻⁸⁰⁰·log(e⁻⁸⁰⁰/(1 − e⁻⁸⁰⁰)) ≈ 800
    np.testing.assert_allclose(p.kl(q), [800.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(q.kl(p), [800.0], rtol=1e-15, atol=0)


def perturbed_pair(seed: int, n: int, eps: float):
    """p ~ Dirichlet(1) and q = p (1 + ε δ) with Σ p δ = 0 and Σ p δ² = 1, so that ½χ²(q, p) = ε²/2."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n))
    delta = rng.normal(size=n)
    delta -= p @ delta
    delta /= np.sqrt(p @ delta**2)
    q = p * (1.0 + eps * delta)
    return TabularPolicy.from_probs(p), TabularPolicy.from_probs(q / q.sum())


def half_chi_square(P: TabularPolicy, Q: TabularPolicy) -> float:
    """½ Σ (q − p)²/p = ½ Σ p (q/p − 1)², with q/p − 1 = expm1(log q − log p) from the stored log-probabilities."""
    lp, lq = P.log_probs[0], Q.log_probs[0]
    return 0.5 * float(np.sum(np.exp(lp) * np.expm1(lq - lp) ** 2))


@given(seeds, st.integers(2, 10))
def test_kl_keeps_relative_precision_for_tiny_divergences(seed, n):
    """For q = p(1 + 1e-9 δ), KL ≈ ½χ² (the neglected third-order term is ~1e-9 relative); the library must agree
    to 1e-6 relative, although KL ~ 1e-19 is a thousand times below the rounding error of Σ p log(p/q)."""
    P, Q = perturbed_pair(seed, n, 1e-9)
    reference = half_chi_square(P, Q)
    np.testing.assert_allclose(reference, 0.5e-18, rtol=1e-3)  # ε²/2, up to rounding of the stored q
    np.testing.assert_allclose(P.kl(Q)[0], reference, rtol=1e-6, atol=0)


def test_naive_kl_is_rounding_noise_at_that_scale():
    """The same case with the textbook formula is off by more than 100%: why the library avoids it."""
    P, Q = perturbed_pair(0, 6, 1e-9)
    reference = half_chi_square(P, Q)
    naive = naive_kl(P.probs, Q.probs)[0]
    assert abs(naive - reference) > reference
    np.testing.assert_allclose(P.kl(Q)[0], reference, rtol=1e-6, atol=0)


# ================================================================================================ entropy
@given(policy_pairs(zeros=True, scale=3.0))
def test_entropy_matches_naive_formula(pair):
    p, _ = pair
    probs = p.probs
    naive = [-sum(x * np.log(x) for x in row if x > 0) for row in probs]
    np.testing.assert_allclose(p.entropy(), naive, rtol=RTOL, atol=ATOL)


def test_entropy_known_answers():
    np.testing.assert_allclose(TabularPolicy.uniform(2, 7).entropy(), np.log(7), rtol=1e-15, atol=0)
    assert np.array_equal(TabularPolicy.from_probs([[0.0, 1.0, 0.0]]).entropy(), [0.0])
    np.testing.assert_allclose(TabularPolicy.from_probs([[0.5, 0.0, 0.5, 0.0]]).entropy(), [np.log(2)],
                               rtol=1e-15, atol=0)


# ====================================================================================== geometric mixture
@given(policy_pairs(scale=3.0))
def test_geometric_mixture_endpoints_are_exact(pair):
    """Same supports: β = 0 returns π and β = 1 returns the other policy, bit for bit (as documented)."""
    p, q = pair
    np.testing.assert_array_equal(p.geometric_mixture(q, 0.0).probs, p.probs)
    np.testing.assert_array_equal(p.geometric_mixture(q, 1.0).probs, q.probs)


def test_geometric_mixture_endpoint_minimal_example():
    """A hand-picked instance of the property above."""
    p = TabularPolicy.from_probs([[0.01, 0.18, 0.81]])
    q = TabularPolicy.uniform(1, 3)
    np.testing.assert_array_equal(p.geometric_mixture(q, 0.0).probs, p.probs)
    np.testing.assert_array_equal(q.geometric_mixture(p, 1.0).probs, p.probs)


@given(policy_pairs(zeros=True, scale=3.0), st.floats(0.0, 1.0))
def test_geometric_mixture_matches_naive_formula(pair, beta):
    """Normalised p^(1−β) q^β on the intersection of the supports."""
    p, q = pair
    both = p.support & q.support
    mix = p.geometric_mixture(q, beta)
    assert np.array_equal(mix.support, both)
    if beta in (0.0, 1.0):
        return  # 0⁰ makes the naive formula ambiguous off the support; covered by the endpoint tests
    unnormalised = p.probs ** (1.0 - beta) * q.probs**beta
    expected = unnormalised / unnormalised.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mix.probs, expected, rtol=1e-12, atol=1e-300)


@given(policy_pairs(zeros=True, scale=3.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_geometric_mixture_composes(pair, b1, b2):
    """mix(mix(p, q, b1), q, b2) = mix(p, q, 1 − (1 − b1)(1 − b2))."""
    p, q = pair
    twice = p.geometric_mixture(q, b1).geometric_mixture(q, b2)
    once = p.geometric_mixture(q, 1.0 - (1.0 - b1) * (1.0 - b2))
    assert np.array_equal(twice.support, once.support)
    np.testing.assert_allclose(twice.log_probs[once.support], once.log_probs[once.support], rtol=0, atol=1e-12)


def test_geometric_mixture_known_answer():
    p = TabularPolicy.from_probs([[0.64, 0.36, 0.0]])
    q = TabularPolicy.from_probs([[0.25, 0.25, 0.5]])
    mix = p.geometric_mixture(q, 0.5)  # ∝ (0.8·0.5, 0.6·0.5, 0) = (0.4, 0.3, 0)
    np.testing.assert_allclose(mix.probs, [[4 / 7, 3 / 7, 0.0]], rtol=1e-14, atol=0)
    assert mix.probs[0, 2] == 0.0


def test_geometric_mixture_of_disjoint_supports_is_an_error():
    p, q = TabularPolicy.from_probs([[1.0, 0.0]]), TabularPolicy.from_probs([[0.0, 1.0]])
    with pytest.raises(ValueError, match="empty support"):
        p.geometric_mixture(q, 0.5)


@pytest.mark.parametrize("beta", [-0.1, 1.1, np.nan])
def test_geometric_mixture_rejects_beta_outside_unit_interval(beta):
    with pytest.raises(ValueError, match="beta must lie in"):
        TabularPolicy.uniform(1, 3).geometric_mixture(TabularPolicy.uniform(1, 3), beta)


# ============================================================================================= per sample
def test_log_prob_indexing():
    pi = TabularPolicy.from_probs([[0.5, 0.25, 0.25], [0.0, 0.125, 0.875]])
    x, y = np.array([[0, 1], [1, 0]]), np.array([[1, 0], [2, 0]])
    expected = np.log([[0.25, 1.0], [0.875, 0.5]])
    expected[0, 1] = -np.inf  # π(0 | 1) = 0
    np.testing.assert_allclose(pi.log_prob(x, y), expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(pi.log_prob(1, 2), np.log(0.875), rtol=1e-15, atol=0)


def test_sample_is_reproducible_and_shaped():
    pi = TabularPolicy.from_logits(np.random.default_rng(0).normal(size=(3, 5)))
    a = pi.sample([2, 0, 2], 50, np.random.default_rng(4))
    b = pi.sample([2, 0, 2], 50, np.random.default_rng(4))
    assert a.shape == (3, 50) and a.dtype.kind == "i"
    assert np.array_equal(a, b)
    assert not np.array_equal(a, pi.sample([2, 0, 2], 50, np.random.default_rng(5)))
    assert pi.sample(1, 7, np.random.default_rng(0)).shape == (1, 7)


def test_sample_never_leaves_the_support():
    """Zeros at the start, the middle and the end of a row, and a point mass."""
    pi = TabularPolicy.from_probs([[0.0, 0.3, 0.0, 0.7, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    draws = pi.sample([0, 1, 2], 20_000, np.random.default_rng(1))
    assert set(np.unique(draws[0])) == {1, 3}
    assert np.all(draws[1] == 4) and np.all(draws[2] == 0)


def test_sample_frequencies_match_probabilities():
    """200k draws per prompt: every count within 5σ of its binomial mean (chance of a false failure ≈ 1e-5 over the
    12 counts; a mass error of 0.01 on any action is ≥ 9σ)."""
    probs = np.array([[0.5, 0.2, 0.15, 0.1, 0.05, 0.0], [0.0, 0.1, 0.0, 0.3, 0.6, 0.0]])
    pi = TabularPolicy.from_probs(probs)
    n = 200_000
    draws = pi.sample([0, 1], n, np.random.default_rng(2024))
    counts = np.stack([np.bincount(row, minlength=6) for row in draws])
    sigma = np.sqrt(n * probs * (1.0 - probs))
    assert np.all(np.abs(counts - n * probs) <= 5.0 * sigma)
    assert np.all(counts[probs == 0] == 0)
