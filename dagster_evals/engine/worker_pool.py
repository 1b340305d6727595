"""Draining an iterator of work items with a bounded number of asyncio workers, started only as needed.

A run may allow a thousand items in flight and have three to do: it starts three workers, not a thousand.
Each worker handles one item and pulls the next until the iterator is empty or the run is stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


async def drain(
    items: Iterator[T],
    handle: Callable[[T], Awaitable[None]],
    max_workers: int,
    stopped: Callable[[], bool],
) -> int:
    """Call `handle` on every item of `items`, at most `max_workers` at once; returns the workers started.

    No more workers are started than there are items: the first `max_workers` items are pulled up front
    (one worker each), and each worker then pulls the next item when it is done with its own. Once
    `stopped()` is true no worker pulls another item. An exception from `handle` is raised at once, as
    `asyncio.gather` raises it.

    Examples:
        >>> async def show(item: int) -> None:
        ...     print(item)
        >>> asyncio.run(drain(iter([1, 2]), show, 1000, lambda: False))
        1
        2
        2
    """

    async def worker(item: T | None) -> None:
        while item is not None:
            await handle(item)
            item = None if stopped() else next(items, None)

    workers: list[asyncio.Future[None]] = []
    while len(workers) < max_workers and not stopped():
        first = next(items, None)
        if first is None:
            break
        workers.append(asyncio.ensure_future(worker(first)))
    await asyncio.gather(*workers)
    return len(workers)
