"""Progress of long steps (evals, dataset syncs), logged every few seconds into the Dagster run log.

A line reads `eval support_bot-1a2b: 480/2000 row trials (24%), 31.9/s, elapsed 15s, ETA 48s, 2 errors`.
Lines are time-based (at most one per `interval_s`, plus the last one), not one per N rows, so a slow LLM
task still reports regularly and a fast one does not flood the log. Inside a Dagster step the lines go to
the step's `context.log`; elsewhere to the callback given (or nowhere).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from dagster_evals.engine.errors import ConfigError

ProgressFn = Callable[[str], None]
DEFAULT_INTERVAL_S = 5.0
T = TypeVar("T")
_COUNT = re.compile(r"(\d+)\s*/\s*(\d+)")


def _quiet(_: str) -> None:
    pass


def step_log() -> ProgressFn | None:
    """`context.log.info` of the Dagster step running in this thread, or None outside a step."""
    dg = sys.modules.get("dagster")
    if dg is None:  # Dagster was never loaded in this process (e.g. an Airflow task): no step is running
        return None
    try:
        return dg.OpExecutionContext.get().log.info
    except Exception:  # no step is running here
        return None


def default_interval_s() -> float:
    """Least seconds between two progress lines: `$DAGSTER_EVALS_PROGRESS_INTERVAL_S`, else 5.

    0 logs every update (useful to follow a step line by line, or to act on a given count in a test).
    """
    raw = os.environ.get("DAGSTER_EVALS_PROGRESS_INTERVAL_S", "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise ConfigError(
            f"DAGSTER_EVALS_PROGRESS_INTERVAL_S={raw!r}: use a number of seconds, 0 or more (default 5)"
        )
    return value


def format_duration(seconds: float) -> str:
    """`9.8s`, `2m05s`, `1h02m`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressReporter:
    """Counts work done and logs done / total, rate, elapsed, ETA and errors every `interval_s`.

    Args:
        what: What is progressing, e.g. `"eval support_bot-1a2b"`.
        total: Units expected (None when unknown: no percentage or ETA).
        log: Where lines go (default: the current Dagster step's log, else nowhere).
        unit: Name of a unit, e.g. `"row trials"`.
        interval_s: Least time between two lines.
        clock: Monotonic clock in seconds (injectable for tests).

    Example:
        >>> ticks = iter([0.0, 1.0, 6.0, 7.0])
        >>> lines = []
        >>> reporter = ProgressReporter("eval x", 3, log=lines.append, unit="rows", clock=lambda: next(ticks))
        >>> reporter.advance()
        >>> reporter.advance(errors=1)
        >>> reporter.advance()
        >>> lines
        ['eval x: 2/3 rows (67%), 0.3/s, elapsed 6.0s, ETA 3.0s, 1 error', 'eval x: done, 3/3 rows, 0.4/s, elapsed 7.0s, 1 error']
    """

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        log: ProgressFn | None = None,
        unit: str = "rows",
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.interval_s = default_interval_s() if interval_s is None else interval_s
        self.clock = clock
        self.log: ProgressFn = log or step_log() or _quiet
        self.done = 0
        self.errors = 0
        self.finished = False
        self._lock = threading.Lock()
        self.started = clock()
        self._last = self.started

    def line(self, now: float) -> str:
        """The progress line at time `now`."""
        elapsed = max(now - self.started, 0.0)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        errors = f", {self.errors} error{'s' if self.errors != 1 else ''}" if self.errors else ""
        if self.finished:
            return (
                f"{self.what}: done, {self.done}/{self.total if self.total is not None else self.done} "
                f"{self.unit}, {rate:.1f}/s, elapsed {format_duration(elapsed)}{errors}"
            )
        if self.total is None:
            return f"{self.what}: {self.done} {self.unit}, {rate:.1f}/s, elapsed {format_duration(elapsed)}{errors}"
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = (
            f", ETA {format_duration((self.total - self.done) / rate)}"
            if rate > 0 and self.done < self.total
            else ""
        )
        return (
            f"{self.what}: {self.done}/{self.total} {self.unit}{share}, {rate:.1f}/s, "
            f"elapsed {format_duration(elapsed)}{eta}{errors}"
        )

    def advance(self, n: int = 1, *, errors: int = 0) -> None:
        """Record `n` more units (of which `errors` failed); log when `interval_s` has passed or all are done."""
        self.update(self.done + n, errors=self.errors + errors)

    def update(self, done: int, *, errors: int | None = None) -> None:
        """Set the count of units done (and of errors); log when due."""
        with self._lock:
            if self.finished:
                return
            self.done = done
            if errors is not None:
                self.errors = errors
            now = self.clock()
            if self.total is not None and self.done >= self.total:
                self.finished = True
                text = self.line(now)
            elif now - self._last >= self.interval_s:
                self._last = now
                text = self.line(now)
            else:
                return
        self.log(text)

    def finish(self) -> None:
        """Log the final line (once), whether or not the total was reached."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
            text = self.line(self.clock())
        self.log(text)


def track_results(
    on_result: Callable[[T], Any],
    *,
    total: int | None,
    what: str,
    unit: str = "row trials",
    log: ProgressFn | None = None,
    clock: Callable[[], float] = time.monotonic,
    interval_s: float | None = None,
) -> Callable[[T], None]:
    """`on_result`, counting each result (and each result with an `error` or scorer errors) for progress."""
    reporter = ProgressReporter(what, total, log=log, unit=unit, clock=clock, interval_s=interval_s)

    def counted(result: T) -> None:
        on_result(result)
        failed = getattr(result, "error", None) is not None or bool(getattr(result, "scorer_errors", None))
        reporter.advance(errors=1 if failed else 0)

    return counted


def sync_progress(
    progress: ProgressFn,
    *,
    total: int,
    what: str,
    clock: Callable[[], float] = time.monotonic,
    interval_s: float | None = None,
) -> ProgressFn:
    """A progress callback for a dataset sync: the backend's `sent N/M` messages become timed progress lines.

    Messages carrying a count update the reporter (which logs at most every `interval_s`, with rate,
    elapsed time and ETA); other messages pass through unchanged.
    """
    reporter = ProgressReporter(what, total, log=progress, unit="rows", clock=clock, interval_s=interval_s)

    def report(message: str) -> None:
        match = _COUNT.search(message)
        if match is None or int(match.group(2)) != total:
            progress(message)
            return
        reporter.update(int(match.group(1)))

    return report
