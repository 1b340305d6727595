"""The README's example job, unchanged, on PostgreSQL: only DAGSTER_EVALS_DATABASE_URL is set, and the rows
land in Postgres (read back with psycopg, not through the backend)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.conftest import REPO

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def test_example_release_job_runs_unchanged_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_EVALS_")},
        "DAGSTER_HOME": str(tmp_path),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "DAGSTER_EVALS_DATABASE_URL": postgres_url,
    }
    result = subprocess.run(
        [DAGSTER, "job", "execute", "-f", "definitions.py", "-j", "support_bot_release_job"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "approved for release" in result.stdout + result.stderr
    assert not (tmp_path / "dagster_evals.sqlite").exists()  # nothing went to the default SQLite file

    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        datasets = conn.execute("SELECT id, name, version FROM datasets").fetchall()
        assert len(datasets) == 1 and datasets[0][2] == 1
        live = conn.execute(
            "SELECT COUNT(*) FROM dataset_rows WHERE dataset_id = %s AND version_removed IS NULL",
            (datasets[0][0],),
        ).fetchone()
        assert live == (36,)
        reports = conn.execute(
            "SELECT status, dataset_version FROM experiments WHERE report IS NOT NULL"
        ).fetchall()
        assert reports == [("completed", "1")]
        scored = conn.execute("SELECT COUNT(*) FROM experiment_rows").fetchone()
        assert scored == (36,)
        assert conn.execute("SELECT COUNT(*) FROM staged_rows").fetchone() == (0,)
        revision = conn.execute("SELECT version_num FROM dagster_evals_schema_version").fetchone()
        assert revision == ("0003",)
