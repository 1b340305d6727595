"""The example job on a dagster-postgres instance, configured as Dagster's deployment docs show it
(`storage: postgres: postgres_url: "postgresql://…"`, the `dagster.yaml` of docs/deploying.md, "The Dagster
instance in PostgreSQL"), with the eval database in another database of the same PostgreSQL server; launched
with `dg launch` as that page does. The run, its events and check results are read back from the instance's
database (with psycopg, and through Dagster), the report from the eval database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.conftest import REPO
from tests.pg_server import PostgresServer

# A deployment proof: out of the default run, run by `pytest -m deployment` (and in CI by .ci/run).
pytestmark = pytest.mark.deployment

DG = str(Path(sys.executable).with_name("dg"))
README_URL = "postgresql://dagster:…@db:5432/dagster"
REPORT_KEY = ["evals", "support_bot", "eval_report"]


def readme_instance_yaml() -> str:
    """The `dagster.yaml` of docs/deploying.md's "The Dagster instance in PostgreSQL"."""
    readme = (REPO / "docs" / "deploying.md").read_text()
    found = re.search(
        r"```yaml\n(# \$DAGSTER_HOME/dagster\.yaml: the Dagster instance in PostgreSQL\n.*?)```", readme, re.S
    )
    assert found, "docs/deploying.md has no dagster.yaml for the instance in PostgreSQL"
    assert README_URL in found.group(1)
    return found.group(1)


def plain(url: str) -> str:
    """The test server's URL as Dagster's docs write it: `postgresql://`, no driver."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_example_job_runs_on_a_dagster_postgres_instance(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    instance_url = plain(postgres_server.create_database())
    evals_url = postgres_server.create_database()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(readme_instance_yaml().replace(README_URL, instance_url))
    readme = (REPO / "docs" / "deploying.md").read_text()
    assert (
        "DAGSTER_EVALS_DATABASE_URL=postgresql+psycopg://evals:…@db:5432/evals \\\n  dg launch --job support_bot_release_job -f definitions.py"
        in readme
    )

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")},
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "DAGSTER_EVALS_DATABASE_URL": evals_url,
    }
    launched = subprocess.run(
        [DG, "launch", "--job", "support_bot_release_job", "-f", "definitions.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]

    # The instance's state is in PostgreSQL: the run, its events, the check results.
    with psycopg.connect(instance_url) as conn:
        runs = conn.execute("SELECT run_id, status, pipeline_name FROM runs").fetchall()
        assert [(status, job) for _, status, job in runs] == [("SUCCESS", "support_bot_release_job")]
        materialized = {
            json.dumps(json.loads(key)) if key.startswith("[") else key
            for (key,) in conn.execute(
                "SELECT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                "AND run_id = %s",
                (runs[0][0],),
            )
        }
        assert json.dumps(REPORT_KEY) in materialized and json.dumps(["release_approved"]) in materialized
        checks = conn.execute(
            "SELECT COUNT(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION' AND run_id = %s",
            (runs[0][0],),
        ).fetchone()
        assert checks is not None and checks[0] >= 3

    # Dagster reads the same instance back from the dagster.yaml.
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        [record] = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        report = instance.get_latest_materialization_event(dg.AssetKey(REPORT_KEY))
        assert report is not None and report.asset_materialization is not None
        assert report.asset_materialization.metadata["rows_scored"].value == 36

    # The report is in the eval database.
    with psycopg.connect(plain(evals_url)) as conn:
        reports = conn.execute("SELECT status FROM experiments WHERE report IS NOT NULL").fetchall()
        assert reports == [("completed",)]
        assert conn.execute("SELECT COUNT(*) FROM experiment_rows").fetchone() == (36,)

    # Nothing went to SQLite: no instance databases, no eval database file.
    assert [p.name for p in home.rglob("*") if p.suffix in (".db", ".sqlite")] == []
