"""The run loop of the local runner: `RowRunner` runs the task and scorers of every (row, trial) pair with
bounded concurrency, hard timeouts, cancellation, checkpoints and usage metering, and returns `RunStats`.

`dagster_evals.engine.runner` (`run_eval_locally`, `run_request_locally`) validates the settings, builds a
`RowRunner` and runs it; see its docstring for what a run guarantees.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dagster_evals.engine import bounded_calls, usage, worker_pool
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.frozen_heap import frozen_heap
from dagster_evals.engine.isolation import DaemonThreads, ProcessWorkers
from dagster_evals.engine.models import EvalRow, RowResult
from dagster_evals.engine.scorers import Scorer
from dagster_evals.engine.task_call import task_kwargs_names
from dagster_evals.engine.timeouts import DEFAULT_SCORER_BOUND, ScorerBound

ISOLATIONS = ("thread", "process")
Isolation = Literal["thread", "process"]
# How often a run checks its cancel event.
CANCEL_POLL_S = 0.02


@dataclass(frozen=True)
class RunStats:
    """What a run did: counts, wall time and the highest number of tasks seen in flight at once.

    `task_errors` counts every errored row, timed-out and cancelled ones included. When the run was
    cancelled, `not_run` lists the (row id, trial) pairs that never started.
    """

    pairs: int
    task_errors: int
    duration_s: float
    peak_in_flight: int
    timed_out: int = 0
    scorer_timeouts: int = 0
    cancelled: bool = False
    not_run: tuple[tuple[str, int], ...] = field(default=())
    replayed: int = 0


class Checkpoints(Protocol):
    """Where a run keeps each scored result and finds the ones an earlier attempt already scored
    (see `dagster_evals.engine.checkpoints.RowCheckpoints`)."""

    def resume(self, pairs: Iterator[tuple[EvalRow, int]]) -> Iterator[tuple[EvalRow, int] | RowResult]: ...

    def record(self, result: RowResult) -> None: ...

    def flush(self) -> None: ...


def _format_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]


def _result_of(row: EvalRow, trial: int, **fields: Any) -> RowResult:
    """The result of `row`'s trial `trial`: the row's input, expected output and metadata, and `fields`."""
    return RowResult(
        row_id=row.id,
        trial=trial,
        input=row.input,
        expected=row.expected,
        metadata=dict(row.metadata),
        **fields,
    )


_TimedOut = bounded_calls.TimedOut
_Cancelled = bounded_calls.Cancelled


CANCELLED_ERROR = "RunCancelled: the run was cancelled while this row was running"


class RowRunner:
    """Runs (row, trial) pairs through the task and scorers, at most `max_concurrency` at once."""

    def __init__(
        self,
        task: Callable[..., Any],
        scorers: list[Scorer],
        max_concurrency: int,
        row_timeout_s: float | None,
        prompt: Any = None,
        *,
        scorer_timeout: ScorerBound = DEFAULT_SCORER_BOUND,
        isolation: Isolation = "thread",
        cancel: threading.Event | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        if not callable(task):
            raise ConfigError(f"the task must be a Python callable to run locally, got {type(task).__name__}")
        self.task = task
        self.task_is_async = inspect.iscoroutinefunction(task) and isolation == "thread"
        self.task_params = task_kwargs_names(task)
        self.prompt = prompt
        self.scorers = scorers
        self.max_concurrency = max_concurrency
        self.row_timeout_s = row_timeout_s
        self.scorer_timeout = scorer_timeout
        self.cancel = cancel
        self.checkpoints = checkpoints
        self.in_flight = 0
        self.peak_in_flight = 0
        self.timed_out = 0
        self.scorer_timeouts = 0
        self.threads = DaemonThreads("dagster-evals-task")
        self.processes = ProcessWorkers(task) if isolation == "process" else None
        self._cancelled: asyncio.Future[None] | None = None
        self.meter = usage.RunMeter(usage.budget_for(task, scorers))

    def _task_call(self, row: EvalRow, trial: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.task_params is None:
            return (row.input,), {}
        values = {
            "input": row.input,
            "expected": row.expected,
            "metadata": dict(row.metadata),
            "row_id": row.id,
            "trial": trial,
            "prompt": self.prompt,
        }
        return (), {k: values[k] for k in self.task_params}

    def _timed_sync_task(self, row: EvalRow, trial: int) -> tuple[Any, float]:
        args, kwargs = self._task_call(row, trial)
        started = time.perf_counter()
        output = self.task(*args, **kwargs)
        return output, time.perf_counter() - started

    async def _bounded(self, call: bounded_calls.Call, timeout: float | None) -> Any:
        """The call's result; `_TimedOut` after `timeout` seconds, `_Cancelled` when the run is cancelled."""
        return await bounded_calls.bounded(call, timeout, self._cancelled)

    async def _run_task(self, row: EvalRow, trial: int) -> tuple[Any, float]:
        if self.processes is not None:
            return await self._run_task_in_process(row, trial)
        if not self.task_is_async:
            call = bounded_calls.in_thread(self.threads, self._timed_sync_task, row, trial)
            return await self._bounded(call, self.row_timeout_s)
        args, kwargs = self._task_call(row, trial)
        started = time.perf_counter()
        output = await self._bounded(bounded_calls.in_task(self.task(*args, **kwargs)), self.row_timeout_s)
        return output, time.perf_counter() - started

    async def _run_task_in_process(self, row: EvalRow, trial: int) -> tuple[Any, float]:
        assert self.processes is not None
        worker = await asyncio.wrap_future(self.threads.submit(self.processes.acquire))
        args, kwargs = self._task_call(row, trial)
        started = time.perf_counter()
        healthy = False
        try:
            call = bounded_calls.in_thread(self.threads, worker.call, args, kwargs)
            output = await self._bounded(call, self.row_timeout_s)
            healthy = True
            return output, time.perf_counter() - started
        finally:
            # A worker whose call did not finish is killed; that also ends the thread waiting on it.
            self.processes.release(worker, healthy)

    async def _run_scorers(
        self, row: EvalRow, output: Any
    ) -> tuple[dict[str, float | None], dict[str, str], dict[str, str]]:
        scores: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for scorer in self.scorers:
            args = (row.input, output, row.expected, row.metadata)
            with usage.scope(scorer.name):  # model calls a scorer makes count under its name
                if scorer.is_async:
                    call = bounded_calls.in_task(scorer.score_with_reason_async(*args))
                else:
                    call = bounded_calls.in_thread(self.threads, scorer.score_with_reason, *args)
            try:
                scores[scorer.name], reason = await self._bounded(call, self.scorer_timeout.seconds)
                if reason:
                    reasons[scorer.name] = reason
            except _TimedOut:
                self.scorer_timeouts += 1
                errors[scorer.name] = self.scorer_timeout.timeout_error()
            except _Cancelled:
                raise
            except Exception as exc:
                errors[scorer.name] = _format_error(exc)
        return scores, errors, reasons

    def _failed(self, row: EvalRow, trial: int, error: str, started: float) -> RowResult:
        return _result_of(row, trial, error=error, latency_s=time.perf_counter() - started)

    async def run_one(self, row: EvalRow, trial: int) -> RowResult:
        """Run one row trial, with the tokens, cost and latency of its model calls on `usage`."""
        with usage.row_scope() as spent:
            result = await self._run_one(row, trial)
        return result.model_copy(update={"usage": spent.as_dict()}) if spent.scopes else result

    def _not_run(self, row: EvalRow, trial: int) -> RowResult:
        return _result_of(row, trial, error=self.meter.stop_message(), usage=usage.not_run_usage())

    async def _run_one(self, row: EvalRow, trial: int) -> RowResult:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        started = time.perf_counter()
        try:
            try:
                output, latency = await self._run_task(row, trial)
                scores, errors, reasons = await self._run_scorers(row, output)
            except _TimedOut:
                self.timed_out += 1
                return self._failed(
                    row, trial, f"TimeoutError: the task took longer than {self.row_timeout_s}s", started
                )
            except _Cancelled:
                return self._failed(row, trial, CANCELLED_ERROR, started)
            except Exception as exc:
                return self._failed(row, trial, _format_error(exc), started)
            scores = {s.name: scores.get(s.name) for s in self.scorers if s.name not in errors}
            return _result_of(
                row,
                trial,
                output=output,
                scores=scores,
                scorer_errors=errors,
                reasons=reasons,
                latency_s=latency,
            )
        finally:
            self.in_flight -= 1

    async def _watch_cancel(self) -> None:
        assert self.cancel is not None and self._cancelled is not None
        while not self.cancel.is_set():
            await asyncio.sleep(CANCEL_POLL_S)
        self._cancelled.set_result(None)

    def _is_cancelled(self) -> bool:
        return self._cancelled is not None and self._cancelled.done()

    def _keep(self, result: RowResult) -> None:
        """Checkpoint a scored result; a row cancelled mid-call is scored again on resume."""
        if self.checkpoints is not None and result.error != CANCELLED_ERROR:
            self.checkpoints.record(result)

    async def run(
        self, pairs: Iterator[tuple[EvalRow, int]], on_result: Callable[[RowResult], None]
    ) -> RunStats:
        started = time.perf_counter()
        counts = {"pairs": 0, "errors": 0, "replayed": 0}
        items: Iterator[tuple[EvalRow, int] | RowResult] = (
            self.checkpoints.resume(pairs) if self.checkpoints is not None else iter(pairs)
        )
        watcher: asyncio.Task[None] | None = None
        if self.cancel is not None:
            self._cancelled = asyncio.get_running_loop().create_future()
            watcher = asyncio.ensure_future(self._watch_cancel())

        usage.set_run(self.meter)

        async def handle(item: tuple[EvalRow, int] | RowResult) -> None:
            if isinstance(item, RowResult):  # scored by an earlier attempt: replayed as stored
                counts["replayed"] += 1
                result = item
            # Once the run's cost budget is spent, every later row is recorded as not run.
            elif self.meter.exhausted:
                result = self._not_run(*item)
            else:
                result = await self.run_one(*item)
                self._keep(result)
            counts["pairs"] += 1
            if result.error is not None:
                counts["errors"] += 1
            on_result(result)

        try:  # no more workers than pending pairs, however high max_concurrency is
            with frozen_heap():  # no full collection walks the host's whole heap while rows are in flight
                await worker_pool.drain(items, handle, self.max_concurrency, self._is_cancelled)
        finally:
            if self.checkpoints is not None:
                self.checkpoints.flush()
            if watcher is not None:
                watcher.cancel()
            self.threads.shutdown()
            if self.processes is not None:
                self.processes.shutdown()
        cancelled = self._is_cancelled()
        not_run = (
            tuple((item[0].id, item[1]) for item in items if not isinstance(item, RowResult))
            if cancelled
            else ()
        )
        return RunStats(
            pairs=counts["pairs"],
            task_errors=counts["errors"],
            duration_s=time.perf_counter() - started,
            peak_in_flight=self.peak_in_flight,
            timed_out=self.timed_out,
            scorer_timeouts=self.scorer_timeouts,
            cancelled=cancelled,
            not_run=not_run,
            replayed=counts["replayed"],
        )
