"""The eval suite on a real Dask cluster with dagster-dask: a `dask scheduler` and two `dask worker`
processes (each with its own environment, `DAGSTER_HOME` and working directory), a dagster-postgres
instance that the run and every worker read and write, and the eval database in PostgreSQL
(`DAGSTER_EVALS_DATABASE_URL`). Nothing is shared through a disk: the IO manager fails any step that
would hand a value through it.

Covers: a sharded eval on Dask equals the unsharded one row by row; a failing blocking gate blocks the
guarded release on Dask (where `blocking=True` alone does not: dagster-dask runs the dependents of a
failed step); a worker killed mid-shard is retried by Dask and re-scores only the rows not yet
checkpointed; dagster-dask's re-execution from failure fails before starting a step, and re-executing from
failure with the in-process executor resumes from the checkpoints instead.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

pytest.importorskip("dagster_dask")
pytest.importorskip("dagster_postgres")

from dagster_evals.backends.local.platform import LocalPlatform
from tests import dask_defs, sharding_defs
from tests.conftest import qa_rows, write_jsonl
from tests.pg_server import PostgresServer
from tests.test_sharding import calls, checks_of, comparable, report_of, rows_of

# A deployment proof (`pytest -m deployment`), on one cluster for the module: its tests run on one xdist worker.
pytestmark = [pytest.mark.deployment, pytest.mark.xdist_group("dask_cluster")]

DASK = Path(sys.executable).parent / "dask"
REPO = Path(__file__).resolve().parent.parent
WORKERS = 2
STARTUP_TIMEOUT_S = 90
# The dagster.yaml of docs/scaling-out.md's "Scaling out on a cluster": run and event storage in PostgreSQL, no
# compute log files (a worker's disk is its own).
DAGSTER_YAML = """\
storage:
  postgres:
    postgres_url: "{url}"
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""
ROWS = 90


def dagster_postgres_url(server: PostgresServer, database: str) -> str:
    """A dagster-postgres URL for `database`, plain `postgresql://` as Dagster's deployment docs write it."""
    return f"postgresql://postgres@127.0.0.1:{server.port}/{database}"


class DaskCluster:
    """`dask scheduler` + `dask worker` processes on 127.0.0.1, each in its own process group, directory
    and environment; `stop()` ends exactly these processes."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []
        self.address = ""
        self.worker_dirs = [root / f"worker-{i}" for i in range(1, WORKERS + 1)]

    def _spawn(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{name}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [str(DASK), *args],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start(self) -> None:
        scheduler_file = self.root / "scheduler.json"
        scheduler_env = {
            **self.env,
            # A step whose worker dies is run again once; a second death fails it (KilledWorker).
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
        }
        self._spawn(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            scheduler_env,
            self.root / "scheduler",
        )
        for directory in self.worker_dirs:
            home = directory / "dagster_home"
            home.mkdir(parents=True)
            worker_env = {**self.env, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
            self._spawn(
                directory.name,
                [
                    "worker",
                    "--scheduler-file", str(scheduler_file),
                    "--name", directory.name,
                    "--nworkers", "1",
                    "--nthreads", "1",
                    "--no-dashboard",
                    "--local-directory", str(directory / "dask"),
                    "--death-timeout", "60",
                    # The code location, imported before the worker joins (and again when it is
                    # restarted after a kill), as a worker image with the code installed would.
                    "--preload", "tests.dask_defs",
                    "--preload", "dagster_postgres",
                ],
                worker_env,
                directory / "cwd",
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not scheduler_file.exists():
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise RuntimeError(f"dask scheduler did not start:\n{self.logs()}")
            time.sleep(0.2)
        self.address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(WORKERS, timeout=max(1.0, deadline - time.monotonic()))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        """Kill every process of the cluster (each in its own process group: a nanny with its worker)."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def deployment(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The cluster, the Dagster instance (dagster-postgres) and the eval database, for the module."""
    root = tmp_path_factory.mktemp("dask")
    instance_db = postgres_server.create_database().rsplit("/", 1)[1]
    evals_url = postgres_server.create_database()
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        DAGSTER_YAML.format(url=dagster_postgres_url(postgres_server, instance_db))
    )
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SHARD_TEST_", "DAGSTER_", "PYTEST_")) and key != "DAGSTER_EVALS_DATABASE_URL"
    }
    cluster = DaskCluster(
        root, {**base_env, "DAGSTER_EVALS_DATABASE_URL": evals_url, "DAGSTER_DISABLE_TELEMETRY": "1"}
    )
    try:
        cluster.start()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield {"cluster": cluster, "instance": instance, "evals_url": evals_url, "home": home}
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


