"""The few statistics the trials report: hit rates with Wilson intervals, means, medians, spreads.

Pure functions on plain numbers: no Django, no I/O.
"""

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist, fmean, median

CONFIDENCE = 0.95


def wilson_interval(*, successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / trials``.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
    successes, which is where a race test's hit rate often sits.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, not {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be from 0 to trials ({trials}), not {successes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 or n successes a bound is exactly 0 or 1; rounding would leave it a hair away.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return low, high


def rate(*, hits: int, trials: int) -> float:
    if trials < 1:
        raise ValueError(f"trials must be at least 1, not {trials}")
    return hits / trials


def mean_or_none(values: Iterable[float]) -> float | None:
    values = list(values)
    return fmean(values) if values else None


def median_or_none(values: Iterable[float]) -> float | None:
    values = list(values)
    return median(values) if values else None


def spread(times: Sequence[float]) -> float | None:
    """Latest minus earliest: how far apart a burst's arrivals were. None for fewer than two."""
    if len(times) < 2:
        return None
    return max(times) - min(times)


def first_gap(times: Sequence[float]) -> float | None:
    """The gap between the two earliest arrivals. None for fewer than two."""
    if len(times) < 2:
        return None
    earliest, second = sorted(times)[:2]
    return second - earliest


def hit_figures(*, hits: int, trials: int) -> dict[str, float | int]:
    """How often ``trials`` hit: the count, the rate and its Wilson interval, as a summary's fields."""
    low, high = wilson_interval(successes=hits, trials=trials)
    return {
        "hits": hits,
        "hit_rate": rate(hits=hits, trials=trials),
        "hit_rate_low": low,
        "hit_rate_high": high,
    }
