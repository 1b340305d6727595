"""How long a task or scorer call may take: the settings' checks and the default scorer bound.

The rule for scorers: `scorer_timeout_s="auto"` (the default) bounds each scorer call by the row timeout
when one is set, at most `DEFAULT_SCORER_TIMEOUT_S` (300 s); without a row timeout, by 300 s. A user who
sets `row_timeout_s=1` therefore never waits five minutes for a wedged scorer. A number sets the scorer
bound explicitly (also above the row timeout); None means no bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from dagster_evals.engine.errors import ConfigError

AUTO = "auto"
DEFAULT_SCORER_TIMEOUT_S = 300.0
ScorerTimeout = float | Literal["auto"] | None


def check_timeout(name: str, value: object) -> None:
    """Raise a `ConfigError` naming `name` unless `value` is None or a finite number of seconds above 0."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(
            f"{name} must be a positive number of seconds (or None for no limit), got {value!r}"
        )


@dataclass(frozen=True)
class ScorerBound:
    """The bound each scorer call runs under, and the error text of a call past it."""

    seconds: float | None
    from_row_timeout: bool = False

    def timeout_error(self) -> str:
        text = f"TimeoutError: the scorer took longer than {self.seconds}s"
        if self.from_row_timeout:
            text += (
                " (row_timeout_s: when scorer_timeout_s is not set, a scorer call may take as long as the "
                f"row timeout, at most {DEFAULT_SCORER_TIMEOUT_S:g}s; set scorer_timeout_s to change it)"
            )
        return text


DEFAULT_SCORER_BOUND = ScorerBound(DEFAULT_SCORER_TIMEOUT_S)


def scorer_bound(scorer_timeout_s: ScorerTimeout, row_timeout_s: float | None) -> ScorerBound:
    """The bound of each scorer call under these settings (checked: a `ConfigError` names a bad one).

    Examples:
        >>> scorer_bound("auto", 1.0)
        ScorerBound(seconds=1.0, from_row_timeout=True)
        >>> scorer_bound("auto", None).seconds, scorer_bound("auto", 900).seconds, scorer_bound(5, 1).seconds
        (300.0, 300.0, 5)
    """
    check_timeout("row_timeout_s", row_timeout_s)
    if scorer_timeout_s == AUTO:
        if row_timeout_s is not None and row_timeout_s < DEFAULT_SCORER_TIMEOUT_S:
            return ScorerBound(row_timeout_s, from_row_timeout=True)
        return ScorerBound(DEFAULT_SCORER_TIMEOUT_S)
    if isinstance(scorer_timeout_s, str):
        raise ConfigError(
            f"scorer_timeout_s must be a positive number of seconds, {AUTO!r} or None, got {scorer_timeout_s!r}"
        )
    check_timeout("scorer_timeout_s", scorer_timeout_s)
    return ScorerBound(scorer_timeout_s)
