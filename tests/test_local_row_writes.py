"""A local eval whose checkpoints live in its own database writes each checkpoint with its result row (one
encoding, one transaction), and a re-run replays them exactly as if the checkpoints had written themselves;
checkpoints kept elsewhere still write themselves. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from dagster_evals.backends.local.datasets import FIRST_PAGE_SIZE, PAGE_SIZE
from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.backends.local.row_writes import (
    SQLITE_ROWS_PER_STATEMENT,
    checkpoint_values,
    row_values,
    same_database,
)
from dagster_evals.backends.local.store import experiment_rows
from dagster_evals.engine.checkpoints import CheckpointStore
from dagster_evals.engine.models import DatasetRow, EvalRequest, RowResult

# More rows than two multi-row INSERT statements hold on SQLite (80 rows each), not a multiple of them.
ROWS = [
    DatasetRow.build(input=f"row {i} ✓", expected=f"ROW {i} ✓", id=f"r{i:03d}")
    for i in range(2 * SQLITE_ROWS_PER_STATEMENT + 13)
]


def counting_task(calls: list[str]):
    def task(input: str) -> str:
        calls.append(input)
        return input.upper()

    return task


def evaluate(platform: LocalPlatform, store: CheckpointStore, key: str, task) -> tuple[EvalRequest, object]:
    dataset = platform.ensure_dataset("row-writes")
    platform.upsert_rows(dataset, ROWS)
    checkpoints = store.checkpoints(key)
    request = EvalRequest(
        name="row-writes",
        snapshot=platform.snapshot(dataset),
        task=task,
        scorers=["exact_match", "levenshtein"],
        max_concurrency=4,
        checkpoints=checkpoints,
    )
    return request, checkpoints


def test_checkpoints_in_the_eval_database_are_written_with_the_rows_and_replayed(database_url: str) -> None:
    platform = LocalPlatform(database_url)
    store = CheckpointStore(database_url)
    calls: list[str] = []
    request, checkpoints = evaluate(platform, store, "run-1", counting_task(calls))
    first = platform.run_eval(request)
    assert len(calls) == len(ROWS)
    assert store.count("run-1") == checkpoints.recorded == len(ROWS)
    stored = {r.row_id: r for r in platform.iter_report_rows(first.id)}
    replayed = store.read("run-1", stored)
    # The checkpoint holds exactly the result the report stored.
    assert {key[0]: r for key, r in replayed.items()} == stored

    # A re-executed run replays every row: the task is not called again, the report is the same.
    calls.clear()
    request, again = evaluate(platform, store, "run-1", counting_task(calls))
    second = platform.run_eval(request)
    assert calls == [] and again.replayed == len(ROWS) and again.recorded == 0
    assert second.scores == first.scores and second.rows_scored == len(ROWS)
    assert {r.row_id: r for r in platform.iter_report_rows(second.id)} == stored
    store.close()
    platform.close()


def test_checkpoints_in_another_database_still_write_themselves(tmp_path: Path) -> None:
    platform = LocalPlatform(tmp_path / "evals.sqlite")
    store = CheckpointStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    request, checkpoints = evaluate(platform, store, "run-2", counting_task([]))
    platform.run_eval(request)
    assert store.count("run-2") == checkpoints.recorded == len(ROWS)
    with platform.engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
    assert "dagster_evals_row_checkpoints" not in tables  # nothing written to the eval database
    store.close()
    platform.close()


def test_a_checkpoint_put_together_from_the_row_reads_back_as_the_result() -> None:
    result = RowResult(
        row_id='row "1" ✓',
        trial=2,
        input={"question": "naïve?", "n": [1, 2.5, None]},
        expected=None,
        output="Ünïcode \n output",
        scores={"exact_match": 0.0, "judge": None},
        scorer_errors={"levenshtein": "TimeoutError: slow"},
        reasons={"judge": "no answer"},
        error="ValueError: bad",
        latency_s=0.125,
        metadata={"source": "file.jsonl", "line": 3},
        usage={"task": {"tokens": 12, "cost_usd": 0.0001}},
    )
    values = checkpoint_values("key", result, row_values("experiment", result), "2026-12-07T00:00:00+00:00")
    assert RowResult.model_validate_json(values["result"]) == result
    bare = RowResult(row_id="r", output=["a"], scores={"exact_match": 1.0})
    values = checkpoint_values("key", bare, row_values("experiment", bare), "now")
    assert RowResult.model_validate_json(values["result"]) == bare


def test_same_database_compares_files_and_servers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    here = make_url(f"sqlite:///{tmp_path / 'evals.sqlite'}")
    assert same_database(here, "sqlite:///evals.sqlite")  # a relative path to the same file
    assert not same_database(here, f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert not same_database(make_url("sqlite://"), "sqlite://")  # each in-memory database is its own
    server = make_url("postgresql+psycopg://evals:secret@db:5432/evals")
    assert same_database(server, "postgresql://evals:secret@db/evals")
    assert not same_database(server, "postgresql://evals:secret@db/other")
    assert not same_database(server, f"sqlite:///{tmp_path / 'evals.sqlite'}")


def test_an_eval_reads_every_row_once_across_its_growing_pages(database_url: str) -> None:
    platform = LocalPlatform(database_url)
    dataset = platform.ensure_dataset("pages")
    # Pages of 100, 200, 400, 800, then 1,000 rows: counts that end a page exactly, and one row past it.
    for count in (
        FIRST_PAGE_SIZE,
        3 * FIRST_PAGE_SIZE,
        3 * FIRST_PAGE_SIZE + 1,
        15 * FIRST_PAGE_SIZE + PAGE_SIZE + 7,
    ):
        rows = [DatasetRow.build(input=f"row {i}", id=f"p{i:05d}") for i in range(count)]
        platform.upsert_rows(dataset, rows)
        snapshot = platform.snapshot(dataset)
        read = [row.id for row in platform.iter_rows(dataset, version=snapshot.version)]
        assert read == [row.id for row in rows]
        assert [row.id for row in platform.iter_run_rows(dataset, version=snapshot.version)] == read
    platform.close()


def test_a_burst_of_results_is_stored_within_the_flush_interval_while_the_next_rows_still_run(
    database_url: str,
) -> None:
    """Rows scored together are all stored (with their checkpoints) within `flush_interval_s`, though no
    further result comes to hand them over: a run killed while its next rows wait on the model loses none."""
    platform = LocalPlatform(database_url)
    store = CheckpointStore(database_url)
    dataset = platform.ensure_dataset("bursts")
    # The first burst is larger than `flush_every` but not a multiple of it: 64 are due at once, 36 by age.
    quick, slow = 100, 10
    rows = [DatasetRow.build(input=f"row {i}", id=f"b{i:03d}") for i in range(quick + slow)]
    platform.upsert_rows(dataset, rows)
    release = threading.Event()

    def task(input: str) -> str:
        if int(input.split()[1]) >= quick:
            assert release.wait(30)
        return input.upper()

    checkpoints = store.checkpoints("bursts", flush_every=64, flush_interval_s=0.2)
    request = EvalRequest(
        name="bursts",
        snapshot=platform.snapshot(dataset),
        task=task,
        scorers=["exact_match"],
        max_concurrency=quick + slow,
        checkpoints=checkpoints,
    )
    reports = []
    runner = threading.Thread(target=lambda: reports.append(platform.run_eval(request)))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while store.count("bursts") < quick and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.count("bursts") == quick  # every quick row, and none of the rows still waiting
        with platform.engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(experiment_rows)).scalar()
        assert stored == quick
    finally:
        release.set()
        runner.join(30)
    assert reports and reports[0].rows_scored == quick + slow
    assert store.count("bursts") == quick + slow
    store.close()
    platform.close()