@pytest.fixture
def env(deployment: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "SHARD_TEST_SOURCE": str(write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS))),
        "SHARD_TEST_DB": deployment["evals_url"],
        "DAGSTER_EVALS_DATABASE_URL": deployment["evals_url"],
        "SHARD_TEST_CALLS": str(tmp_path / "calls.txt"),
        "SHARD_TEST_EXECUTOR": "dask",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def dask_run_config(deployment: dict[str, Any]) -> dict[str, Any]:
    return {"execution": {"config": {"cluster": {"existing": {"address": deployment["cluster"].address}}}}}


IN_PROCESS_RUN_CONFIG: dict[str, Any] = {}


def launch(
    deployment: dict[str, Any], run_config: dict[str, Any], **options: Any
) -> tuple[dg.DagsterRun, list[dg.DagsterEvent]]:
    with dg.execute_job(
        dask_defs.reconstructable_release_job(),
        deployment["instance"],
        run_config=run_config,
        raise_on_error=False,
        **options,
    ) as result:
        return result.dagster_run, list(result.all_events)


def materialized(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {
        e.dagster_event.asset_key.to_user_string()
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.dagster_event is not None and e.dagster_event.asset_key is not None
    }


def step_starts(instance: dg.DagsterInstance, run_id: str) -> Counter[str]:
    return Counter(str(e.step_key) for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START))


def gate_refusal(instance: dg.DagsterInstance, run_id: str) -> str:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is not None and event.step_key == "release_approved":
            data = event.step_failure_data
            assert data is not None and data.user_failure_data is not None
            return str(data.user_failure_data.description)
    raise AssertionError("release_approved did not fail")


