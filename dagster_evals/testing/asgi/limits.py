"""A sliding-window request limit, as the vendors' rate limiters apply it (N requests in any window)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """Admits at most `limit` requests in any `window_s` seconds of `clock`.

    Examples:
        .. code-block:: python

            window = SlidingWindow(60, 60.0)
            wait = window.admit()  # None: admitted; else seconds until a slot frees up
    """

    def __init__(
        self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._history: deque[float] = deque()

    def admit(self) -> float | None:
        """Record a request and return None, or return the seconds until one is admitted (not recorded)."""
        now = self.clock()
        while self._history and self._history[0] <= now - self.window_s:
            self._history.popleft()
        if len(self._history) >= self.limit:
            return self._history[0] + self.window_s - now
        self._history.append(now)
        return None
