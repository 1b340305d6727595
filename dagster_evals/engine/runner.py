"""Local eval runner: the task and scorers over a snapshot's rows, with bounded concurrency and trials.

At most `max_concurrency` (row, trial) pairs are in flight at once. Every call is bounded: the task by the
per-row timeout, each scorer by the scorer timeout. A task or scorer that raises or times out is recorded
on its row (the row's `error`, or the scorer's entry in `scorer_errors`); it never stops or hangs the run.

Sync tasks and scorers run in daemon threads: a call past its timeout is abandoned and its thread is never
waited for, at the end of the run or at interpreter exit. A thread cannot be killed, so a task that may
wedge for good (a stuck C extension, a socket without a timeout) can run with `isolation="process"`: each
call runs in a worker process that is killed when the call times out. A run stops early, cleanly, when its
`cancel` event is set: no new row starts, rows in flight are recorded as cancelled, and the rows never run
are listed in the returned `RunStats`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dagster_evals.engine import bounded_calls, usage, worker_pool
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.isolation import DaemonThreads, ProcessWorkers
from dagster_evals.engine.limits import MAX_CONCURRENCY_LIMIT, MAX_TRIAL_COUNT, check_bound
from dagster_evals.engine.models import DatasetRow, EvalRequest, RowResult
from dagster_evals.engine.progress import track_results
from dagster_evals.engine.scorers import Scorer
from dagster_evals.engine.task_call import task_kwargs_names
from dagster_evals.engine.timeouts import (  # noqa: F401  (DEFAULT_SCORER_TIMEOUT_S: importable from here too)
    DEFAULT_SCORER_BOUND,
    DEFAULT_SCORER_TIMEOUT_S,
    ScorerBound,
    ScorerTimeout,
    scorer_bound,
)

DEFAULT_MAX_CONCURRENCY = 10
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

    def resume(
        self, pairs: Iterator[tuple[DatasetRow, int]]
    ) -> Iterator[tuple[DatasetRow, int] | RowResult]: ...

    def record(self, result: RowResult) -> None: ...

    def flush(self) -> None: ...


def _format_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]


_TimedOut = bounded_calls.TimedOut
_Cancelled = bounded_calls.Cancelled


CANCELLED_ERROR = "RunCancelled: the run was cancelled while this row was running"


class _Runner:
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

    def _task_call(self, row: DatasetRow, trial: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
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

    def _timed_sync_task(self, row: DatasetRow, trial: int) -> tuple[Any, float]:
        args, kwargs = self._task_call(row, trial)
        started = time.perf_counter()
        output = self.task(*args, **kwargs)
        return output, time.perf_counter() - started

    async def _bounded(self, call: bounded_calls.Call, timeout: float | None) -> Any:
        """The call's result; `_TimedOut` after `timeout` seconds, `_Cancelled` when the run is cancelled."""
        return await bounded_calls.bounded(call, timeout, self._cancelled)

    async def _run_task(self, row: DatasetRow, trial: int) -> tuple[Any, float]:
        if self.processes is not None:
            return await self._run_task_in_process(row, trial)
        if not self.task_is_async:
            call = bounded_calls.in_thread(self.threads, self._timed_sync_task, row, trial)
            return await self._bounded(call, self.row_timeout_s)
        args, kwargs = self._task_call(row, trial)
        started = time.perf_counter()
        output = await self._bounded(bounded_calls.in_task(self.task(*args, **kwargs)), self.row_timeout_s)
        return output, time.perf_counter() - started

    async def _run_task_in_process(self, row: DatasetRow, trial: int) -> tuple[Any, float]:
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
        self, row: DatasetRow, output: Any
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

    def _failed(self, row: DatasetRow, trial: int, error: str, started: float) -> RowResult:
        return RowResult(
            row_id=row.id,
            trial=trial,
            input=row.input,
            expected=row.expected,
            error=error,
            latency_s=time.perf_counter() - started,
            metadata=dict(row.metadata),
        )

    async def run_one(self, row: DatasetRow, trial: int) -> RowResult:
        """Run one row trial, with the tokens, cost and latency of its model calls on `usage`."""
        with usage.row_scope() as spent:
            result = await self._run_one(row, trial)
        return result.model_copy(update={"usage": spent.as_dict()}) if spent.scopes else result

    def _not_run(self, row: DatasetRow, trial: int) -> RowResult:
        return RowResult(
            row_id=row.id,
            trial=trial,
            input=row.input,
            expected=row.expected,
            error=self.meter.stop_message(),
            metadata=dict(row.metadata),
            usage=usage.not_run_usage(),
        )

    async def _run_one(self, row: DatasetRow, trial: int) -> RowResult:
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
            return RowResult(
                row_id=row.id,
                trial=trial,
                input=row.input,
                expected=row.expected,
                output=output,
                scores=scores,
                scorer_errors=errors,
                reasons=reasons,
                latency_s=latency,
                metadata=dict(row.metadata),
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
        self, pairs: Iterator[tuple[DatasetRow, int]], on_result: Callable[[RowResult], None]
    ) -> RunStats:
        started = time.perf_counter()
        counts = {"pairs": 0, "errors": 0, "replayed": 0}
        items: Iterator[tuple[DatasetRow, int] | RowResult] = (
            self.checkpoints.resume(pairs) if self.checkpoints is not None else iter(pairs)
        )
        watcher: asyncio.Task[None] | None = None
        if self.cancel is not None:
            self._cancelled = asyncio.get_running_loop().create_future()
            watcher = asyncio.ensure_future(self._watch_cancel())

        usage.set_run(self.meter)

        async def handle(item: tuple[DatasetRow, int] | RowResult) -> None:
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


