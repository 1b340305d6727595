"""Resume: a run whose eval step is SIGKILLed part-way, re-executed from failure, scores only the rows not yet
checkpointed and produces the report of an uninterrupted run — unsharded, and sharded."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import pytest

from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.engine.checkpoints import CheckpointStore
from dagster_evals.engine.models import DatasetRow, RowResult
from dagster_evals.engine.runner import run_eval_locally
from dagster_evals.engine.scorers import resolve_local_scorers
from tests import sharding_defs
from tests.conftest import dagster_instance
from tests.test_sharding import MULTIPROCESS, ROWS, calls, checks_of, comparable, env, report_of, rows_of

__all__ = ["env"]  # the fixture, used by name

KILL_AT = 90  # of 150 rows: the step dies at 60 %


def checkpointed(url: str) -> int:
    """Row trials checkpointed in the database named on the suite's resource (it holds the eval's state)."""
    store = CheckpointStore(url)
    try:
        with store.engine.connect() as conn:
            return int(
                conn.exec_driver_sql("SELECT count(*) FROM dagster_evals_row_checkpoints").scalar_one()
            )
    finally:
        store.close()


def killed_then_resumed(
    instance: dg.DagsterInstance, env: dict[str, str], monkeypatch
) -> tuple[str, int, int]:
    """Run the job until its task kills the step at call KILL_AT, then re-execute it from failure.

    Returns the re-execution's run id, the row trials checkpointed before it, and its task calls.
    """
    monkeypatch.setenv("SHARD_TEST_KILL_AT", str(KILL_AT))
    with dg.execute_job(
        sharding_defs.reconstructable_job(), instance, run_config=MULTIPROCESS, raise_on_error=False
    ) as first:
        assert not first.success
        first_id = first.run_id
    assert len(calls(env["SHARD_TEST_CALLS"])) >= KILL_AT
    kept = checkpointed(env["SHARD_TEST_DB"])
    Path(env["SHARD_TEST_CALLS"]).unlink()
    monkeypatch.delenv("SHARD_TEST_KILL_AT")
    options = dg.ReexecutionOptions.from_failure(first_id, instance)
    with dg.execute_job(
        sharding_defs.reconstructable_job(),
        instance,
        run_config=MULTIPROCESS,
        reexecution_options=options,
        raise_on_error=False,
    ) as second:
        assert second.success, [e.message for e in second.all_events if e.is_failure]
        assert second.dagster_run.root_run_id == first_id
        return second.run_id, kept, len(calls(env["SHARD_TEST_CALLS"]))


@pytest.mark.parametrize("shards", [1, 2])
def test_a_killed_eval_resumes_where_it_stopped(
    shards: int, env: dict[str, str], instance, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SHARD_TEST_SHARDS", str(shards))
    monkeypatch.setenv("SHARD_TEST_CONCURRENCY", "1")  # the kill lands on exactly one call
    resumed_id, kept, rescored = killed_then_resumed(instance, env, monkeypatch)

    # Only the rows not checkpointed before the kill are scored again (results are written in batches of
    # at most 64, so up to that many scored rows may not have been checkpointed yet).
    assert KILL_AT - 1 - 64 <= kept < KILL_AT if shards == 1 else 0 < kept < ROWS
    assert rescored == ROWS - kept

    # The report equals that of an uninterrupted, unsharded run of the same rows.
    monkeypatch.setenv("SHARD_TEST_SHARDS", "1")
    with dagster_instance(tmp_path / "other_home") as other:
        monkeypatch.setenv("SHARD_TEST_DB", f"sqlite:///{tmp_path / 'uninterrupted.sqlite'}")
        uninterrupted_run = sharding_defs.eval_job().execute_in_process(instance=other).dagster_run
        uninterrupted_platform = LocalPlatform(url=f"sqlite:///{tmp_path / 'uninterrupted.sqlite'}")
        expected = report_of(other, uninterrupted_run.run_id, uninterrupted_platform)
        expected_checks = checks_of(other, uninterrupted_run.run_id)
    platform = LocalPlatform(url=env["SHARD_TEST_DB"])
    resumed = report_of(instance, resumed_id, platform)
    assert comparable(resumed) == comparable(expected)
    assert rows_of(platform, resumed.id) == rows_of(uninterrupted_platform, expected.id)
    assert checks_of(instance, resumed_id) == expected_checks

    # The killed step's report (an unsharded eval's; shards record none) was marked failed by the resumed
    # eval, with the reason; no report is left running.
    statuses = [(r["status"], r["failure"] or "") for r in platform.list_unfinished_reports()]
    if shards == 1:
        [(status, failure)] = statuses
        assert status == "failed" and failure.startswith("abandoned: the process that ran it (pid ")
    else:
        assert statuses == []


def test_the_runner_replays_checkpointed_rows_and_scores_only_the_others(tmp_path: Path) -> None:
    store = CheckpointStore(f"sqlite:///{tmp_path / 'checkpoints.sqlite'}")
    rows = [DatasetRow.build(input=f"r{i}", expected=f"R{i}", id=f"r{i}") for i in range(10)]
    seen: list[str] = []

    def task(input: str) -> str:
        seen.append(input)
        return input.upper()

    first = store.checkpoints("run", flush_every=1)
    results: list[RowResult] = []
    run_eval_locally(
        rows[:4], task, resolve_local_scorers(["exact_match"]), results.append, checkpoints=first
    )
    assert store.count("run") == 4 and first.recorded == 4

    seen.clear()
    replayed: list[RowResult] = []
    second = store.checkpoints("run")
    stats = run_eval_locally(
        rows, task, resolve_local_scorers(["exact_match"]), replayed.append, checkpoints=second
    )
    assert sorted(seen) == [f"r{i}" for i in range(4, 10)]
    assert stats.replayed == 4 and stats.pairs == 10
    assert {r.row_id: r for r in replayed if r.row_id in {"r0", "r1", "r2", "r3"}} == {
        r.row_id: r for r in results
    }
    assert store.count("run") == 10
    assert store.count("another run") == 0


def test_a_row_cancelled_mid_call_is_not_checkpointed(tmp_path: Path) -> None:
    store = CheckpointStore(f"sqlite:///{tmp_path / 'checkpoints.sqlite'}")
    rows = [DatasetRow.build(input=f"r{i}", id=f"r{i}") for i in range(5)]
    cancel, release = threading.Event(), threading.Event()

    def task(input: str) -> str:
        if input == "r2":
            cancel.set()  # the run is cancelled while this call is in flight
            release.wait(30)
        return input

    results: list[RowResult] = []
    try:
        stats = run_eval_locally(
            rows,
            task,
            resolve_local_scorers(["exact_match"]),
            results.append,
            max_concurrency=1,
            cancel=cancel,
            checkpoints=store.checkpoints("run", flush_every=1),
        )
    finally:
        release.set()
    assert stats.cancelled and [r.row_id for r in results] == ["r0", "r1", "r2"]
    assert results[2].error is not None and "cancelled" in results[2].error
    assert sorted(store.read("run", ["r0", "r1", "r2", "r3"])) == [("r0", 0), ("r1", 0)]


def test_the_documented_examples_run() -> None:
    import doctest

    from dagster_evals.engine import checkpoints
    from dagster_evals.sharding import shards

    for module in (checkpoints, shards):
        outcome = doctest.testmod(module)
        assert outcome.attempted > 0 and outcome.failed == 0, module.__name__
