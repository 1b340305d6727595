"""The task and scorer calls of a local run, each awaited with a timeout and the run's cancellation.

A call runs on a daemon thread (`in_thread`) or as a task of its own (`in_task`), so that a call past its
timeout can be abandoned without waiting for it. The row awaiting it waits on the call's *outcome*, a
future the call settles itself as it ends (a thread through one `call_soon_threadsafe`, a coroutine in its
last step), or that the timer or the run's cancellation settles first: the row resumes one event-loop turn
after its call ends. (`asyncio.wrap_future` plus `asyncio.wait` take three turns for a thread call and two
for a task.) At high concurrency each loop turn a row waits for is the work of the other rows in flight, so
every turn saved is latency saved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from dagster_evals.engine.isolation import DaemonThreads


class TimedOut(Exception):
    """The call did not end within its timeout."""


class Cancelled(Exception):
    """The run was cancelled while the call was running."""


@dataclass(frozen=True)
class Call:
    """A call in flight: `outcome` is settled with its result or error as it ends; `abandon()` stops it
    (cancels its coroutine, or its thread call if it has not started)."""

    outcome: asyncio.Future[Any]
    abandon: Callable[[], Any]


def in_thread(threads: DaemonThreads, fn: Callable[..., Any], *args: Any) -> Call:
    """Run `fn(*args)` on one of `threads` (it sees the caller's context variables)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Any] = loop.create_future()
    call = threads.submit(fn, *args)

    def hand_back(call: concurrent.futures.Future[Any]) -> None:  # on the worker thread
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle_from_thread, call, outcome)

    call.add_done_callback(hand_back)
    return Call(outcome, call.cancel)


def in_task(coro: Coroutine[Any, Any, Any]) -> Call:
    """Run `coro` as a task of its own (in a copy of the caller's context)."""
    outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(_settle_from_coroutine(coro, outcome))
    return Call(outcome, task.cancel)


async def bounded(call: Call, timeout: float | None, cancelled: asyncio.Future[None] | None) -> Any:
    """The call's result; `TimedOut` after `timeout` seconds (None: no limit), `Cancelled` once `cancelled`
    is done. A call that timed out or was cancelled is abandoned, never waited for."""
    outcome = call.outcome
    timer = None
    if timeout is not None:
        timer = asyncio.get_running_loop().call_later(timeout, _settle_with, outcome, TimedOut)
    if cancelled is not None:
        cancelled.add_done_callback(outcome_cancelled := _Canceller(outcome))
    try:
        return await outcome
    except (TimedOut, Cancelled, asyncio.CancelledError):
        call.abandon()
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if cancelled is not None:
            cancelled.remove_done_callback(outcome_cancelled)


@dataclass(frozen=True)
class _Canceller:
    outcome: asyncio.Future[Any]

    def __call__(self, _: asyncio.Future[None]) -> None:
        _settle_with(self.outcome, Cancelled)


def _settle_with(outcome: asyncio.Future[Any], error: type[Exception]) -> None:
    if not outcome.done():
        outcome.set_exception(error())


def _settle_from_thread(call: concurrent.futures.Future[Any], outcome: asyncio.Future[Any]) -> None:
    if outcome.done():
        return
    if call.cancelled():
        outcome.cancel()
        return
    error = call.exception()
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(call.result())


async def _settle_from_coroutine(coro: Coroutine[Any, Any, Any], outcome: asyncio.Future[Any]) -> None:
    try:
        result = await coro
    except asyncio.CancelledError:
        if not outcome.done():
            outcome.cancel()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if not outcome.done():
            outcome.set_exception(exc)
    else:
        if not outcome.done():
            outcome.set_result(result)
