"""Paired statistics over seeds for the report: Student-t quantiles, paired differences and their CIs.

Two methods trained with the same seed share the data order and the initialisation (where the method
allows: a mixer draws its own randomness on top), so the runs of a seed form a pair and the seed-to-seed
noise that both share cancels in the difference. For the ``n`` paired differences ``d_i = a_i - b_i``
the report gives their mean and a 95% confidence interval:

- ``"t"`` (default): ``mean(d) ± t_{0.975, n-1} · sd(d) / sqrt(n)`` with the sample standard deviation
  (ddof=1); exact when the differences are normal, and the usual choice for 3-10 seeds.
- ``"bootstrap"``: the 2.5% and 97.5% percentiles of the means of ``n_boot`` resamples (with replacement)
  of the differences, from a fixed seed; it assumes no shape but is too narrow for very few pairs.

An interval that excludes 0 marks the difference as distinguishable at the 5% level (``*``); one that
contains 0 means these seeds cannot tell the two methods apart, not that they are equal.

Each difference also carries the two-sided p-value of the paired t-test (``p``: the probability of a
mean difference at least this far from 0 if the methods were equal), and the smallest difference that
these seeds can resolve at their spread (:attr:`PairedDifference.resolvable`: the interval's half-width,
``t_{0.975, n-1} · sd(d) / sqrt(n)``; a true difference below it is unlikely to be found). Many
comparisons at the 5% level make false findings likely (20 tests: about one by chance), so a family of
tests is corrected with Holm's step-down method (:func:`holm`, Holm 1979, "A simple sequentially
rejective multiple test procedure"): it controls the chance of any false finding in the family at 5%,
and rejects whatever Bonferroni rejects and sometimes more.

The t quantile is computed here (no SciPy needed) from the closed form of the Student-t distribution
function for integer degrees of freedom, inverted by bisection.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Sequence

from ..checks import is_int, is_number

__all__ = ["t_cdf", "t_quantile", "PairedDifference", "paired_difference", "paired_t_p", "holm", "format_p", "CI_METHODS"]

#: The confidence-interval methods of :func:`paired_difference`.
CI_METHODS = ("t", "bootstrap")


def _check_df(df: int) -> int:
    if not is_int(df) or df < 1:
        raise ValueError(f"df must be an int >= 1 (degrees of freedom), got {df!r}")
    return df


def t_cdf(x: float, df: int) -> float:
    """The Student-t distribution function ``P(T <= x)`` with ``df`` (integer) degrees of freedom.

    Uses the finite series in ``theta = atan(x / sqrt(df))``: for odd ``df``
    ``P(|T| < x) = (2/pi) (theta + sin(theta) cos(theta) (1 + 2/3 c^2 + (2·4)/(3·5) c^4 + ...))`` and for
    even ``df`` ``P(|T| < x) = sin(theta) (1 + 1/2 c^2 + (1·3)/(2·4) c^4 + ...)`` with ``c = cos(theta)``,
    the series ending at the power ``c^(df-3)`` (odd) or ``c^(df-2)`` (even).
    """
    df = _check_df(df)
    x = float(x)
    if math.isnan(x):
        raise ValueError(f"x must be a number, got {x!r}")
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    theta = math.atan(abs(x) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):  # powers c^2 .. c^(df-3)
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        two_sided = 2.0 / math.pi * (theta + s * math.cos(theta) * total)
    else:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):  # powers c^2 .. c^(df-2)
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        two_sided = s * total
    two_sided = min(max(two_sided, 0.0), 1.0)
    return 0.5 + 0.5 * two_sided if x >= 0 else 0.5 - 0.5 * two_sided


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of the Student-t distribution with ``df`` degrees of freedom (``0 < p < 1``).

    Example:
        >>> round(t_quantile(0.975, 4), 4)   # the 95% two-sided critical value for 5 paired seeds
        2.7764
    """
    df = _check_df(df)
    if not is_number(p) or not 0 < float(p) < 1:
        raise ValueError(f"p must be a probability in (0, 1), got {p!r}")
    p = float(p)
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class PairedDifference:
    """The mean of paired differences ``a - b`` over seeds and its confidence interval.

    Attributes:
        n: the number of pairs.
        mean: the mean difference.
        std: the sample standard deviation of the differences (ddof=1).
        lo, hi: the confidence interval.
        confidence: its level (0.95).
        method: ``"t"`` or ``"bootstrap"``.
        seeds: the seeds of the pairs (None where unknown).
        p: the two-sided p-value of the paired t-test (:func:`paired_t_p`), whatever ``method``.
    """

    n: int
    mean: float
    std: float
    lo: float
    hi: float
    confidence: float = 0.95
    method: str = "t"
    seeds: tuple = ()
    p: float = math.nan

    @property
    def resolvable(self) -> float:
        """The smallest |difference| these seeds resolve at their spread: ``t_{(1+c)/2, n-1} · sd / sqrt(n)``.

        The half-width of the t interval (whatever ``method``): an observed mean difference must exceed it
        for the interval to exclude 0.
        """
        return t_quantile(0.5 + self.confidence / 2, self.n - 1) * self.std / math.sqrt(self.n)

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0: the two methods are distinguishable."""
        return self.lo > 0 or self.hi < 0

    def cell(self, digits: int = 2) -> str:
        """``"+1.20 [0.40, 2.00] *"``: the mean, the interval, and ``*`` when it excludes 0."""
        text = f"{self.mean:+.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"
        return text + (" *" if self.excludes_zero else "")


def paired_difference(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95, method: str = "t",
                      n_boot: int = 10000, seed: int = 0, seeds: Sequence | None = None) -> PairedDifference:
    """The mean of ``a[i] - b[i]`` and its confidence interval (see the module docstring).

    Args:
        a, b: the paired values (the same seed at the same index).
        confidence: the interval's level, in (0, 1).
        method: ``"t"`` (Student-t interval on the differences) or ``"bootstrap"`` (percentile bootstrap).
        n_boot: bootstrap resamples.
        seed: the bootstrap's random seed (the interval is reproducible).
        seeds: the seeds of the pairs, recorded in the result.

    Raises:
        ValueError: lengths differ, fewer than 2 pairs, a value is not finite, or a bad option.
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must pair up (same length), got {len(a)} and {len(b)} values")
    if len(a) < 2:
        raise ValueError(f"a paired confidence interval needs at least 2 pairs, got {len(a)}")
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    if not is_number(confidence) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not is_int(n_boot) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    if not all(math.isfinite(x) for x in d):
        raise ValueError(f"the paired values must be finite numbers, got a={list(a)!r} b={list(b)!r}")
    n = len(d)
    mean = statistics.fmean(d)
    sd = statistics.stdev(d)
    if method == "t":
        half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        rng = random.Random(seed)
        means = sorted(statistics.fmean(rng.choices(d, k=n)) for _ in range(n_boot))
        tail = (1 - confidence) / 2
        lo = means[min(n_boot - 1, max(0, math.floor(tail * n_boot)))]
        hi = means[min(n_boot - 1, max(0, math.ceil((1 - tail) * n_boot) - 1))]
    return PairedDifference(n=n, mean=mean, std=sd, lo=lo, hi=hi, confidence=float(confidence), method=method,
                            seeds=tuple(seeds) if seeds is not None else (), p=paired_t_p(mean, sd, n))


