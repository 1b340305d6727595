"""Upper bounds of the settings that size a run, checked when a suite or request is declared.

A setting past its bound is refused with an error naming the field and the bound, before anything runs:
each bound sits well above what a real eval needs and well below what takes a host down (a million
concurrent workers, twenty million trials of a row, twenty thousand Dagster steps).
"""

from __future__ import annotations

MAX_CONCURRENCY_LIMIT = 1_000
"""Most (row, trial) pairs in flight at once (`max_concurrency`); each may hold a thread."""

MAX_TRIAL_COUNT = 1_000
"""Most times one row is run (`trial_count`)."""

MAX_SHARDS = 100
"""Most shard steps of one eval report (`shards`); each is a Dagster step (a pod on Kubernetes)."""


def check_bound(field: str, value: object, upper: int, lower: int = 1) -> int:
    """`value` when it is a whole number from `lower` to `upper`; otherwise a `ConfigError` naming `field`
    and the bounds (a bool is not a number here).

    Examples:
        >>> check_bound("trial_count", 3, MAX_TRIAL_COUNT)
        3
    """
    from dagster_evals.engine.errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, int) or not lower <= value <= upper:
        raise ConfigError(f"{field} must be an integer from {lower} to {upper}, got {value!r}")
    return value
