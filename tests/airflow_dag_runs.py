"""Run DAG runs of the example DAG file with `dag.test()` in this process, and print what happened.

Used by tests/test_airflow.py in a subprocess whose environment holds `AIRFLOW_HOME` (a temporary
directory with a migrated SQLite metadata database) and the connections:

    python tests/airflow_dag_runs.py '[{"dag_id": "support_bot_evals", "env": {...}}, ...]'

Each run: push its `push_prompts` (`[slug, content]` pairs) to the embedded backend
(`$DAGSTER_EVALS_DATABASE_URL`), add its `git_tags` to `$SUPPORT_BOT_RELEASE_REPO`, set its `env`, (re)load the DAG file, `dag.test()`, then print one line
`RUN {"dag_id", "state", "tasks": {task_id[map_index]: state}, "xcom": {task_id[map_index]: value},
"assets": [[task_id, asset uri], ...]}`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
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


def main(plan: list[dict[str, Any]]) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for index, run in enumerate(plan):
        if run.get("push_prompts"):
            from dagster_evals.backends.local.platform import LocalPlatform

            platform = LocalPlatform(url=os.environ["DAGSTER_EVALS_DATABASE_URL"])
            for slug, content in run["push_prompts"]:
                platform.push_prompt_version(slug, content)
            platform.close()
        for tag in run.get("git_tags", []):  # tag HEAD of $SUPPORT_BOT_RELEASE_REPO
            subprocess.run(["git", "tag", tag], cwd=os.environ["SUPPORT_BOT_RELEASE_REPO"], check=True)
        os.environ.update(run.get("env", {}))
        dag = getattr(load_dags(Path(run.get("dag_file") or DAG_FILE)), run["dag_id"])
        result = dag.test(logical_date=start + timedelta(days=index))
        tasks = {task_key(ti): str(ti.state) for ti in result.get_task_instances()}
        record = {
            "dag_id": run["dag_id"],
            "state": str(result.state),
            "tasks": tasks,
            "xcom": xcoms(run["dag_id"], result.run_id),
            "assets": asset_events(run["dag_id"], result.run_id),
        }
        # One write of the whole line: `print` writes the newline separately, and a log line of another
        # thread (the OpenLineage client's) written in between ended up on the RUN line.
        sys.stdout.write("RUN " + json.dumps(record, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