def paired_t_p(mean: float, sd: float, n: int) -> float:
    """The two-sided p-value of the paired t-test for ``n`` differences of mean ``mean`` and sample sd ``sd``.

    ``2 · P(T_{n-1} >= |mean| / (sd / sqrt(n)))``; with ``sd == 0`` it is 1 for a zero mean and 0 otherwise
    (every pair differs by the same amount).

    Example:
        >>> round(paired_t_p(1.0, 1.0, 5), 4)   # t = 2.236 with 4 degrees of freedom
        0.089
    """
    df = _check_df(int(n) - 1)
    if not (math.isfinite(mean) and math.isfinite(sd)) or sd < 0:
        raise ValueError(f"mean and sd must be finite (sd >= 0), got mean={mean!r} sd={sd!r}")
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    t = abs(mean) / (sd / math.sqrt(n))
    return min(1.0, 2.0 * (1.0 - t_cdf(t, df)))


def format_p(p: float) -> str:
    """A p-value for a table: 3 decimals, ``<0.001`` below that."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: a test is rejected at level ``a`` when its value is <= ``a``.

    Sort the ``m`` p-values ascending, ``p_(1) <= ... <= p_(m)``; the adjusted ``q_(k)`` is
    ``max_{j <= k} min(1, (m - j + 1) · p_(j))``. NaN values (no test) stay NaN and do not count in ``m``.

    Example:
        >>> [round(q, 3) for q in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    vals = [float(p) for p in pvalues]
    if any(not math.isnan(p) and not 0 <= p <= 1 for p in vals):
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN), got {vals!r}")
    order = sorted((i for i, p in enumerate(vals) if not math.isnan(p)), key=lambda i: vals[i])
    m = len(order)
    out = [math.nan] * len(vals)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * vals[i]))
        out[i] = running
    return out
