"""Shared by the Airflow tests: a temporary `AIRFLOW_HOME` with a migrated SQLite metadata database, DAG runs
in a subprocess (tests/airflow_dag_runs.py), and the OpenLineage schema check (tests/openlineage_spec/).

Airflow itself is only imported in the subprocesses (importing it in the test process would write ~/airflow/).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "tests" / "airflow_dag_runs.py"
SPEC = REPO / "tests" / "openlineage_spec"
PYTHON = sys.executable
AIRFLOW = str(Path(PYTHON).parent / "airflow")


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata database migrated once (`airflow db migrate`), copied by each test."""
    home = tmp_path_factory.mktemp("airflow_template")
    env = {**os.environ, **airflow_env(home)}
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home / "airflow.db"


def airflow_env(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example" / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(home / "openlineage.jsonl"), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "support-bot",
        "DAGSTER_EVALS_DATABASE_URL": f"sqlite:///{home / 'evals.sqlite'}",
        "AIRFLOW_CONN_EVALS_LOCAL": json.dumps({"conn_type": "dagster_evals_local"}),
        "PYTHONPATH": str(REPO),
    }


class Airflow:
    """A temporary AIRFLOW_HOME with a migrated metadata database; runs DAG runs in a subprocess."""

    def __init__(self, home: Path, template: Path) -> None:
        self.home = home
        (home / "airflow.db").write_bytes(template.read_bytes())
        self.env = airflow_env(home)
        self.output = ""

    def run(self, *runs: dict[str, Any]) -> list[dict[str, Any]]:
        done = subprocess.run(
            [PYTHON, str(RUNNER), json.dumps(list(runs))],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=600,
            cwd=self.home,
        )
        self.output += done.stdout + done.stderr
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        # A record is one line, but a log line another thread prints (`print` writes its newline apart) may
        # share its line: each record is read from its "RUN {" to the end of its JSON.
        decoder = json.JSONDecoder()
        results = [
            decoder.raw_decode(line, line.index("RUN {") + 4)[0]
            for line in done.stdout.splitlines()
            if "RUN {" in line
        ]
        assert len(results) == len(runs), done.stdout[-4000:] + done.stderr[-4000:]
        return results

    def run_until_killed(self, run: dict[str, Any]) -> None:
        """Run one DAG run whose worker is killed (SIGKILL) part-way: the process dies, the run stays open."""
        done = subprocess.run(
            [PYTHON, str(RUNNER), json.dumps([run])],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=600,
            cwd=self.home,
        )
        self.output += done.stdout + done.stderr
        assert done.returncode == -signal.SIGKILL, done.stdout[-4000:] + done.stderr[-4000:]

    def lineage_events(self) -> list[dict[str, Any]]:
        path = self.home / "openlineage.jsonl"
        assert path.exists(), "the OpenLineage provider emitted no event"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def airflow(tmp_path: Path, migrated_db: Path) -> Airflow:
    home = tmp_path / "airflow_home"
    home.mkdir()
    return Airflow(home, migrated_db)


def validate_events(events: list[dict[str, Any]]) -> None:
    """Each event against OpenLineage.json, and each facet this provider emits against its own schema."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = {path.stem: json.loads(path.read_text()) for path in SPEC.glob("*.json")}
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    core = schemas["OpenLineage"]
    event_validator = Draft202012Validator({"$ref": core["$id"] + "#/$defs/RunEvent"}, registry=registry)
    facet_schemas = {
        "dataQualityMetrics": "DataQualityMetricsInputDatasetFacet",
        "dataQualityAssertions": "DataQualityAssertionsDatasetFacet",
        "version": "DatasetVersionDatasetFacet",
    }
    checked = 0
    for event in events:
        event_validator.validate(event)
        for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
            for key, facet in {**dataset.get("facets", {}), **dataset.get("inputFacets", {})}.items():
                if key in facet_schemas:
                    schema = schemas[facet_schemas[key]]
                    ref = {"$ref": schema["$id"] + "#/$defs/" + facet_schemas[key]}
                    Draft202012Validator(ref, registry=registry).validate(facet)
                    checked += 1
    assert checked, "no dagster-evals facet in the events"
