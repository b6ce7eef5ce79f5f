"""teachable.stats against published values, scipy, closed forms and seeded Monte Carlo."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.special import betaln

from teachable.stats import (
    AdaptivePlan,
    Rate,
    beats,
    bootstrap_interval,
    diff_interval,
    fisher_greater,
    fixed_n_for_halfwidth,
    paired_bootstrap_interval,
    paired_mde,
    prob_greater,
    rate,
    spearman,
    wilson_interval,
)

Z95 = 1.959963984540054


def wilson_closed_form(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The textbook formula, written independently of the module."""
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return center - half, center + half


def miller_prob_greater(a1: float, b1: float, a2: int, b2: float) -> float:
    """P(X2 > X1) for X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2), integer a2 (Evan Miller's sum)."""
    return sum(
        math.exp(betaln(a1 + i, b1 + b2) - math.log(b2 + i) - betaln(1 + i, b2) - betaln(a1, b1))
        for i in range(a2)
    )


# ----------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize("k,n", [(0, 10), (5, 10), (10, 10), (81, 263), (1, 8), (31, 32)])
def test_wilson_matches_closed_form(k: int, n: int) -> None:
    low, high = wilson_interval(k, n)
    exp_low, exp_high = wilson_closed_form(k, n)
    assert low == pytest.approx(max(0.0, exp_low), abs=1e-10)
    assert high == pytest.approx(min(1.0, exp_high), abs=1e-10)


@pytest.mark.parametrize(
    "k,n,expected",
    [
        (81, 263, (0.2553, 0.3662)),  # statsmodels proportion_confint(81, 263, method="wilson")
        (0, 10, (0.0, 0.2775)),
        (5, 10, (0.2366, 0.7634)),
        (10, 10, (0.7225, 1.0)),
    ],
)
def test_wilson_literal_reference_values(k: int, n: int, expected: tuple[float, float]) -> None:
    assert wilson_interval(k, n) == pytest.approx(expected, abs=1e-4)


def test_wilson_edges_and_levels() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0
    w90, w95, w99 = (wilson_interval(3, 12, c) for c in (0.90, 0.95, 0.99))
    assert w99[0] < w95[0] < w90[0] and w90[1] < w95[1] < w99[1]


def test_rate_record() -> None:
    r = rate(81, 263)
    assert isinstance(r, Rate)
    assert r.p == pytest.approx(81 / 263)
    assert r.halfwidth == pytest.approx((r.high - r.low) / 2)
    assert r.to_dict() == {"p": 81 / 263, "n": 263, "k": 81, "low": r.low, "high": r.high}
    empty = rate(0, 0)
    assert math.isnan(empty.p) and empty.halfwidth == 0.5
    assert empty.to_dict()["p"] is None
    assert rate(np.int64(3), np.int64(4)).successes == 3


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: wilson_interval(-1, 5), "k must be >= 0"),
        (lambda: wilson_interval(6, 5), "exceeds n=5"),
        (lambda: wilson_interval(0, -1), "n must be >= 0"),
        (lambda: wilson_interval(2.5, 5), "integers"),
        (lambda: wilson_interval(1, 5, confidence=1.0), "confidence"),
        (lambda: rate(1, 5, confidence=0.0), "confidence"),
        (lambda: diff_interval(1, 5, 7, 6), "condition 2"),
        (lambda: fisher_greater(-1, 5, 1, 5), "condition 1"),
        (lambda: prob_greater(1, 5, 1, 5, prior=(0.0, 1.0)), "prior"),
        (lambda: beats(1, 5, 1, 5, test="t"), "fisher, bayes"),
        (lambda: beats(1, 5, 1, 5, alpha=1.5), "alpha"),
        (lambda: fixed_n_for_halfwidth(1.2, 0.1), "p must be"),
        (lambda: fixed_n_for_halfwidth(0.5, 0.0), "halfwidth"),
        (lambda: bootstrap_interval([], seed=0), "non-empty"),
        (lambda: bootstrap_interval([1.0, 2.0], n_boot=0), "n_boot"),
        (lambda: paired_bootstrap_interval([1.0], [1.0, 2.0], spearman), "equal length"),
        (lambda: spearman([1.0, 2.0], [1.0]), "equal length"),
    ],
)
def test_invalid_inputs_raise(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- Newcombe


@pytest.mark.parametrize(
    "counts,expected",
    [
        # Newcombe (1998), Table II, method 10, examples (a) and (b).
        ((56, 70, 48, 80), (0.2, 0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.6, 0.1705, 0.8090)),
    ],
)
def test_newcombe_published_examples(counts, expected) -> None:
    assert diff_interval(*counts) == pytest.approx(expected, abs=1e-4)


def test_diff_interval_antisymmetric_and_empty() -> None:
    d, low, high = diff_interval(3, 8, 6, 9)
    d2, low2, high2 = diff_interval(6, 9, 3, 8)
    assert (d2, low2, high2) == pytest.approx((-d, -high, -low))
    d0, low0, high0 = diff_interval(0, 0, 3, 10)
    assert math.isnan(d0) and low0 < 0 < high0


# ----------------------------------------------------------------------------- Fisher, Bayes


@pytest.mark.parametrize("counts", [(7, 10, 2, 10), (0, 8, 0, 8), (8, 8, 0, 8), (3, 20, 9, 20)])
def test_fisher_matches_scipy(counts) -> None:
    k1, n1, k2, n2 = counts
    ref = sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="greater").pvalue
    assert fisher_greater(*counts) == pytest.approx(ref, rel=1e-12)


