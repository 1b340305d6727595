"""Writes handed to one background thread, run in the order they were handed over, a bounded number behind.

An eval's event loop should not stop for a database write: while its tasks wait on their model calls, a
writer thread stores the last batch of results. `OrderedWriter` runs each submitted call on its one daemon
thread, in submission order. At most `max_pending` calls are outstanding: a further `submit` waits for the
oldest to finish, so a writer slower than the run holds the run back instead of queueing without bound.

With `inline=True` every call runs at once on the submitting thread instead: for an in-memory SQLite
database, whose one connection is shared by every thread and must not be used by two at once.

A call that raises stops the writer: later calls are dropped and the error is raised to the submitter by
the next `submit`, or by `wait`. Nothing is lost silently.

Example:
    >>> written = []
    >>> writer = OrderedWriter("example-writer")
    >>> writer.submit(written.append, 1)
    >>> writer.submit(written.append, 2)
    >>> writer.wait()
    >>> writer.close()
    >>> written
    [1, 2]
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

_STOP = None
# A writer doing a long stretch of Python work calls `yield_gil()` every this many items.
YIELD_EVERY = 50


def yield_gil() -> None:
    """Let a thread waiting for the interpreter lock (the run's event loop, woken by a finished call) run
    now, rather than after the switch interval (5 ms): called between slices of a writer's work."""
    time.sleep(0)


class OrderedWriter:
    """One daemon thread running submitted calls in order, at most `max_pending` outstanding."""

    def __init__(self, name: str, max_pending: int = 1, *, inline: bool = False) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(max_pending)
        self._max_pending = max_pending
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._inline = inline
        self._outstanding = 0
        self._count_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` after every call submitted before it; waits while `max_pending` are outstanding.

        Raises:
            BaseException: the error of an earlier call, which stopped the writer.
        """
        self._raise_error()
        if self._inline:
            fn(*args)
            return
        self._slots.acquire()
        self._raise_error_releasing()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        with self._count_lock:
            self._outstanding += 1
        self._jobs.put((fn, args))

    def idle(self) -> bool:
        """Whether every call submitted so far has run (a `submit` now would not wait)."""
        return self._outstanding == 0

    def wait(self) -> None:
        """Wait until every submitted call has run; raise the error of the first call that failed."""
        for _ in range(self._max_pending):
            self._slots.acquire()
        for _ in range(self._max_pending):
            self._slots.release()
        self._raise_error()

    def close(self) -> None:
        """Let the thread end once the calls already submitted have run (does not wait for them)."""
        if self._thread is not None:
            self._jobs.put(_STOP)
            self._thread = None

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            fn, args = job
            try:
                if self._error is None:
                    fn(*args)
            except BaseException as exc:
                self._error = exc
            finally:
                del job, fn, args
                with self._count_lock:
                    self._outstanding -= 1
                self._slots.release()

    def _raise_error_releasing(self) -> None:
        if self._error is not None:
            self._slots.release()
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
