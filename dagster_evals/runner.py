"""Local eval runner: the task and scorers over a snapshot's rows, with bounded concurrency and trials.

Sync tasks and scorers run in a thread pool sized to `max_concurrency`; async ones run on the event loop.
At most `max_concurrency` (row, trial) pairs are in flight at once. A task that raises or exceeds the
per-row timeout is recorded as an errored row; it never stops the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dagster_evals.errors import ConfigError
from dagster_evals.models import DatasetRow, EvalRequest, RowResult
from dagster_evals.progress import track_results
from dagster_evals.scorers import Scorer

TASK_ARGS = ("input", "expected", "metadata", "row_id", "trial", "prompt")
DEFAULT_MAX_CONCURRENCY = 10


@dataclass(frozen=True)
class RunStats:
    """What a run did: counts, wall time and the highest number of tasks seen in flight at once."""

    pairs: int
    task_errors: int
    duration_s: float
    peak_in_flight: int


def _task_kwargs_names(task: Callable[..., Any]) -> tuple[str, ...] | None:
    """Names of the row fields the task accepts, or None when it takes the input positionally."""
    try:
        params = inspect.signature(task).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return TASK_ARGS
    named = tuple(a for a in TASK_ARGS if a in params)
    return named if named else None


def _format_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]


class _Runner:
    def __init__(
        self,
        task: Callable[..., Any],
        scorers: list[Scorer],
        max_concurrency: int,
        row_timeout_s: float | None,
        prompt: Any = None,
    ) -> None:
        if not callable(task):
            raise ConfigError(f"the task must be a Python callable to run locally, got {type(task).__name__}")
        self.task = task
        self.task_is_async = inspect.iscoroutinefunction(task)
        self.task_params = _task_kwargs_names(task)
        self.prompt = prompt
        self.scorers = scorers
        self.sync_scorers = [s for s in scorers if not s.is_async]
        self.async_scorers = [s for s in scorers if s.is_async]
        self.max_concurrency = max_concurrency
        self.row_timeout_s = row_timeout_s
        self.in_flight = 0
        self.peak_in_flight = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="dagster-evals-task"
        )

    def _call_task(self, row: DatasetRow, trial: int) -> Any:
        if self.task_params is None:
            return self.task(row.input)
        values = {
            "input": row.input,
            "expected": row.expected,
            "metadata": dict(row.metadata),
            "row_id": row.id,
            "trial": trial,
            "prompt": self.prompt,
        }
        return self.task(**{k: values[k] for k in self.task_params})

    def _score_sync(
        self, row: DatasetRow, output: Any, scores: dict[str, float | None], errors: dict[str, str]
    ) -> None:
        for scorer in self.sync_scorers:
            try:
                scores[scorer.name] = scorer.score(row.input, output, row.expected, row.metadata)
            except Exception as exc:
                errors[scorer.name] = _format_error(exc)

    def _task_and_sync_scores(
        self, row: DatasetRow, trial: int
    ) -> tuple[Any, dict[str, float | None], dict[str, str], float]:
        """Sync task followed by the sync scorers, in one trip to the thread pool."""
        started = time.perf_counter()
        output = self._call_task(row, trial)
        latency = time.perf_counter() - started
        scores: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        self._score_sync(row, output, scores, errors)
        return output, scores, errors, latency

    async def _execute(
        self, row: DatasetRow, trial: int
    ) -> tuple[Any, dict[str, float | None], dict[str, str], float]:
        loop = asyncio.get_running_loop()
        if not self.task_is_async:
            call = loop.run_in_executor(self.pool, self._task_and_sync_scores, row, trial)
            return await (asyncio.wait_for(call, self.row_timeout_s) if self.row_timeout_s else call)
        started = time.perf_counter()
        pending = self._call_task(row, trial)
        output = await (asyncio.wait_for(pending, self.row_timeout_s) if self.row_timeout_s else pending)
        latency = time.perf_counter() - started
        scores: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        if self.sync_scorers:
            await loop.run_in_executor(self.pool, self._score_sync, row, output, scores, errors)
        return output, scores, errors, latency

    async def _score_async(
        self, row: DatasetRow, output: Any, scores: dict[str, float | None], errors: dict[str, str]
    ) -> None:
        for scorer in self.async_scorers:
            try:
                scores[scorer.name] = await scorer.score_async(row.input, output, row.expected, row.metadata)
            except Exception as exc:
                errors[scorer.name] = _format_error(exc)

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
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        started = time.perf_counter()
        try:
            try:
                output, scores, errors, latency = await self._execute(row, trial)
            except TimeoutError:
                return self._failed(
                    row, trial, f"TimeoutError: the task took longer than {self.row_timeout_s}s", started
                )
            except Exception as exc:
                return self._failed(row, trial, _format_error(exc), started)
            if self.async_scorers:
                await self._score_async(row, output, scores, errors)
            scores = {s.name: scores.get(s.name) for s in self.scorers if s.name not in errors}
            return RowResult(
                row_id=row.id,
                trial=trial,
                input=row.input,
                expected=row.expected,
                output=output,
                scores=scores,
                scorer_errors=errors,
                latency_s=latency,
                metadata=dict(row.metadata),
            )
        finally:
            self.in_flight -= 1

    async def run(
        self, pairs: Iterator[tuple[DatasetRow, int]], on_result: Callable[[RowResult], None]
    ) -> RunStats:
        started = time.perf_counter()
        counts = {"pairs": 0, "errors": 0}

        async def worker() -> None:
            for row, trial in pairs:
                result = await self.run_one(row, trial)
                counts["pairs"] += 1
                if result.error is not None:
                    counts["errors"] += 1
                on_result(result)

        try:
            await asyncio.gather(*(worker() for _ in range(self.max_concurrency)))
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
        return RunStats(
            pairs=counts["pairs"],
            task_errors=counts["errors"],
            duration_s=time.perf_counter() - started,
            peak_in_flight=self.peak_in_flight,
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
) -> RunStats:
    """Run `task` then every scorer on each row, `trial_count` times, calling `on_result` per trial.

    The task takes the row's input positionally, or any of the keyword arguments `input`, `expected`,
    `metadata`, `row_id`, `trial` and `prompt` (the `PromptVersion` under evaluation, or None).

    Rows are pulled lazily from `rows`, so memory stays flat however large the snapshot is.
    """
    if trial_count < 1:
        raise ConfigError(f"trial_count must be at least 1, got {trial_count}")
    concurrency = max_concurrency or 1000
    if concurrency < 1:
        raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
    runner = _Runner(task, scorers, concurrency, row_timeout_s, prompt)
    return run_coroutine(runner.run(_pairs(rows, trial_count), on_result))


def run_request_locally(
    request: EvalRequest,
    rows: Iterable[DatasetRow],
    scorers: list[Scorer],
    on_result: Callable[[RowResult], None],
) -> RunStats:
    """`run_eval_locally` with the task, trials, concurrency, row timeout and prompt taken from `request`."""
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
    )


def run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion, also from inside a running event loop (e.g. a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