def test_fisher_empty_condition() -> None:
    assert fisher_greater(0, 0, 3, 5) == 1.0
    assert fisher_greater(3, 5, 0, 0) == 1.0


@pytest.mark.parametrize("k,n", [(0, 0), (0, 8), (4, 8), (32, 32)])
def test_prob_greater_equal_counts_is_half(k: int, n: int) -> None:
    assert prob_greater(k, n, k, n) == pytest.approx(0.5, abs=1e-12)
    assert prob_greater(k, n, k, n, prior=(0.5, 0.5)) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(
    "counts", [(3, 8, 1, 8), (0, 8, 8, 8), (16, 32, 15, 32), (500, 1000, 480, 1000), (5, 10, 5, 20)]
)
def test_prob_greater_matches_closed_form(counts) -> None:
    k1, n1, k2, n2 = counts
    ref = miller_prob_greater(1 + k2, 1 + n2 - k2, 1 + k1, 1 + n1 - k1)
    assert prob_greater(*counts) == pytest.approx(ref, abs=1e-8)
    swapped = prob_greater(k2, n2, k1, n1)
    assert prob_greater(*counts) + swapped == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize(
    "counts,prior", [((6, 10, 3, 9), (1.0, 1.0)), ((2, 12, 4, 12), (0.5, 0.5))]
)
def test_prob_greater_matches_monte_carlo(counts, prior) -> None:
    k1, n1, k2, n2 = counts
    a, b = prior
    rng = np.random.default_rng(1234)
    draws = 200_000
    p1 = rng.beta(a + k1, b + n1 - k1, draws)
    p2 = rng.beta(a + k2, b + n2 - k2, draws)
    assert prob_greater(*counts, prior=prior) == pytest.approx(np.mean(p1 > p2), abs=0.01)


def test_beats() -> None:
    assert beats(14, 16, 3, 16)
    assert beats(14, 16, 3, 16, test="bayes")
    assert not beats(3, 16, 14, 16)
    assert not beats(8, 16, 8, 16, test="bayes")
    assert not beats(2, 3, 1, 3)
    assert not beats(0, 0, 0, 0, test="bayes")


# ----------------------------------------------------------------------------- adaptive plan


