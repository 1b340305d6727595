from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from dagster_evals import ConfigError, DatasetRow, RowResult, run_eval_locally
from dagster_evals.scorers import resolve_local_scorers, resolve_scorer


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

    def enter(self) -> None:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        with self.lock:
            self.current -= 1


@pytest.mark.parametrize("limit", [1, 4, 12])
def test_sync_task_never_exceeds_max_concurrency_and_reaches_it(limit: int) -> None:
    seen = InFlight()

    def task(input: int) -> str:
        seen.enter()
        time.sleep(0.01)
        seen.leave()
        return str(input)

    results = collect(40, task, ["exact_match"], max_concurrency=limit)
    assert len(results) == 40
    assert seen.peak == limit


def test_async_task_concurrency_is_bounded_too() -> None:
    seen = InFlight()

    async def task(input: int) -> str:
        seen.enter()
        await asyncio.sleep(0.01)
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

    results = {r.row_id: r for r in collect(3, task, ["exact_match"], row_timeout_s=0.2)}
    assert results["r1"].error is not None and "longer than 0.2s" in results["r1"].error
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
