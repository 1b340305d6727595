"""Results and checkpoints are written on a background thread, a batch at a time; a batch that cannot be
written still fails the eval loudly, with the database's error, and nothing is reported as scored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.engine.checkpoints import CheckpointStore
from dagster_evals.engine.models import DatasetRow, EvalRequest
from dagster_evals.engine.runner import run_eval_locally
from dagster_evals.engine.scorers import resolve_local_scorers

ROWS = [DatasetRow.build(input=f"r{i}", expected=f"R{i}", id=f"r{i:03d}") for i in range(40)]


def dropping_task(path: Path, table: str, at_call: int):
    """A task that, on call `at_call`, drops `table` from the SQLite file at `path` (as an operator
    deleting it by hand would), so every later write to it fails."""
    calls = [0]

    def task(input: str) -> str:
        calls[0] += 1
        if calls[0] == at_call:
            with sqlite3.connect(path) as conn:
                conn.execute(f"DROP TABLE {table}")
        return input.upper()

    return task


def test_a_checkpoint_batch_that_cannot_be_written_fails_the_run(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = CheckpointStore(f"sqlite:///{path}")
    checkpoints = store.checkpoints("run", flush_every=4)
    results = []
    with pytest.raises(OperationalError, match="dagster_evals_row_checkpoints"):
        run_eval_locally(
            ROWS,
            dropping_task(path, "dagster_evals_row_checkpoints", at_call=10),
            resolve_local_scorers(["exact_match"]),
            results.append,
            max_concurrency=1,
            checkpoints=checkpoints,
        )
    # The run stopped soon after the failed write, not at the end of the rows.
    assert 8 <= len(results) < len(ROWS)
    store.close()


def test_checkpoints_recorded_before_a_flush_are_all_written_by_it(tmp_path: Path) -> None:
    store = CheckpointStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    checkpoints = store.checkpoints("run", flush_every=3)
    results = []
    run_eval_locally(
        ROWS, str.upper, resolve_local_scorers(["exact_match"]), results.append, checkpoints=checkpoints
    )
    # `run_eval_locally` flushes at the end: every result is in the database once it returns.
    assert store.count("run") == checkpoints.recorded == len(ROWS)
    replayed = store.read("run", [row.id for row in ROWS])
    assert {key: r.scores for key, r in replayed.items()} == {(r.row_id, 0): r.scores for r in results}
    store.close()


def test_a_report_batch_that_cannot_be_written_fails_the_eval_and_its_report(tmp_path: Path) -> None:
    path = tmp_path / "evals.sqlite"
    platform = LocalPlatform(path, batch_size=4)
    dataset = platform.ensure_dataset("writes")
    platform.upsert_rows(dataset, ROWS)
    request = EvalRequest(
        name="writes",
        snapshot=platform.snapshot(dataset),
        task=dropping_task(path, "experiment_rows", at_call=10),
        scorers=["exact_match"],
        max_concurrency=1,
    )
    with pytest.raises(OperationalError, match="experiment_rows"):
        platform.run_eval(request)
    [unfinished] = platform.list_unfinished_reports()
    assert unfinished["status"] == "failed"
    assert "OperationalError" in unfinished["failure"] and "experiment_rows" in unfinished["failure"]
    assert platform.list_eval_reports() == []
    platform.close()