def run_plan(plan: AdaptivePlan, outcomes: list[bool]) -> tuple[int, int, list[int]]:
    """Drive the plan on a stream of outcomes (cycled); returns k, n and the batch sizes."""
    k = n = 0
    asked: list[int] = []
    while (m := plan.more(k, n)) > 0:
        asked.append(m)
        for _ in range(m):
            k += outcomes[n % len(outcomes)]
            n += 1
    return k, n, asked


def test_plan_clear_case_stops_at_n_min() -> None:
    plan = AdaptivePlan(n_min=10)
    assert run_plan(plan, [False])[1:] == (10, [10])
    assert run_plan(plan, [True])[1:] == (10, [10])
    # With the defaults 0/8 is not yet narrow enough (half-width 0.162 > 0.15): one more batch.
    assert run_plan(AdaptivePlan(), [False])[1:] == (16, [8, 8])


def test_plan_ambiguous_case_runs_to_n_max() -> None:
    assert run_plan(AdaptivePlan(), [True, False])[1:] == (32, [8, 8, 8, 8])
    assert run_plan(AdaptivePlan(n_min=5, n_max=23, batch=7), [True, False])[1:] == (
        23,
        [5, 7, 7, 4],
    )


def test_plan_edges_and_validation() -> None:
    plan = AdaptivePlan()
    assert plan.more(0, 0) == 8 and plan.more(3, 5) == 3
    assert plan.more(16, 32) == 0 and plan.more(20, 40) == 0
    for bad in (
        {"n_min": 0},
        {"n_min": 40},
        {"batch": 0},
        {"ci_halfwidth": 0.0},
        {"ci_halfwidth": 1.0},
        {"confidence": 1.0},
    ):
        with pytest.raises(ValueError):
            AdaptivePlan(**bad)


plans = st.builds(
    AdaptivePlan,
    n_min=st.integers(1, 12),
    n_max=st.integers(12, 40),
    ci_halfwidth=st.floats(0.05, 0.4),
    batch=st.integers(1, 10),
)


@settings(max_examples=60, deadline=None)
@given(plan=plans, outcomes=st.lists(st.booleans(), min_size=1, max_size=40))
def test_plan_never_exceeds_n_max_and_respects_batches(
    plan: AdaptivePlan, outcomes: list[bool]
) -> None:
    k, n, asked = run_plan(plan, outcomes)
    assert plan.n_min <= n <= plan.n_max
    assert asked[0] == plan.n_min
    assert all(m == plan.batch for m in asked[1:-1])
    if len(asked) > 1:
        assert asked[-1] == plan.batch or n == plan.n_max
    assert plan.more(k, n) == 0


# ----------------------------------------------------------------------------- fixed n


def test_fixed_n_is_smallest_and_monotonic() -> None:
    for p in (0.0, 0.1, 0.5, 0.9):
        ns = [fixed_n_for_halfwidth(p, h) for h in (0.3, 0.2, 0.15, 0.1, 0.05)]
        assert ns == sorted(ns)
        n = ns[2]
        for m, expect in ((n, True), (n - 1, False)):
            k = p * m
            width = wilson_closed_form(k, m) if m else (0.0, 1.0)
            half = (min(1.0, width[1]) - max(0.0, width[0])) / 2
            assert (half <= 0.15 + 1e-12) is expect
    assert fixed_n_for_halfwidth(0.0, 0.15) == 9
    assert fixed_n_for_halfwidth(0.5, 0.15) > fixed_n_for_halfwidth(0.1, 0.15)


# ----------------------------------------------------------------------------- bootstrap, Spearman


def test_bootstrap_deterministic_and_covers_mean() -> None:
    values = np.random.default_rng(0).normal(2.0, 1.0, 200)
    first = bootstrap_interval(values, seed=3)
    assert first == bootstrap_interval(values, seed=3)
    assert first != bootstrap_interval(values, seed=4)
    est, low, high = first
    assert est == pytest.approx(values.mean())
    assert low < 2.0 < high and low < est < high
    assert high - low == pytest.approx(2 * 1.96 / math.sqrt(200), rel=0.25)
    _, low_med, high_med = bootstrap_interval(values, np.median, n_boot=200, confidence=0.9)
    assert low_med < np.median(values) < high_med


