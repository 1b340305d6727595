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
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# bounded_calls, usage, worker_pool, ProcessWorkers, task_kwargs_names: importable from here, as before
from dagster_evals.engine import bounded_calls, usage, worker_pool  # noqa: F401
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.isolation import DaemonThreads, ProcessWorkers  # noqa: F401
from dagster_evals.engine.limits import MAX_CONCURRENCY_LIMIT, MAX_TRIAL_COUNT, check_bound
from dagster_evals.engine.models import EvalRequest, EvalRow, RowResult
from dagster_evals.engine.progress import track_results
from dagster_evals.engine.run_loop import (  # noqa: F401  (importable from here, as before the run loop moved)
    CANCEL_POLL_S,
    CANCELLED_ERROR,
    ISOLATIONS,
    Checkpoints,
    Isolation,
    RowRunner,
    RunStats,
    _Cancelled,
    _format_error,
    _TimedOut,
)
from dagster_evals.engine.scorers import Scorer
from dagster_evals.engine.task_call import task_kwargs_names  # noqa: F401
from dagster_evals.engine.timeouts import (  # noqa: F401  (DEFAULT_SCORER_TIMEOUT_S: importable from here too)
    DEFAULT_SCORER_BOUND,
    DEFAULT_SCORER_TIMEOUT_S,
    ScorerBound,
    ScorerTimeout,
    scorer_bound,
)

DEFAULT_MAX_CONCURRENCY = 10
_Runner = RowRunner  # its name before it moved to `run_loop`


def _pairs(rows: Iterable[EvalRow], trial_count: int) -> Iterator[tuple[EvalRow, int]]:
    for row in rows:
        for trial in range(trial_count):
            yield row, trial


def run_eval_locally(
    rows: Iterable[EvalRow],
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
    runner = RowRunner(
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
    rows: Iterable[EvalRow],
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
