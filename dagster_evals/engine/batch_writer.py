"""Items added one at a time on an eval's event loop, written in batches on a writer thread: `BatchWriter`.

An eval keeps what it scores as it goes (row checkpoints, result rows), so that a killed run loses little,
without its event loop ever waiting for a database. `BatchWriter` holds the items added and hands them to
one writer thread (`OrderedWriter`) in batches:

- **Due by count or age.** The items waiting are due once there are `due_count` of them, or once the
  oldest hand-over is `due_age_s` seconds ago.
- **Handed over while the writer is idle.** `add` hands the waiting items over when they are due and the
  writer has nothing to do. While it is busy they keep piling up (one larger transaction later), up to
  `most_waiting`; past that, `add` waits for the writer, so a writer slower than the run holds it back
  instead of queueing without bound.
- **Taken by the writer when it is done.** Once the writer has written a batch, it takes what piled up
  meanwhile as soon as that is due, by count or by age. With `due_age_s` it waits for the age itself, and
  stays for `due_age_s` after its last batch, so items are written within `due_age_s` even when no further
  item comes for a long while (rows waiting on a slow model): one added after that is due at once. Rows
  often finish in bursts (every row in flight waits on the same model, then scores at once): a burst is
  written while the loop waits for the next one, and an eval's last burst is the only one still to write
  once its rows are done.
- `flush()` hands over what waits; `wait()` returns once everything handed over is written and raises the
  error of a write that failed (which also stops later writes, see `OrderedWriter`).

With `inline=True` (an in-memory database, whose one connection must stay on its thread) every batch is
written at once on the adding thread, and nothing is written by age alone.

Example:
    >>> written = []
    >>> batches = BatchWriter("example", written.append, due_count=2, due_age_s=None, most_waiting=8)
    >>> for item in "abc":
    ...     batches.add(item)
    >>> batches.flush()
    >>> batches.wait()
    >>> batches.close()
    >>> sorted(item for batch in written for item in batch)
    ['a', 'b', 'c']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from dagster_evals.engine.ordered_writer import OrderedWriter

T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Items added one at a time, written `write(batch)` a batch at a time on a writer thread (see the module).

    Args:
        name: The writer thread's name.
        write: Writes one batch (on the writer thread; on the adding thread with `inline`).
        due_count: Items waiting that are handed over at once.
        due_age_s: Seconds after which the items waiting are due however few (None: only by count).
        most_waiting: Items waiting past which `add` waits for the writer.
        inline: Write on the adding thread (an in-memory database).
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[T]], None],
        *,
        due_count: int,
        due_age_s: float | None,
        most_waiting: int,
        inline: bool = False,
    ) -> None:
        self._write = write
        self.due_count = max(1, due_count)
        self.due_age_s = due_age_s
        self.most_waiting = max(self.due_count, most_waiting)
        self._items: list[T] = []
        self._lock = threading.Lock()  # `_items`: added to on the loop, taken on either thread
        self._taken_at = time.monotonic()
        self._writer = OrderedWriter(name, inline=inline)
        # How long the writer waits for items to come of age (None: it does not; inline, it must not).
        self._writer_waits_s = None if inline else due_age_s
        self._wake = threading.Event()  # set by the loop for a writer waiting for items
        # A writer waiting for items returns once the loop hands over a batch itself (`_handoffs` moved on)
        # or no more items are coming for now (`flush`, `wait`, `close`: `_draining`, until the next `add`).
        self._handoffs = 0
        self._draining = False

    @property
    def waiting(self) -> int:
        """Items added and not handed over yet."""
        return len(self._items)

    def add(self, item: T) -> None:
        """Add one item (on the run's thread); hand the waiting items over if due (see the module).

        Raises:
            BaseException: the error of an earlier write, which stopped the writer.
        """
        self._draining = False
        with self._lock:
            self._items.append(item)
            waiting = len(self._items)
        if self._due(waiting):
            if self._writer.idle() or waiting >= self.most_waiting:
                self._hand_off()
            elif waiting == self.due_count:
                self._wake.set()  # the writer, busy or waiting for items, takes them next

    def flush(self) -> None:
        """Hand over every item waiting (`wait()` for them to be written)."""
        self._draining = True
        self._hand_off()

    def wait(self) -> None:
        """Wait until every item handed over is written; raise the error of the first write that failed."""
        self._draining = True  # a writer waiting for more items returns now
        self._wake.set()
        self._writer.wait()

    def close(self) -> None:
        """Let the writer thread end once the batches handed over are written (does not wait for them)."""
        self._draining = True
        self._wake.set()
        self._writer.close()

    def _due(self, waiting: int) -> bool:
        if waiting >= self.due_count:
            return True
        age = self.due_age_s
        return waiting > 0 and age is not None and time.monotonic() - self._taken_at >= age

    def _take(self) -> list[T]:
        with self._lock:
            taken, self._items = self._items, []
        self._taken_at = time.monotonic()
        return taken

    def _hand_off(self) -> None:
        batch = self._take()
        self._handoffs += 1  # a writer waiting for items returns: this batch goes to the next call
        self._wake.set()
        if batch:
            self._writer.submit(self._write_while_due, batch, self._handoffs)

    def _write_while_due(self, batch: list[T], handoff: int) -> None:
        """Write `batch` (handed over as `handoff`), then the items that pile up meanwhile as they come due
        (on the writer thread)."""
        while batch:
            self._write(batch)
            batch = self._next_due(handoff)

    def _next_due(self, handoff: int) -> list[T]:
        """The items waiting, once due (on the writer thread).

        With `due_age_s` the writer waits: for the items waiting to come due, and, while none wait, for
        `due_age_s` after its last batch (so that an item added later, when the writer is idle, is already
        due by age). It returns none once the loop hands over a batch itself (a run far ahead of it), once
        no more items are coming for now (`flush`, `wait`, `close`), and, without `due_age_s`, when the
        items waiting are not due yet.
        """
        while True:
            self._wake.clear()
            if self._handoffs != handoff or self._draining:
                return []
            waiting = len(self._items)
            if self._due(waiting):
                return self._take()
            age = self._writer_waits_s
            if age is None:
                return []
            left = age - (time.monotonic() - self._taken_at)
            if left <= 0:  # nothing waiting, and as long since the last batch as items wait at most
                return []
            self._wake.wait(left)