def test_bootstrap_coverage_near_nominal() -> None:
    rng = np.random.default_rng(2024)
    hits = [
        low < 0.3 < high
        for low, high in (
            bootstrap_interval(rng.exponential(0.3, 40), n_boot=200, seed=i)[1:] for i in range(200)
        )
    ]
    assert 0.85 < np.mean(hits) < 0.99


def test_paired_bootstrap_spearman() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=60)
    y = x + rng.normal(scale=0.5, size=60)
    est, low, high = paired_bootstrap_interval(x, y, spearman, n_boot=300, seed=5)
    assert est == pytest.approx(sps.spearmanr(x, y).statistic)
    assert 0.5 < low < est < high <= 1.0
    assert (est, low, high) == paired_bootstrap_interval(x, y, spearman, n_boot=300, seed=5)


def test_spearman_nan_safe() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
        assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
        assert math.isnan(spearman([1.0], [2.0]))
        assert math.isnan(spearman([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]))
        # Resamples that are constant give NaN replicates, which are left out, not warned about.
        est, low, high = paired_bootstrap_interval([0, 0, 0, 1], [1, 2, 3, 4], spearman, n_boot=50)
        assert low <= est <= high
        _, low, high = paired_bootstrap_interval([1, 1], [1, 2], spearman, n_boot=20)
        assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("n,dz", [(20, 0.6604)])
def test_paired_mde_matches_the_published_paired_t_power(n: int, dz: float) -> None:
    # R's pwr.t.test(n = 20, sig.level = 0.05, power = 0.8, type = "paired") gives d = 0.6604
    diffs = np.random.default_rng(n).normal(size=n)
    diffs = (diffs - diffs.mean()) / diffs.std(ddof=1) * 0.3  # differences with sd 0.3 exactly
    assert paired_mde(diffs + 0.5, np.full(n, 0.5)) == pytest.approx(dz * 0.3, abs=2e-4)


def test_paired_mde_is_detected_with_its_power() -> None:
    n, sd = 10, 0.4
    spread = np.linspace(-1, 1, n)
    mde = paired_mde(spread * sd / np.std(spread, ddof=1), np.zeros(n))  # differences with sd 0.4
    sims = np.random.default_rng(2).normal(mde, sd, size=(20_000, n))  # paired differences at the MDE
    found = sps.ttest_1samp(sims, 0.0, axis=1).pvalue < 0.05
    assert np.mean(found) == pytest.approx(0.8, abs=0.015)
    assert mde == pytest.approx((Z95 + 0.8416) * sd / math.sqrt(n), rel=0.15)  # near the normal approximation


def test_paired_mde_never_claims_power_from_no_spread() -> None:
    same = np.array([1.0, 0.0, 1.0, 0.0])
    spread = math.sqrt(2 * np.var(same, ddof=1))  # the independent samples' spread
    assert paired_mde(same, same) == pytest.approx(paired_mde(same * spread / np.std(same, ddof=1), 0 * same))
    assert paired_mde(np.ones(6), np.ones(6)) > 0.5  # constant samples: the largest spread of a rate
    assert math.isnan(paired_mde([1.0], [0.0]))
    with pytest.raises(ValueError, match="equal length"):
        paired_mde([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="power"):
        paired_mde([1.0, 0.0], [0.0, 1.0], power=1.0)


def test_seeded_subset_keeps_order_and_depends_only_on_the_seed() -> None:
    from teachable.seeding import seeded_subset

    items = list(range(100, 140))
    picked = seeded_subset(items, 7, seed=3)
    assert len(picked) == 7 and picked == sorted(picked) and set(picked) <= set(items)
    assert picked == seeded_subset(items, 7, seed=3) and picked != seeded_subset(items, 7, seed=4)
    assert seeded_subset(items, 0, seed=3) == items and seeded_subset(items, 99, seed=3) == items
