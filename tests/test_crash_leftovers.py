"""What a crash of the database server leaves behind, on PostgreSQL (`pg_ctl stop -m immediate` mid-run):

- a server that comes back within the retry window costs the eval a pause, not a failure;
- an eval that fails with the server gone leaves its report `running`; the next eval of the suite marks it
  failed with the reason, and the CLI shows it;
- a sync that fails with the server gone leaves staged rows; the next sync of the dataset removes them,
  never those of a sync still running (in this process or another one).

Every rerun holds exactly the source's rows, and nothing is left behind."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from dagster_evals import EvalSuite, LocalEvalResource, LocalPlatform, build_eval_suite_definitions
from dagster_evals.cli import main as cli
from dagster_evals.engine.embedded_db import RETRY_ENV
from tests.conftest import materialization, materialize_suite, qa_rows, write_jsonl
from tests.pg_server import PostgresServer, private_postgres

__all__ = ["private_postgres"]  # a fixture, used by name

ROWS = 40
CRASH_AT_CALL = 15


class CrashingTask:
    """`a + b`; on call `at` it crashes the database server (and restarts it `restart_after_s` later)."""

    def __init__(self, server: PostgresServer, at: int, restart_after_s: float | None) -> None:
        self.server, self.at, self.restart_after_s = server, at, restart_after_s
        self.calls = 0
        self.lock = threading.Lock()
        self.restarted: threading.Thread | None = None

    def __call__(self, input: dict[str, Any]) -> str:
        with self.lock:
            self.calls += 1
            if self.calls == self.at:
                self.server.crash()
                if self.restart_after_s is not None:
                    self.restarted = threading.Thread(target=self._restart_later)
                    self.restarted.start()
        return str(input["a"] + input["b"])

    def _restart_later(self) -> None:
        time.sleep(self.restart_after_s or 0)
        self.server.restart()


def suite_with(source: Path, task: Any) -> EvalSuite:
    return EvalSuite(
        name="arith",
        source=source,
        key_field="id",
        task=task,
        scorers=["exact_match"],
        baseline=None,
        max_concurrency=2,
    )


def reports(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT e.id, e.status, e.failure, count(r.row_id) AS rows FROM experiments e "
                    "LEFT JOIN experiment_rows r ON r.experiment_id = e.id "
                    "GROUP BY e.id, e.status, e.failure, e.created_at ORDER BY e.created_at"
                )
            )
            return [dict(r._mapping) for r in found]
    finally:
        engine.dispose()


def count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_a_server_back_within_the_retry_window_costs_the_eval_a_pause_not_a_failure(
    tmp_path: Path, instance: dg.DagsterInstance, private_postgres: PostgresServer
) -> None:
    url = private_postgres.create_database()
    task = CrashingTask(private_postgres, CRASH_AT_CALL, restart_after_s=1.0)
    suite = suite_with(write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS)), task)
    result = materialize_suite(suite, instance, LocalEvalResource(url=url), raise_on_error=False)
    assert task.restarted is not None
    task.restarted.join()
    assert result.success
    assert materialization(result, suite.eval_report_key)["rows_scored"] == ROWS
    assert [(r["status"], r["rows"]) for r in reports(url)] == [("completed", ROWS)]
    assert count(url, "dagster_evals_row_checkpoints") == ROWS


@pytest.mark.parametrize("ran_on", ["this process", "another host"])
def test_an_eval_killed_by_a_database_crash_is_marked_failed_by_the_next_eval(
    ran_on: str,
    tmp_path: Path,
    instance: dg.DagsterInstance,
    private_postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = private_postgres.create_database()
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS))
    monkeypatch.setenv(RETRY_ENV, "0")  # the server stays down: fail at once
    crashed = materialize_suite(
        suite_with(source, CrashingTask(private_postgres, CRASH_AT_CALL, restart_after_s=None)),
        instance,
        LocalEvalResource(url=url),
        raise_on_error=False,
    )
    assert not crashed.success
    private_postgres.restart()
    [left] = reports(url)
    assert left["status"] == "running" and left["rows"] < ROWS  # what the crash left behind
    expected = "abandoned: its step failed in process"
    if ran_on == "another host":  # its process cannot be looked at, its heartbeat is fresh: the run tells
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE experiments SET owner = 'worker-7|pid:[1]|4242|99'"))
        engine.dispose()
        expected = (
            f"abandoned: its Dagster run {crashed.run_id} ended (FAILURE) before the report was complete"
        )

    monkeypatch.delenv(RETRY_ENV)
    suite = suite_with(source, CrashingTask(private_postgres, at=0, restart_after_s=None))
    rerun = materialize_suite(suite, instance, LocalEvalResource(url=url), selection=[suite.eval_report_key])
    assert materialization(rerun, suite.eval_report_key)["rows_scored"] == ROWS
    abandoned, done = reports(url)
    assert (abandoned["id"], abandoned["status"]) == (left["id"], "failed")
    assert abandoned["failure"].startswith(expected)
    assert (done["status"], done["rows"]) == ("completed", ROWS)

    assert cli(["report", "--url", url]) == 0
    shown = capsys.readouterr().out
    assert f"report {left['id']} (arith-" in shown and f"is failed: {expected}" in shown


# -- syncs --------------------------------------------------------------------------------------------
class CrashAt(logging.Handler):
    """Crashes the database server at the sync's progress message naming `marker`."""

    def __init__(self, server: PostgresServer, marker: str) -> None:
        super().__init__()
        self.server, self.marker, self.fired = server, marker, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and self.marker in record.getMessage():
            self.fired = True
            self.server.crash()


