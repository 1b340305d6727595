from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from dagster_evals import ConfigError, DatasetRow, RowResult, run_eval_locally
from dagster_evals.engine.scorers import resolve_local_scorers, resolve_scorer


def rows(n: int) -> list[DatasetRow]:
    return [DatasetRow.build(input=i, expected=str(i), id=f"r{i}") for i in range(n)]


def collect(n: int, task: Any, scorers: list[Any], **kwargs: Any) -> list[RowResult]:
    results: list[RowResult] = []
    run_eval_locally(rows(n), task, resolve_local_scorers(scorers), results.append, **kwargs)
    return results


class InFlight:
    """Counts how many calls are running at once, as the task itself sees it."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.lock = threading.Lock()

    def enter(self) -> int:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            return self.current

    def leave(self) -> None:
        with self.lock:
            self.current -= 1


@pytest.mark.parametrize("limit", [1, 4, 12])
def test_sync_task_never_exceeds_max_concurrency_and_reaches_it(limit: int) -> None:
    # The first `limit` calls wait at a gate that opens only once `limit` of them are inside: the peak is
    # reached by construction, however slow the machine, and any call beyond the limit would raise it.
    seen = InFlight()
    gate = threading.Event()

    def task(input: int) -> str:
        if seen.enter() >= limit:
            gate.set()
        try:
            assert gate.wait(60), "the gate never opened: fewer than max_concurrency calls ran at once"
        finally:
            seen.leave()
        return str(input)

    results = collect(40, task, ["exact_match"], max_concurrency=limit)
    assert len(results) == 40 and all(r.error is None for r in results)
    assert seen.peak == limit


def test_async_task_concurrency_is_bounded_too() -> None:
    seen = InFlight()
    gate: dict[str, asyncio.Event] = {}

    async def task(input: int) -> str:
        opened = gate.setdefault("gate", asyncio.Event())
        if seen.enter() >= 5:
            opened.set()
        try:
            await asyncio.wait_for(opened.wait(), 60)
        finally:
            seen.leave()
        return str(input)

    results = collect(30, task, ["exact_match"], max_concurrency=5)
    assert seen.peak == 5
    assert all(r.scores["exact_match"] == 1.0 for r in results)


def test_trial_count_runs_every_row_that_many_times() -> None:
    calls: list[tuple[str, int]] = []
    lock = threading.Lock()

    def task(input: int, row_id: str, trial: int) -> str:
        with lock:
            calls.append((row_id, trial))
        return str(input)

    results = collect(5, task, ["exact_match"], trial_count=3)
    assert sorted(calls) == sorted((f"r{i}", t) for i in range(5) for t in range(3))
    assert len(results) == 15


def test_failing_row_is_recorded_and_the_run_goes_on() -> None:
    def task(input: int) -> str:
        if input == 3:
            raise ValueError("model refused")
        return str(input)

    results = {r.row_id: r for r in collect(6, task, ["exact_match"])}
    assert results["r3"].error == "ValueError: model refused"
    assert results["r3"].scores == {}
    assert all(results[f"r{i}"].error is None for i in (0, 1, 2, 4, 5))


def test_row_timeout_is_an_errored_row() -> None:
    async def task(input: int) -> str:
        if input == 1:
            await asyncio.sleep(5)
        return str(input)

    results = {r.row_id: r for r in collect(3, task, ["exact_match"], row_timeout_s=2)}
    assert results["r1"].error is not None and "longer than 2s" in results["r1"].error
    assert results["r0"].error is None


def test_scorer_errors_and_out_of_range_scores_are_per_row_errors() -> None:
    def too_big(output: str) -> float:
        return 1.5

    def explodes(output: str, expected: str) -> float:
        raise RuntimeError("judge unavailable")

    def skips(output: str) -> None:
        return None

    results = collect(2, str, ["exact_match", too_big, explodes, skips])
    for r in results:
        assert r.error is None
        assert r.scores["exact_match"] == 1.0
        assert "outside [0, 1]" in r.scorer_errors["too_big"]
        assert "judge unavailable" in r.scorer_errors["explodes"]
        assert r.scores["skips"] is None and "skips" not in r.scorer_errors


def test_builtin_autoevals_scorers_score_outputs() -> None:
    assert resolve_scorer("levenshtein").score(None, "abc", "abd", {}) == pytest.approx(2 / 3)
    assert resolve_scorer("exact_match").score(None, "a", "b", {}) == 0.0
    assert resolve_scorer("numeric_diff").score(None, 3, 4, {}) == pytest.approx(0.857, abs=1e-3)
    assert resolve_scorer("json_diff").score(None, {"a": 1}, {"a": 1}, {}) == 1.0


def test_unknown_scorer_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        resolve_scorer("levenstein")
    assert "unknown scorer 'levenstein'" in str(err.value)
    assert "levenshtein" in str(err.value) and "exact_match" in str(err.value)


def test_duplicate_scorer_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match="share the name"):
        resolve_local_scorers(["exact_match", "exact_match"])


def test_task_receives_expected_and_metadata_by_name() -> None:
    seen: list[Any] = []

    def task(input: int, expected: str, metadata: dict[str, Any]) -> str:
        seen.append((input, expected, metadata))
        return expected

    collect(1, task, ["exact_match"])
    assert seen == [(0, "0", {})]


# A task or scorer that never returns: it waits on an event nobody sets.
NEVER = threading.Event()


def test_sync_task_past_the_row_timeout_is_a_timed_out_row_and_the_run_finishes() -> None:
    def task(input: int) -> str:
        if input == 1:
            NEVER.wait()
        return str(input)

    results: list[RowResult] = []
    stats = run_eval_locally(
        rows(4), task, resolve_local_scorers(["exact_match"]), results.append, row_timeout_s=2
    )
    by_id = {r.row_id: r for r in results}
    assert by_id["r1"].error == "TimeoutError: the task took longer than 2s"
    assert all(by_id[f"r{i}"].error is None for i in (0, 2, 3))
    assert (stats.pairs, stats.task_errors, stats.timed_out) == (4, 1, 1)


def test_a_wedged_sync_task_does_not_keep_the_interpreter_from_exiting(tmp_path: Any) -> None:
    script = tmp_path / "wedged.py"
    script.write_text(
        "import threading\n"
        "from dagster_evals import DatasetRow, run_eval_locally\n"
        "from dagster_evals.engine.scorers import resolve_local_scorers\n"
        "def task(input):\n"
        "    threading.Event().wait()\n"
        "stats = run_eval_locally([DatasetRow.build(input=1)], task, resolve_local_scorers(['exact_match']),"
        " lambda r: print(r.error), row_timeout_s=0.2)\n"
        "print('timed out rows:', stats.timed_out)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "TimeoutError: the task took longer than 0.2s",
        "timed out rows: 1",
    ]


@pytest.mark.parametrize("kind", ["sync", "async", "async ignoring its cancellation"])
def test_a_wedged_scorer_is_a_scorer_error_and_the_run_finishes(kind: str) -> None:
    def stuck_sync(output: str) -> float:
        NEVER.wait()
        return 1.0

    async def stuck_async(output: str) -> float:
        await asyncio.Event().wait()
        return 1.0

    async def stuck_stubborn(output: str) -> float:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # the timeout's cancellation: swallowed, the row must not wait for it
            await asyncio.Event().wait()  # until the run's event loop shuts down
        return 1.0

    stuck = {"sync": stuck_sync, "async": stuck_async}.get(kind, stuck_stubborn)
    results: list[RowResult] = []
    stats = run_eval_locally(
        rows(3),
        str,
        resolve_local_scorers(["exact_match", stuck]),
        results.append,
        scorer_timeout_s=2,
    )
    assert len(results) == 3
    for result in results:
        assert result.error is None
        assert result.scores == {"exact_match": 1.0}
        assert result.scorer_errors == {stuck.__name__: "TimeoutError: the scorer took longer than 2s"}
    assert stats.scorer_timeouts == 3


def test_cancelling_stops_new_rows_and_records_the_rows_in_flight_and_not_run() -> None:
    cancel = threading.Event()
    seen = InFlight()

    def task(input: int) -> str:
        if seen.enter() == 2:
            cancel.set()
        NEVER.wait()
        return str(input)

    results: list[RowResult] = []
    stats = run_eval_locally(
        rows(10),
        task,
        resolve_local_scorers(["exact_match"]),
        results.append,
        max_concurrency=2,
        cancel=cancel,
    )
    assert stats.cancelled
    assert sorted(r.row_id for r in results) == ["r0", "r1"]
    assert all(r.error == "RunCancelled: the run was cancelled while this row was running" for r in results)
    assert stats.not_run == tuple((f"r{i}", 0) for i in range(2, 10))
    assert (stats.pairs, stats.task_errors) == (2, 2)


def test_a_run_that_is_not_cancelled_reports_nothing_not_run() -> None:
    stats = run_eval_locally(rows(3), str, [], lambda r: None, cancel=threading.Event())
    assert (stats.cancelled, stats.not_run, stats.pairs) == (False, (), 3)


def test_process_isolation_kills_the_wedged_worker_and_runs_the_rest(tmp_path: Any) -> None:
    pid_file = tmp_path / "wedged.pid"

    def task(input: int) -> int:
        if input == 1:
            pid_file.write_text(str(os.getpid()))
            threading.Event().wait()
        return os.getpid()

    results: list[RowResult] = []
    stats = run_eval_locally(
        rows(4), task, [], results.append, row_timeout_s=5, isolation="process", max_concurrency=2
    )
    by_id = {r.row_id: r for r in results}
    assert by_id["r1"].error == "TimeoutError: the task took longer than 5s"
    assert stats.timed_out == 1
    outputs = {by_id[f"r{i}"].output for i in (0, 2, 3)}
    assert os.getpid() not in outputs and all(isinstance(pid, int) for pid in outputs)
    wedged = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(wedged, 0)


def test_process_isolation_reports_a_task_error_and_a_dead_worker() -> None:
    def task(input: int) -> str:
        if input == 0:
            raise ValueError("model refused")
        if input == 1:
            os._exit(3)
        return str(input)

    results = {r.row_id: r for r in collect(3, task, ["exact_match"], isolation="process")}
    assert results["r0"].error == "TaskProcessError: ValueError: model refused"
    assert results["r1"].error == (
        "TaskProcessError: the task's worker process ended without a result (exit code 3)"
    )
    assert results["r2"].scores == {"exact_match": 1.0}


def test_async_scorers_and_autoevals_scores_are_recorded() -> None:
    from autoevals import Score

    async def async_half(output: str) -> float:
        await asyncio.sleep(0)
        return 0.5

    def returns_score(output: str, expected: str) -> Score:
        return Score(name="custom", score=0.25 if output == expected else 0.0)

    async def async_score(output: str) -> Score:
        return Score(name="judge", score=1.0)

    def score_with_error(output: str) -> Score:
        return Score(name="judge", score=None, error=RuntimeError("judge said no"))

    results = collect(2, str, [async_half, returns_score, async_score, score_with_error])
    for result in results:
        assert result.error is None
        assert result.scores == {"async_half": 0.5, "returns_score": 0.25, "async_score": 1.0}
        assert "judge said no" in result.scorer_errors["score_with_error"]


@pytest.mark.parametrize(
    ("setting", "value"),
    [("row_timeout_s", 0), ("row_timeout_s", -1), ("scorer_timeout_s", 0), ("isolation", "fiber")],
)
def test_bad_runner_settings_are_rejected_before_anything_runs(setting: str, value: Any) -> None:
    ran: list[int] = []
    with pytest.raises(ConfigError, match=setting):
        run_eval_locally(rows(1), ran.append, [], lambda r: None, **{setting: value})
    assert ran == []


def test_runs_from_inside_a_running_event_loop_too() -> None:
    async def notebook_cell() -> list[RowResult]:
        return collect(3, str, ["exact_match"], row_timeout_s=5)

    results = asyncio.run(notebook_cell())
    assert sorted(r.row_id for r in results) == ["r0", "r1", "r2"]
    assert all(r.scores == {"exact_match": 1.0} for r in results)
