"""Settings that size a run cannot take the host down: the runner starts no more workers than there are
rows to run, and each sizing setting has an upper bound checked before anything runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dagster_evals import ConfigError, DatasetRow, run_eval_locally
from dagster_evals.engine.limits import MAX_CONCURRENCY_LIMIT
from dagster_evals.engine.scorers import resolve_local_scorers


def rows(n: int) -> list[DatasetRow]:
    return [DatasetRow.build(input=str(i), expected=str(i), id=f"r{i}") for i in range(n)]


def test_three_rows_start_three_workers_whatever_max_concurrency_allows() -> None:
    tasks_seen: list[int] = []

    async def task(input: str) -> str:
        tasks_seen.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0.01)
        return input

    results: list[Any] = []
    stats = run_eval_locally(
        rows(3),
        task,
        resolve_local_scorers(["exact_match"]),
        results.append,
        max_concurrency=MAX_CONCURRENCY_LIMIT,
    )
    assert stats.pairs == 3 and [r.scores for r in results] == [{"exact_match": 1.0}] * 3
    assert stats.peak_in_flight == 3
    # The run's own tasks: the main coroutine, the three workers and the bounded calls they await.
    assert max(tasks_seen) < 10, tasks_seen


def test_more_rows_than_workers_all_run_with_at_most_max_concurrency_in_flight() -> None:
    async def task(input: str) -> str:
        await asyncio.sleep(0.001)
        return input

    results: list[Any] = []
    stats = run_eval_locally(
        rows(50),
        task,
        resolve_local_scorers(["exact_match"]),
        results.append,
        max_concurrency=4,
        trial_count=2,
    )
    assert stats.pairs == 100 and len({(r.row_id, r.trial) for r in results}) == 100
    assert stats.peak_in_flight == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrency": 1_000_000}, "max_concurrency must be an integer from 1 to 1000, got 1000000"),
        ({"max_concurrency": -1}, "max_concurrency must be an integer from 1 to 1000, got -1"),
        ({"trial_count": 20_000_000}, "trial_count must be an integer from 1 to 1000, got 20000000"),
        ({"trial_count": True}, "trial_count must be an integer from 1 to 1000, got True"),
    ],
)
def test_run_eval_locally_refuses_a_setting_past_its_bound(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        run_eval_locally(rows(1), str, resolve_local_scorers(["exact_match"]), print, **options)
