"""Run DAG runs of the example DAG file with `dag.test()` in this process, and print what happened.

Used by tests/test_airflow.py in a subprocess whose environment holds `AIRFLOW_HOME` (a temporary
directory with a migrated SQLite metadata database) and the connections:

    python tests/airflow_dag_runs.py '[{"dag_id": "support_bot_evals", "env": {...}}, ...]'

Each run, in order:
- push its `push_prompts` (`[slug, content]` pairs) to the embedded backend (`$DAGSTER_EVALS_DATABASE_URL`),
  and its `push_prompts_when_deferred` half a second after a deferred task's trigger starts (Airflow logs
  "running trigger in line"), while the trigger waits;
- add its `git_tags` to `$SUPPORT_BOT_RELEASE_REPO`, set its `env`, (re)load the DAG file (`dag_file`);
- `dag.test()` at the logical date `day` days after the first (default: the run's place in the plan), or with
  `retry_after_worker_died` carry on the open run of that date whose worker died, as the scheduler would;
- print one line
`RUN {"dag_id", "state", "tasks": {task_id[map_index]: state}, "xcom": {task_id[map_index]: value},
"assets": [[task_id, asset uri], ...], "variables": {key: value},
"triggers": [[classpath, kwargs], ...]}` (the triggers of deferred tasks as Airflow stored them).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DAG_FILE = Path(__file__).resolve().parent.parent / "example" / "airflow" / "support_bot_dags.py"


def load_dags(path: Path = DAG_FILE) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_key(ti: Any) -> str:
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"


def xcoms(dag_id: str, run_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value")
            .all()
        )
        return {
            (
                row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]"
            ): XComModel.deserialize_value(row)
            for row in rows
        }


def asset_events(dag_id: str, run_id: str) -> list[list[str]]:
    """`[task id, asset uri]` of each asset event the run emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent.source_task_id, AssetModel.uri)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
            .all()
        )
        return sorted([str(task), str(uri)] for task, uri in rows)


def variables() -> dict[str, str]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return {str(v.key): str(v.val) for v in session.query(Variable).all()}


def stored_triggers(dag_id: str, run_id: str) -> list[list[Any]]:
    """`[classpath, kwargs]` of each trigger a task of the run deferred to, as Airflow's metadata database holds
    it (kwargs decrypted with the installation's Fernet key, as the triggerer reads them)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(Trigger)
            .join(TaskInstance, TaskInstance.trigger_id == Trigger.id)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .all()
        )
        return [[row.classpath, row.kwargs] for row in rows]


def push_prompts(prompts: list[list[Any]], delay_s: float = 0.0) -> None:
    from dagster_evals.backends.local.platform import LocalPlatform

    time.sleep(delay_s)
    platform = LocalPlatform(url=os.environ["DAGSTER_EVALS_DATABASE_URL"])
    for slug, content in prompts:
        platform.push_prompt_version(slug, content)
    platform.close()


class PushWhenDeferred(logging.Handler):
    """Pushes prompt versions from a thread once `dag.test()` starts running a deferred task's trigger."""

    def __init__(self, prompts: list[list[Any]]) -> None:
        super().__init__()
        self.prompts = prompts
        self.pusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.pusher is None and "running trigger in line" in record.getMessage():
            self.pusher = threading.Thread(target=push_prompts, args=(self.prompts, 0.5), daemon=True)
            self.pusher.start()


def retry_after_worker_died(dag: Any, logical_date: datetime) -> Any:
    """Carry on the open DAG run of `logical_date` whose worker died mid-task, the way the scheduler does.

    First what the scheduler does for a task instance without heartbeat: the executor reports it failed and
    `process_executor_events` calls `ti.handle_failure`, which sets it `up_for_retry` while it has retries
    left (airflow-core 3.3, `SchedulerJobRunner`). Then `DAG.test`'s own scheduling loop over that same run
    (`dag.test()` itself always starts a new run): task instances ready to run get the next try number and
    run in this process.
    """
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization, create_scheduler_operator
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    with create_session() as session:
        run = (
            session.query(DagRun)
            .filter(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical_date)
            .one()
        )
        run.dag = scheduler_dag
        for ti in run.get_task_instances(state=[TaskInstanceState.RUNNING], session=session):
            ti.task = create_scheduler_operator(dag.get_task(ti.task_id))
            ti.handle_failure(error="Task instance without a heartbeat: its worker died", session=session)
        session.commit()
        for _ in range(100):  # bounded: each pass runs every task instance that is ready
            if run.state != DagRunState.RUNNING:
                break
            session.expire_all()
            ready, _ = run.update_state(session=session)
            for ti in ready:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            for ti in ready:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
        return run


def main(plan: list[dict[str, Any]]) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for index, run in enumerate(plan):
        if run.get("push_prompts"):
            push_prompts(run["push_prompts"])
        pusher = None
        if run.get("push_prompts_when_deferred"):
            pusher = PushWhenDeferred(run["push_prompts_when_deferred"])
            logging.getLogger("airflow.sdk.definitions.dag").addHandler(pusher)
            logging.getLogger("airflow.sdk.definitions.dag").setLevel(logging.INFO)
        for tag in run.get("git_tags", []):  # tag HEAD of $SUPPORT_BOT_RELEASE_REPO
            subprocess.run(["git", "tag", tag], cwd=os.environ["SUPPORT_BOT_RELEASE_REPO"], check=True)
        os.environ.update(run.get("env", {}))
        dag = getattr(load_dags(Path(run.get("dag_file") or DAG_FILE)), run["dag_id"])
        logical_date = start + timedelta(days=run.get("day", index))
        if run.get("retry_after_worker_died"):
            result = retry_after_worker_died(dag, logical_date)
        else:
            result = dag.test(logical_date=logical_date)
        if pusher is not None:
            logging.getLogger("airflow.sdk.definitions.dag").removeHandler(pusher)
            assert pusher.pusher is not None, "no task deferred: the prompt versions were not pushed"
        tasks = {task_key(ti): str(ti.state) for ti in result.get_task_instances()}
        record = {
            "dag_id": run["dag_id"],
            "state": str(result.state),
            "tasks": tasks,
            "xcom": xcoms(run["dag_id"], result.run_id),
            "assets": asset_events(run["dag_id"], result.run_id),
            "variables": variables(),
            "triggers": stored_triggers(run["dag_id"], result.run_id),
        }
        # One write of the whole line: `print` writes the newline separately, and a log line of another
        # thread (the OpenLineage client's) written in between ended up on the RUN line.
        sys.stdout.write("RUN " + json.dumps(record, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
