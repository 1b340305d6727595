"""Small statistics shared by the report and the usage totals (no other engine imports, so both can use it)."""

from __future__ import annotations

__all__ = ["percentile"]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (None for an empty list).

    Example:
        >>> percentile([0.3, 0.1, 0.2], 0.5)
        0.2
        >>> percentile([], 0.95) is None
        True
    """
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