def _pairs(rows: Iterable[DatasetRow], trial_count: int) -> Iterator[tuple[DatasetRow, int]]:
    for row in rows:
        for trial in range(trial_count):
            yield row, trial


def run_eval_locally(
    rows: Iterable[DatasetRow],
    task: Callable[..., Any],
    scorers: list[Scorer],
    on_result: Callable[[RowResult], None],
    *,
    trial_count: int = 1,
    max_concurrency: int | None = DEFAULT_MAX_CONCURRENCY,
    row_timeout_s: float | None = None,
    prompt: Any = None,
    scorer_timeout_s: ScorerTimeout = "auto",
    isolation: Isolation = "thread",
    cancel: threading.Event | None = None,
    checkpoints: Checkpoints | None = None,
) -> RunStats:
    """Run `task` then every scorer on each row, `trial_count` times, calling `on_result` per trial.

    The task takes the row's input positionally, or any of the keyword arguments `input`, `expected`,
    `metadata`, `row_id`, `trial` and `prompt` (the `PromptVersion` under evaluation, or None).

    Rows are pulled lazily from `rows`, so memory stays flat however large the snapshot is.

    Args:
        rows: The rows to run.
        task: The application under test.
        scorers: Resolved scorers (see `resolve_local_scorers`).
        on_result: Called once per (row, trial) that ran, timed-out and cancelled ones included.
        trial_count: Times each row is run (1 to `MAX_TRIAL_COUNT`, 1000).
        max_concurrency: Most (row, trial) pairs in flight at once (1 to `MAX_CONCURRENCY_LIMIT`, 1000; None:
            the limit); never more workers are started than there are pairs to run.
        row_timeout_s: Longest a task call may take (None: no limit); a row past it is an errored row.
        prompt: The prompt version under evaluation, passed to tasks that take `prompt`.
        scorer_timeout_s: Longest one scorer call may take (None: no limit); past it the scorer's entry in
            the row's `scorer_errors` says so. `"auto"` (default): `row_timeout_s` when set, at most 300 s.
        isolation: `"thread"` (default) or `"process"`: run each task call in a worker process that is
            killed when the call times out (inputs and outputs must pickle).
        cancel: Set this event to stop the run: no new row starts, rows in flight are recorded as
            cancelled, and the rows never run are listed in `RunStats.not_run`.
        checkpoints: Where each scored result is kept as it completes; pairs it already holds are not run
            again but passed to `on_result` as stored (counted in `RunStats.replayed`).

    Examples:
        >>> from dagster_evals import DatasetRow, run_eval_locally
        >>> from dagster_evals.engine.scorers import resolve_local_scorers
        >>> results = []
        >>> stats = run_eval_locally(
        ...     [DatasetRow.build(input="a", expected="A")], str.upper,
        ...     resolve_local_scorers(["exact_match"]), results.append, row_timeout_s=5,
        ... )
        >>> results[0].scores, stats.task_errors
        ({'exact_match': 1.0}, 0)
    """
    check_bound("trial_count", trial_count, MAX_TRIAL_COUNT)
    concurrency = check_bound(
        "max_concurrency", max_concurrency or MAX_CONCURRENCY_LIMIT, MAX_CONCURRENCY_LIMIT
    )
    scorer_timeout = scorer_bound(scorer_timeout_s, row_timeout_s)  # checks both settings
    if isolation not in ISOLATIONS:
        raise ConfigError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    runner = _Runner(
        task,
        scorers,
        concurrency,
        row_timeout_s,
        prompt,
        scorer_timeout=scorer_timeout,
        isolation=isolation,
        cancel=cancel,
        checkpoints=checkpoints,
    )
    return run_coroutine(runner.run(_pairs(rows, trial_count), on_result))


def run_request_locally(
    request: EvalRequest,
    rows: Iterable[DatasetRow],
    scorers: list[Scorer],
    on_result: Callable[[RowResult], None],
    *,
    cancel: threading.Event | None = None,
) -> RunStats:
    """`run_eval_locally` with the task, trials, concurrency, timeouts, isolation and prompt from `request`."""
    return run_eval_locally(
        rows,
        request.task,
        scorers,
        track_results(
            on_result, total=request.snapshot.row_count * request.trial_count, what=f"eval {request.name}"
        ),
        trial_count=request.trial_count,
        max_concurrency=request.max_concurrency or DEFAULT_MAX_CONCURRENCY,
        row_timeout_s=request.row_timeout_s,
        prompt=request.prompt,
        scorer_timeout_s=request.scorer_timeout_s,
        isolation=request.isolation,
        cancel=cancel,
        checkpoints=request.checkpoints,
    )


def run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion, also from inside a running event loop (e.g. a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # A daemon thread, so that a run wedged past every timeout can never block interpreter exit.
    thread = DaemonThreads("dagster-evals-loop")
    future = thread.submit(asyncio.run, coro)
    thread.shutdown()  # the thread ends once the run returns
    return future.result()