CRASH_HANDLER: list[CrashAt] = []


@dg.logger
def crash_mid_sync(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("crash_mid_sync")
    log.setLevel(logging.INFO)
    for handler in CRASH_HANDLER:
        log.addHandler(handler)
    return log


def sync_job(source: Path, url: str) -> dg.JobDefinition:
    suite = suite_with(source, lambda input: str(input["a"] + input["b"]))
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(
            resources={"evals": LocalEvalResource(url=url, batch_size=5)},
            loggers={"crash_mid_sync": crash_mid_sync},
        ),
    )
    return defs.resolve_job_def(suite.job_name)


@pytest.fixture
def progress_every_batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DAGSTER_EVALS_PROGRESS_INTERVAL_S", "0")
    yield
    CRASH_HANDLER.clear()


def test_a_sync_killed_by_a_database_crash_leaves_no_staged_rows_after_the_next_sync(
    tmp_path: Path,
    instance: dg.DagsterInstance,
    private_postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    progress_every_batch: None,
) -> None:
    url = private_postgres.create_database()
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS))
    dataset = [dg.AssetKey(["evals", "arith", "dataset"])]
    monkeypatch.setenv(RETRY_ENV, "0")
    CRASH_HANDLER.append(CrashAt(private_postgres, f" 20/{ROWS} rows"))
    crashed = sync_job(source, url).execute_in_process(
        instance=instance,
        run_config={"loggers": {"crash_mid_sync": {}}},
        asset_selection=dataset,
        raise_on_error=False,
    )
    assert CRASH_HANDLER[0].fired and not crashed.success
    private_postgres.restart()
    assert count(url, "staged_rows") >= 20 and count(url, "dataset_rows") == 0  # what the crash left

    monkeypatch.delenv(RETRY_ENV)
    rerun = sync_job(source, url).execute_in_process(instance=instance, asset_selection=dataset)
    assert materialization(rerun, dataset[0])["rows_total"] == ROWS
    assert count(url, "staged_rows") == 0 and count(url, "dataset_stages") == 0
    platform = LocalPlatform(url=url)
    try:
        ds = platform.ensure_dataset("arith")
        assert sorted(r.id for r in platform.iter_rows(ds)) == sorted(f"q{i}" for i in range(ROWS))
    finally:
        platform.close()


HOLD_A_STAGE = """
import sys, time
from dagster_evals import LocalPlatform
from dagster_evals.engine.models import DatasetRow

platform = LocalPlatform(url=sys.argv[1])
stage = platform.staged_sync(platform.ensure_dataset("held"))
stage.upsert_rows([DatasetRow.build(input=i, id=f"other-{i}") for i in range(3)])
print("staged", flush=True)
time.sleep(600)
"""


def test_a_sync_never_removes_the_stage_of_a_sync_still_running(tmp_path: Path, postgres_url: str) -> None:
    from dagster_evals.engine.models import DatasetRow

    platform = LocalPlatform(url=postgres_url)
    ds = platform.ensure_dataset("held")
    mine = platform.staged_sync(ds)  # a sync of this process, still running
    mine.upsert_rows([DatasetRow.build(input="mine", id="mine")])
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_STAGE, postgres_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "staged"
        platform.upsert_rows(ds, [DatasetRow.build(input="x", id="x")])  # a third sync, published
        assert count(postgres_url, "staged_rows") == 4  # both running syncs keep their stages
    finally:
        other.kill()
        other.wait()
    platform.upsert_rows(ds, [DatasetRow.build(input="y", id="y")])  # the other process is gone now
    assert count(postgres_url, "staged_rows") == 1  # only this process's running sync is left
    mine.publish()
    assert count(postgres_url, "staged_rows") == 0
    assert sorted(r.id for r in platform.iter_rows(ds)) == ["mine", "x", "y"]
    platform.close()
    assert os.environ.get(RETRY_ENV) is None


def test_a_stage_from_another_host_is_removed_only_once_its_heartbeat_is_stale(postgres_url: str) -> None:
    from datetime import timedelta

    from dagster_evals.backends.local.leases import OWNER_LOST_AFTER
    from dagster_evals.engine.models import DatasetRow, utcnow

    platform = LocalPlatform(url=postgres_url)
    ds = platform.ensure_dataset("elsewhere")
    now = utcnow()
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for stage, beat in (("fresh", now), ("stale", now - OWNER_LOST_AFTER - timedelta(seconds=1))):
            conn.execute(
                sa.text(
                    "INSERT INTO dataset_stages (id, dataset_id, created_at, owner, heartbeat_at) "
                    "VALUES (:id, :ds, :at, 'worker-7|pid:[1]|4242|99', :beat)"
                ),
                {"id": stage, "ds": ds.id, "at": beat.isoformat(), "beat": beat.isoformat()},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO staged_rows (stage_id, row_id, removed, content_hash, input, metadata, tags) "
                    "VALUES (:id, 'r', false, 'h', '1', '{}', '[]')"
                ),
                {"id": stage},
            )
    platform.upsert_rows(ds, [DatasetRow.build(input="x", id="x")])
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT stage_id FROM staged_rows ORDER BY stage_id")).scalars().all()
    engine.dispose()
    platform.close()
    assert left == ["fresh"]  # a writer on another host that still beats keeps its stage
