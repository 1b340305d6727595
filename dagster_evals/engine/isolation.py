"""Where the local runner runs blocking calls: daemon threads it never waits for, or killable processes.

A Python thread cannot be stopped from outside. A call that outlives its timeout is therefore abandoned:
its thread is a daemon thread the interpreter does not join at exit, and a fresh thread takes its place so
later calls never queue behind it. A process can be stopped: with process isolation each call runs in a
worker process that is killed when the call times out or the run is cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import multiprocessing
import multiprocessing.connection
import queue
import threading
from collections.abc import Callable
from typing import Any

from dagster_evals.engine import usage

_STOP = None


class DaemonThreads:
    """A thread pool of daemon threads whose wedged threads are left behind, never joined.

    A thread is reused only once its previous call returned; a call that never returns keeps its thread
    and the next call gets a new one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._started += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True).start()
        # The call sees the caller's context variables (e.g. the run's token and cost meter).
        self._jobs.put((future, contextvars.copy_context().run, (fn, *args)))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            del job, future, fn, args
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Let every thread exit once it is idle; a wedged thread exits if its call ever returns."""
        with self._lock:
            count = self._started
        for _ in range(count):
            self._jobs.put(_STOP)


def _serve(task: Callable[..., Any], conn: multiprocessing.connection.Connection) -> None:
    """Worker process loop: receive keyword arguments, call the task, send back ("ok"|"error", value,
    the model usage the call recorded)."""
    while True:
        try:
            kwargs = conn.recv()
        except EOFError:
            return
        with usage.row_scope() as spent:
            try:
                args, named = kwargs
                result = task(*args, **named)
                if inspect.isawaitable(result):
                    result = asyncio.run(_await(result))
                reply: tuple[str, Any] = ("ok", result)
            except BaseException as exc:
                reply = ("error", f"{type(exc).__name__}: {exc or type(exc).__name__}")
        try:
            conn.send((*reply, spent.as_dict()))
        except Exception as exc:
            conn.send(("error", f"the task's output cannot be sent back from its process: {exc}"))


async def _await(awaitable: Any) -> Any:
    return await awaitable


class TaskProcessError(RuntimeError):
    """The task's worker process died or could not send its result."""


class _Worker:
    def __init__(self, context: Any, task: Callable[..., Any]) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(task, child), daemon=True)
        self.process.start()
        child.close()

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            self.conn.send((args, kwargs))
            status, value, *spent = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.process.join(timeout=1)
            raise TaskProcessError(
                f"the task's worker process ended without a result (exit code {self.process.exitcode})"
            ) from exc
        if spent:
            usage.absorb(spent[0])  # model calls the task made in its process count for the row and run
        if status == "error":
            raise TaskProcessError(value)
        return value

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class ProcessWorkers:
    """Worker processes running one task; a worker whose call timed out or was cancelled is killed.

    On POSIX the workers are forked, so the task may be any callable (a closure or lambda too); elsewhere
    they are spawned and the task must be importable. Inputs and outputs cross a pipe, so they must pickle.
    """

    def __init__(self, task: Callable[..., Any]) -> None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._context = multiprocessing.get_context(method)
        self._task = task
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._forking = threading.Lock()

    def acquire(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # One fork at a time: a worker forked while another's pipe is being set up would inherit that
        # pipe's child end, and the other worker's death would then go unnoticed.
        with self._forking:
            worker = _Worker(self._context, self._task)
        with self._lock:
            self._all.add(worker)
        return worker

    def release(self, worker: _Worker, healthy: bool) -> None:
        if healthy and worker.process.is_alive():
            with self._lock:
                self._idle.append(worker)
            return
        self.discard(worker)

    def discard(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()

    def shutdown(self) -> None:
        with self._lock:
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
        for worker in workers:
            worker.kill()