def test_a_sharded_eval_on_dask_equals_the_unsharded_one_row_by_row(
    deployment: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = deployment["instance"]
    platform = LocalPlatform(url=env["SHARD_TEST_DB"])
    unsharded = sharding_defs.eval_job().execute_in_process(instance=instance)
    Path(env["SHARD_TEST_CALLS"]).unlink()

    monkeypatch.setenv("SHARD_TEST_SHARDS", "3")
    run, events = launch(deployment, dask_run_config(deployment))
    assert run.status == dg.DagsterRunStatus.SUCCESS, [e.message for e in events if e.is_failure]

    sharded_report = report_of(instance, run.run_id, platform)
    unsharded_report = report_of(instance, unsharded.run_id, platform)
    assert comparable(sharded_report) == comparable(unsharded_report)
    assert rows_of(platform, sharded_report.id) == rows_of(platform, unsharded_report.id)
    assert len(rows_of(platform, sharded_report.id)) == ROWS
    assert checks_of(instance, run.run_id) == checks_of(instance, unsharded.run_id)
    assert materialized(instance, run.run_id) >= {"evals/sharded/eval_report", "release_approved"}

    # Every row was scored once, in the workers' processes and directories, never in this one.
    made = calls(env["SHARD_TEST_CALLS"])
    assert sorted(c[2] for c in made) == sorted(f"q{i}" for i in range(ROWS))
    worker_cwds = {str(d / "cwd") for d in deployment["cluster"].worker_dirs}
    assert {c[1] for c in made} <= worker_cwds
    assert str(os.getpid()) not in {c[0] for c in made}
    assert sum(1 for step in step_starts(instance, run.run_id) if ".shard_" in step) == 3
    # State went through PostgreSQL: no worker wrote a database file of its own.
    assert not [p for d in deployment["cluster"].worker_dirs for p in d.rglob("*.sqlite*")]


def test_a_failing_gate_blocks_the_guarded_release_on_dask(
    deployment: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = deployment["instance"]
    monkeypatch.setenv("SHARD_TEST_SHARDS", "2")
    monkeypatch.setenv("SHARD_TEST_WRONG_EVERY", "1")  # every answer wrong: exact_match 0 < 0.5
    run, _ = launch(deployment, dask_run_config(deployment))
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert checks_of(instance, run.run_id)["threshold_exact_match"][0] is False

    done = materialized(instance, run.run_id)
    assert "evals/sharded/eval_report" in done
    # dagster-dask runs the dependents of the failed combine step: `blocking=True` alone lets this through.
    assert "unguarded_release" in done
    # The guarded release reads the gate from the instance and refuses.
    assert "release_approved" not in done
    refusal = gate_refusal(instance, run.run_id)
    assert refusal.startswith(
        "release_approved refused to materialize: the blocking checks of eval report evals/sharded/eval_report "
        f"did not pass in run {run.run_id}: threshold_exact_match FAILED: exact_match mean 0 is below the "
        "threshold 0.5"
    ), refusal


def test_a_worker_killed_mid_shard_is_retried_and_rescores_only_unsaved_rows(
    deployment: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = deployment["instance"]
    monkeypatch.setenv("SHARD_TEST_SHARDS", "3")
    monkeypatch.setenv("SHARD_TEST_CONCURRENCY", "1")
    monkeypatch.setenv("SHARD_TEST_DELAY_S", "0.1")  # 10 rows/s per shard: checkpoints flush every 1 s
    monkeypatch.setenv("SHARD_TEST_KILL_AT", "40")  # two shards run at once: each about 20 rows in
    run, events = launch(deployment, dask_run_config(deployment))
    assert run.status == dg.DagsterRunStatus.SUCCESS, [e.message for e in events if e.is_failure]

    made = Counter(c[2] for c in calls(env["SHARD_TEST_CALLS"]))
    assert set(made) == {f"q{i}" for i in range(ROWS)}
    rescored = sum(n - 1 for n in made.values())
    # Only the killed shard's rows scored since its last checkpoint flush (≤ 1 s, 10 rows) ran again.
    assert 1 <= rescored <= 12, rescored
    starts = step_starts(instance, run.run_id)
    assert sorted(n for step, n in starts.items() if ".shard_" in step) == [1, 1, 2]  # Dask re-ran one
    platform = LocalPlatform(url=env["SHARD_TEST_DB"])
    report = report_of(instance, run.run_id, platform)
    assert (report.rows_scored, report.rows_errored) == (ROWS, 0)
    assert len(rows_of(platform, report.id)) == ROWS
    assert "release_approved" in materialized(instance, run.run_id)


def test_reexecution_from_failure_on_dask_fails_and_the_in_process_executor_resumes(
    deployment: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = deployment["instance"]
    monkeypatch.setenv("SHARD_TEST_CONCURRENCY", "1")
    monkeypatch.setenv("SHARD_TEST_DELAY_S", "0.05")
    monkeypatch.setenv("SHARD_TEST_KILLS_AT", "45,46")  # the eval step dies, Dask retries it, it dies again
    failed, _ = launch(deployment, dask_run_config(deployment))
    assert failed.status == dg.DagsterRunStatus.FAILURE
    first_calls = len(calls(env["SHARD_TEST_CALLS"]))
    assert first_calls == 46
    monkeypatch.delenv("SHARD_TEST_KILLS_AT")
    Path(env["SHARD_TEST_CALLS"]).unlink()

    # dagster-dask cannot re-execute from failure: it fails before starting any step.
    on_dask, events = launch(
        deployment,
        dask_run_config(deployment),
        reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, instance),
    )
    assert on_dask.status == dg.DagsterRunStatus.FAILURE
    assert not step_starts(instance, on_dask.run_id)
    assert any("KeyError" in (e.message or "") for e in events if e.is_failure) or any(
        "KeyError" in str(e.event_specific_data) for e in events
    )

    # The working alternative: re-execute the failed run from failure with the in-process executor (same
    # instance, same eval database): the rows the killed attempts checkpointed are not scored again.
    monkeypatch.setenv("SHARD_TEST_EXECUTOR", "in_process")
    resumed, events = launch(
        deployment,
        IN_PROCESS_RUN_CONFIG,
        reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, instance),
    )
    assert resumed.status == dg.DagsterRunStatus.SUCCESS, [e.message for e in events if e.is_failure]
    assert resumed.root_run_id == failed.run_id
    rescored = len(calls(env["SHARD_TEST_CALLS"]))
    # The first attempt scored 44 rows before it died; at most 1 s of them (20 rows) was not checkpointed.
    assert ROWS - 46 < rescored <= ROWS - 44 + 20, rescored
    platform = LocalPlatform(url=env["SHARD_TEST_DB"])
    report = report_of(instance, resumed.run_id, platform)
    assert (report.rows_scored, report.rows_errored) == (ROWS, 0)
    assert "release_approved" in materialized(instance, resumed.run_id)
