"""Small statistics helpers: medians and percentiles without numpy."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (pct in 0..100), as numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> dict[str, float]:
    """p50 / p90 / p99 / min / max, multiplied by `scale` (e.g. 1000 for ms)."""
    return {
        "n": len(values),
        "p50": round(median(values) * scale, digits),
        "p90": round(percentile(values, 90) * scale, digits),
        "p99": round(percentile(values, 99) * scale, digits),
        "min": round(min(values) * scale, digits) if values else math.nan,
        "max": round(max(values) * scale, digits) if values else math.nan,
    }
