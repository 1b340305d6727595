"""While an eval runs, the objects that existed before it are left out of the garbage collector's scans.

CPython's cyclic garbage collector now and then runs a full collection, which walks every object the
process holds. In a Dagster step the process holds Dagster, SQLAlchemy, pydantic and the user's definitions,
about 200,000 objects: one full collection takes about 90 ms on a 2-core machine, and for that time the
eval's event loop is stopped. Every row in flight waits: its measured latency grows by the pause, and a row
near its timeout can time out because of it. An eval allocates results as it goes, so full collections come
every few thousand rows.

`frozen_heap()` moves the objects that exist when the eval starts into the collector's permanent
generation (`gc.freeze`), and back when it ends (`gc.unfreeze`): a full collection during the eval walks
only what the eval allocated. Nothing is lost: the eval's own garbage is collected as before, and a cycle
among older objects that becomes garbage during the eval is collected after it.

The freeze is shared: nested or concurrent evals in one process freeze once, when the first starts, and
unfreeze when the last ends. A process that froze its heap itself (a server that forks workers, for
instance) is left as it is, and so is one that turned the collector off.

Example:
    >>> import gc
    >>> from dagster_evals.engine.frozen_heap import frozen_heap
    >>> with frozen_heap():
    ...     gc.get_freeze_count() > 0
    True
    >>> gc.get_freeze_count()
    0
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0  # evals inside `frozen_heap()` now, when this module froze the heap
_froze = False  # whether this module froze the heap (and so unfreezes it)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects that exist now out of garbage collection scans until the block ends (see the module)."""
    global _holders, _froze
    with _lock:
        if _holders == 0:
            # Someone else's freeze (or a collector turned off) is theirs to undo: leave the heap alone.
            _froze = gc.isenabled() and gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _froze:
                _froze = False
                gc.unfreeze()
