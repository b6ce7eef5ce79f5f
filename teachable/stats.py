"""Rates, intervals, tests and power: the one statistics module (the ground floor) for labels,
evaluation, selection and the predictor's validation.

Success rates are counts `k` of `n` rollouts. Their uncertainty is the Wilson score interval
(good coverage at small n and at rates near 0 or 1, where the normal interval collapses);
differences of two rates use Newcombe's hybrid score interval built from two Wilson intervals.
"Condition 1 beats condition 2" is a one-sided Fisher exact test or a Beta-posterior
probability, both deterministic. `AdaptivePlan` decides how many more rollouts a condition
needs before its rate is known well enough. Bootstrap intervals take an explicit seed and draw
from their own `numpy.random.Generator`; nothing here touches a global RNG.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, special
from scipy import stats as sps

TESTS = ("fisher", "bayes")

ArrayLike = Sequence[float] | np.ndarray


# --------------------------------------------------------------------------- validation


def _counts(k: Any, n: Any, which: str = "") -> tuple[int, int]:
    """Integer counts with 0 <= k <= n, or a ValueError that says which count is wrong."""
    tag = f" ({which})" if which else ""
    try:
        k, n = operator.index(k), operator.index(n)
    except TypeError:
        raise ValueError(
            f"counts{tag} must be integers, got k={k!r}, n={n!r}; pass numbers of successes "
            "and of rollouts, not rates."
        ) from None
    if n < 0:
        raise ValueError(f"n{tag} must be >= 0 rollouts, got n={n}.")
    if k < 0:
        raise ValueError(f"k{tag} must be >= 0 successes, got k={k}.")
    if k > n:
        raise ValueError(f"k{tag}={k} successes exceeds n={n} rollouts; pass 0 <= k <= n.")
    return k, n


def _check_level(value: float, name: str) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r} (e.g. 0.95).")
    return float(value)


def _z(confidence: float) -> float:
    """Two-sided standard normal quantile for `confidence`."""
    return float(special.ndtri(0.5 + 0.5 * _check_level(confidence, "confidence")))


# --------------------------------------------------------------------------- Wilson rates


def _wilson(phat: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval at a proportion `phat` of `n` trials (n > 0), for planning at rates
    that are not a count (`fixed_n_for_halfwidth`); observed counts go through scipy
    (`wilson_interval`), which agrees with this formula to the last bit on every k <= n <= 40."""
    z2 = z * z
    denom = n + z2
    center = (n * phat + z2 / 2.0) / denom
    half = z / denom * math.sqrt(n * phat * (1.0 - phat) + z2 / 4.0)
    return max(0.0, center - half), min(1.0, center + half)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate (scipy's `binomtest(k, n).proportion_ci`).

    Args:
        k: successes, 0 <= k <= n.
        n: trials (rollouts).
        confidence: two-sided level in (0, 1).

    Returns:
        (low, high). With n == 0 nothing is known: (0.0, 1.0). The bound at an observed 0 or 1
        is exactly 0.0 or 1.0.

    Raises:
        ValueError: for counts that are not integers with 0 <= k <= n, or a level outside (0, 1).
    """
    k, n = _counts(k, n)
    _check_level(confidence, "confidence")
    if n == 0:
        return 0.0, 1.0
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (0.0 if k == 0 else float(ci.low)), (1.0 if k == n else float(ci.high))


@dataclass(frozen=True)
class Rate:
    """A success rate with its Wilson interval; build it with `rate(k, n)`."""

    successes: int
    n: int
    low: float
    high: float
    confidence: float = 0.95

    @property
    def p(self) -> float:
        """Observed rate k/n; NaN when n == 0."""
        return self.successes / self.n if self.n else math.nan

    @property
    def halfwidth(self) -> float:
        """Half the width of the interval (0.5 when n == 0)."""
        return (self.high - self.low) / 2.0

    def to_dict(self) -> dict[str, float | int | None]:
        """Keys p, n, k, low, high; p is None (JSON null) when n == 0, so records stay valid JSON."""
        return {
            "p": self.p if self.n else None,
            "n": self.n,
            "k": self.successes,
            "low": self.low,
            "high": self.high,
        }


def rate(k: int, n: int, confidence: float = 0.95) -> Rate:
    """The rate k/n with its Wilson interval (see `wilson_interval` for the arguments and errors)."""
    low, high = wilson_interval(k, n, confidence)
    return Rate(
        successes=operator.index(k),
        n=operator.index(n),
        low=low,
        high=high,
        confidence=float(confidence),
    )


def diff_interval(
    k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Difference of two independent rates p1 - p2 with Newcombe's hybrid score interval.

    Method 10 of Newcombe (1998, Stat. Med. 17:873): with Wilson intervals (l1, u1), (l2, u2),
    low = d - sqrt((p1 - l1)^2 + (u2 - p2)^2) and high = d + sqrt((u1 - p1)^2 + (p2 - l2)^2).

    Args:
        k1, n1: successes and rollouts of condition 1.
        k2, n2: successes and rollouts of condition 2.
        confidence: two-sided level in (0, 1).

    Returns:
        (difference, low, high). When either n is 0 the difference is NaN and the interval is
        the box l1 - u2 .. u1 - l2 (for an empty side (0, 1)), which never claims a difference.

    Raises:
        ValueError: for invalid counts or level.
    """
    k1, n1 = _counts(k1, n1, "condition 1")
    k2, n2 = _counts(k2, n2, "condition 2")
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    if n1 == 0 or n2 == 0:
        return math.nan, l1 - u2, u1 - l2
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    low = d - math.hypot(p1 - l1, u2 - p2)
    high = d + math.hypot(u1 - p1, p2 - l2)
    return d, max(-1.0, low), min(1.0, high)


# --------------------------------------------------------------------------- comparisons


def fisher_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided Fisher exact p-value for "rate 1 > rate 2".

    Args:
        k1, n1: successes and rollouts of condition 1.
        k2, n2: successes and rollouts of condition 2.

    Returns:
        The p-value in [0, 1]; 1.0 when either condition has no rollouts.

    Raises:
        ValueError: for invalid counts.
    """
    k1, n1 = _counts(k1, n1, "condition 1")
    k2, n2 = _counts(k2, n2, "condition 2")
    if n1 == 0 or n2 == 0:
        return 1.0
    table = [[k1, n1 - k1], [k2, n2 - k2]]
    return float(min(1.0, sps.fisher_exact(table, alternative="greater").pvalue))


def prob_greater(
    k1: int, n1: int, k2: int, n2: int, prior: tuple[float, float] = (1.0, 1.0)
) -> float:
    """Posterior probability P(p1 > p2) under independent Beta(prior) priors on both rates.

    With posteriors p1 ~ Beta(a1, b1), p2 ~ Beta(a2, b2) the probability is
    E[F2(p1)] = integral over u in (0, 1) of F2(F1^-1(u)), a bounded monotone integrand that
    adaptive quadrature handles even when the posteriors are narrow (integrating pdf x cdf over
    x instead can miss a sharp peak). Deterministic; accurate to about 1e-8.

    Args:
        k1, n1: successes and rollouts of condition 1.
        k2, n2: successes and rollouts of condition 2.
        prior: (alpha, beta) of the Beta prior, both > 0; (1, 1) is uniform, (0.5, 0.5) Jeffreys.

    Returns:
        P(p1 > p2) in [0, 1]; 0.5 for equal counts.

    Raises:
        ValueError: for invalid counts or a non-positive prior.
    """
    k1, n1 = _counts(k1, n1, "condition 1")
    k2, n2 = _counts(k2, n2, "condition 2")
    a0, b0 = prior
    if not (a0 > 0 and b0 > 0 and math.isfinite(a0) and math.isfinite(b0)):
        raise ValueError(f"prior must be two finite numbers > 0 (alpha, beta), got {prior!r}.")
    a1, b1 = a0 + k1, b0 + n1 - k1
    a2, b2 = a0 + k2, b0 + n2 - k2
    if (a1, b1) == (a2, b2):
        return 0.5  # exact by symmetry; saves the quadrature
    value, _ = integrate.quad(
        lambda u: special.betainc(a2, b2, special.betaincinv(a1, b1, u)),
        0.0,
        1.0,
        epsabs=1e-10,
        epsrel=1e-10,
        limit=200,
    )
    return float(min(1.0, max(0.0, value)))


def beats(k1: int, n1: int, k2: int, n2: int, *, test: str = "fisher", alpha: float = 0.05) -> bool:
    """Whether condition 1 (k1 of n1) beats condition 2 (k2 of n2).

    Args:
        k1, n1, k2, n2: successes and rollouts of the two conditions.
        test: "fisher" (one-sided Fisher exact p < alpha) or "bayes"
            (P(p1 > p2) > 1 - alpha under uniform priors).
        alpha: level in (0, 1).

    Returns:
        True when the evidence says rate 1 > rate 2.

    Raises:
        ValueError: for an unknown test, invalid counts or alpha outside (0, 1).
    """
    _check_level(alpha, "alpha")
    if test == "fisher":
        return fisher_greater(k1, n1, k2, n2) < alpha
    if test == "bayes":
        return prob_greater(k1, n1, k2, n2) > 1.0 - alpha
    raise ValueError(f"test {test!r} is unknown; use one of {', '.join(TESTS)}.")


# --------------------------------------------------------------------------- adaptive sampling


@dataclass(frozen=True)
class AdaptivePlan:
    """How many rollouts a condition gets: stop once its Wilson interval is narrow enough.

    Rule of `more(k, n)`: a condition first gets `n_min` rollouts in one call (never stopped
    early, so a lucky start cannot end it), then batches of `batch` until its Wilson half-width
    at `confidence` is <= `ci_halfwidth`; the last batch is cut so that n never exceeds `n_max`.
    Totals are therefore n_min, n_min + batch, n_min + 2 batch, ..., n_max.

    Note that with the defaults even a unanimous 0/8 or 8/8 has half-width 0.162 > 0.15 and
    goes on to 16; a half-width of 0.15 at 0/n needs n >= 9.
    """

    n_min: int = 8
    n_max: int = 32
    ci_halfwidth: float = 0.15
    batch: int = 8
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 1 <= self.n_min <= self.n_max:
            raise ValueError(
                f"need 1 <= n_min <= n_max, got n_min={self.n_min}, n_max={self.n_max}; "
                "raise n_max or lower n_min."
            )
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1 rollout, got {self.batch}.")
        if not 0.0 < self.ci_halfwidth < 1.0:
            raise ValueError(
                f"ci_halfwidth must lie strictly between 0 and 1, got {self.ci_halfwidth!r} "
                "(e.g. 0.15)."
            )
        _check_level(self.confidence, "confidence")

    def halfwidth(self, k: int, n: int) -> float:
        """Wilson half-width at k of n (0.5 when n == 0)."""
        low, high = wilson_interval(k, n, self.confidence)
        return (high - low) / 2.0

    def more(self, k: int, n: int) -> int:
        """How many more rollouts to run for a condition that has k successes in n rollouts.

        Args:
            k: successes so far.
            n: rollouts so far.

        Returns:
            0 when done (n >= n_max, or n >= n_min and the half-width is <= ci_halfwidth);
            n_min - n while below n_min; otherwise min(batch, n_max - n).

        Raises:
            ValueError: for invalid counts.
        """
        k, n = _counts(k, n)
        if n >= self.n_max:
            return 0
        if n < self.n_min:
            return self.n_min - n
        if self.halfwidth(k, n) <= self.ci_halfwidth:
            return 0
        return min(self.batch, self.n_max - n)


def _wilson_halfwidth_at(p: float, n: int, z: float) -> float:
    low, high = _wilson(p, n, z)
    return (high - low) / 2.0


def fixed_n_for_halfwidth(p: float, halfwidth: float, confidence: float = 0.95) -> int:
    """Smallest n whose Wilson half-width at observed rate p is <= halfwidth.

    The rate is taken as an observed proportion (k = p n need not be an integer). The half-width
    decreases strictly with n for every p, so the answer is found by bisection; it is the fixed
    budget that adaptive sampling is compared with at equal interval width.

    Args:
        p: rate in [0, 1].
        halfwidth: target half-width in (0, 1).
        confidence: two-sided level in (0, 1).

    Returns:
        n >= 1.

    Raises:
        ValueError: for p outside [0, 1], or halfwidth or confidence outside (0, 1).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a rate in [0, 1], got {p!r}.")
    _check_level(halfwidth, "halfwidth")
    z = _z(confidence)
    # The half-width is at most z / (2 sqrt(n + z^2)), so this n always suffices.
    hi = max(1, math.ceil(z * z / (4.0 * halfwidth * halfwidth)))
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _wilson_halfwidth_at(p, mid, z) <= halfwidth:
            hi = mid
        else:
            lo = mid + 1
    return lo


# --------------------------------------------------------------------------- bootstrap, rank correlation


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the finite bootstrap replicates (NaN, NaN if there are none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _check_boot(n_boot: int, confidence: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1 resample, got {n_boot} (1000 is usual).")
    _check_level(confidence, "confidence")


def bootstrap_interval(
    values: ArrayLike,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of a statistic of one sample.

    Hand-written rather than `scipy.stats.bootstrap`: that one has no way to leave out the
    resamples whose statistic is undefined (a Spearman correlation of a resample with one
    distinct value), so a single one turns its interval into NaN.

    Args:
        values: the sample (1-d).
        statistic: function of a 1-d array returning a number; default the mean.
        n_boot: resamples.
        confidence: two-sided level in (0, 1).
        seed: seed of the resampling generator; the same seed gives the same interval.

    Returns:
        (estimate on the full sample, low, high). Resamples whose statistic is not finite are
        left out of the percentiles; if none is finite, low and high are NaN.

    Raises:
        ValueError: for an empty or non 1-d sample, n_boot < 1 or a level outside (0, 1).
    """
    _check_boot(n_boot, confidence)
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-d sequence, got shape {x.shape}.")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    reps = np.array([statistic(x[row]) for row in idx], dtype=float)
    return (float(statistic(x)), *_percentiles(reps, confidence))


def paired_bootstrap_interval(
    x: ArrayLike,
    y: ArrayLike,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of a statistic of two paired samples, resampling pairs.

    Args:
        x, y: paired samples of equal length (pair i is (x[i], y[i])).
        statistic: function of two 1-d arrays, e.g. `spearman`.
        n_boot, confidence, seed: as in `bootstrap_interval`.

    Returns:
        (estimate on the full samples, low, high); non-finite replicates (e.g. Spearman of a
        resample whose x values are all equal) are left out of the percentiles.

    Raises:
        ValueError: for samples of different lengths, empty samples, n_boot < 1 or a bad level.
    """
    _check_boot(n_boot, confidence)
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or a.size != b.size:
        raise ValueError(
            f"x and y must be non-empty 1-d samples of equal length, got shapes {a.shape} and "
            f"{b.shape}; pair them before calling."
        )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    reps = np.array([statistic(a[row], b[row]) for row in idx], dtype=float)
    return (float(statistic(a, b)), *_percentiles(reps, confidence))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation of paired samples.

    Args:
        x, y: paired samples of equal length.

    Returns:
        The correlation in [-1, 1]; NaN (without a warning) when fewer than two pairs, when
        either sample is constant, or when any value is NaN.

    Raises:
        ValueError: for samples of different lengths or not 1-d.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or a.size != b.size:
        raise ValueError(
            f"x and y must be 1-d samples of equal length, got shapes {a.shape} and {b.shape}."
        )
    if a.size < 2 or np.isnan(a).any() or np.isnan(b).any():
        return math.nan
    if np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(sps.spearmanr(a, b).statistic)


# --------------------------------------------------------------------------- power

MDE_POWER = 0.8  # the power at which every comparison's minimum detectable effect is reported


def paired_mde(x: ArrayLike, y: ArrayLike, *, alpha: float = 0.05, power: float = MDE_POWER) -> float:
    """The minimum detectable effect of a comparison of paired samples: the smallest true mean
    difference a two-sided paired t-test at level `alpha` finds with probability `power`, given
    the items actually used and the spread of their differences.

    The power is the exact one of the paired t-test (the noncentral t distribution with n - 1
    degrees of freedom, `scipy.stats.nct`), solved for the effect. The spread is the sample
    standard deviation of the differences; where every pair differs by the same amount (that
    spread is 0, which would call any effect detectable) it is the spread the two samples would
    have if they were independent, and 0.5 (the largest standard deviation of a value in [0, 1])
    where both samples are constant too. A gain smaller than the MDE that the test did not find
    is "no power", not "no effect".

    Args:
        x, y: paired samples of equal length (pair i is (x[i], y[i])), e.g. item success rates.
        alpha: two-sided level of the test.
        power: the probability of detecting the effect.

    Returns:
        The effect in the samples' units (e.g. success-rate points as a fraction); NaN for fewer
        than two pairs.

    Raises:
        ValueError: for samples of different lengths or levels outside (0, 1).
    """
    _check_level(alpha, "alpha")
    _check_level(power, "power")
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or a.size != b.size:
        raise ValueError(f"x and y must be 1-d samples of equal length, got shapes {a.shape} and {b.shape}.")
    n = a.size
    if n < 2:
        return math.nan
    sd = float(np.std(a - b, ddof=1))
    if sd == 0.0:
        sd = float(math.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1))) or 0.5
    df = n - 1
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))

    def shortfall(effect: float) -> float:  # power at standardised effect `effect`, minus the target
        nc = effect * math.sqrt(n)
        wrong_way = float(np.nan_to_num(sps.nct.cdf(-crit, df, nc)))  # NaN where it underflows
        return float(sps.nct.sf(crit, df, nc)) + wrong_way - power

    from scipy.optimize import brentq

    return brentq(shortfall, 0.0, 100.0, xtol=1e-12) * sd
