"""The Airflow provider, run for real: the example DAGs (example/airflow/support_bot_dags.py) executed with
`dag.test()` on Airflow's own SQLite metadata database in a temporary `AIRFLOW_HOME`, on the embedded
backend and against the Keywords AI fake over real HTTP.

Each test runs its DAG runs in one subprocess (tests/airflow_dag_runs.py), so Airflow's configuration comes
from that test's environment alone. The OpenLineage provider writes its events to a file; they are
validated against the OpenLineage JSON schemas (tests/openlineage_spec/).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# Airflow itself is only imported in the subprocesses (importing it here would write ~/airflow/).
if importlib.util.find_spec("airflow") is None:
    pytest.skip("the Airflow provider's tests need the [airflow] extra", allow_module_level=True)

from dagster_evals.backends.keywordsai.models import metadata_filter
from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform
from dagster_evals.models import DatasetRow
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.conftest import KEYWORDSAI_KEY, braintrust_platform, git

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "tests" / "airflow_dag_runs.py"
SPEC = REPO / "tests" / "openlineage_spec"
PYTHON = sys.executable
AIRFLOW = str(Path(PYTHON).parent / "airflow")


@pytest.fixture(scope="module")
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
        results = [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("RUN ")]
        assert len(results) == len(runs), done.stdout[-4000:] + done.stderr[-4000:]
        return results

    def lineage_events(self) -> list[dict[str, Any]]:
        path = self.home / "openlineage.jsonl"
        assert path.exists(), "the OpenLineage provider emitted no event"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def airflow(tmp_path: Path, migrated_db: Path) -> Airflow:
    home = tmp_path / "airflow_home"
    home.mkdir()
    return Airflow(home, migrated_db)


def regressed_rows(path: Path) -> Path:
    """The example rows with every other expected answer rewritten: the bot's answers now score worse."""
    lines = (REPO / "data" / "support_bot.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    for index, row in enumerate(rows):
        if index % 2 == 0:
            row["expected"] = "Please contact our billing team by phone during office hours."
            row["metadata"]["must_mention"] = ["billing team"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# -- the release DAG -------------------------------------------------------------------------------------
def test_release_dag_passes_then_a_regression_is_blocked_and_stays_blocked(
    airflow: Airflow, tmp_path: Path
) -> None:
    bad = str(regressed_rows(tmp_path / "regressed.jsonl"))
    good = str(REPO / "data" / "support_bot.jsonl")
    first, second, third = airflow.run(
        {"dag_id": "support_bot_evals", "env": {"SUPPORT_BOT_ROWS": good}},
        {"dag_id": "support_bot_evals", "env": {"SUPPORT_BOT_ROWS": bad}},
        {"dag_id": "support_bot_evals", "env": {"SUPPORT_BOT_ROWS": bad}},
    )

    assert first["state"] == "success", first
    assert set(first["tasks"].values()) == {"success"}
    summary = first["xcom"]["run_eval"]
    assert summary["rows_in_snapshot"] == summary["rows_scored"] == 36 and summary["rows_errored"] == 0
    assert summary["scores"]["levenshtein"]["mean"] > 0.7
    assert summary["baseline"]["report_id"] is None and "no baseline yet" in summary["baseline"]["note"]
    assert first["xcom"]["gate"]["passed"] is True and first["xcom"]["approve_release"]["approved"] is True
    assert len(json.dumps(summary)) < 4000  # a small JSON summary, not rows

    # The data changed under the bot: the gate fails, and the release task does not run.
    assert second["state"] == "failed"
    assert second["tasks"]["gate"] == "failed" and second["tasks"]["approve_release"] == "upstream_failed"
    assert "approve_release" not in second["xcom"] and "gate" not in second["xcom"]
    regressed = second["xcom"]["run_eval"]
    assert regressed["baseline_id"] == summary["id"]  # compared with the passing report
    assert regressed["scores"]["levenshtein"]["diff"] < -0.05
    assert "levenshtein mean 0." in airflow.output and "is below the threshold 0.7000" in airflow.output
    assert f"regressions against baseline {summary['name']}" in airflow.output  # the Dagster check's words

    # Re-running the blocked change compares with the last *passing* report again: still blocked.
    assert third["tasks"]["gate"] == "failed" and third["tasks"]["approve_release"] == "upstream_failed"
    assert third["xcom"]["run_eval"]["baseline_id"] == summary["id"]

    events = airflow.lineage_events()
    validate_events(events)
    completed = {(e["job"]["name"], e["eventType"]) for e in events}
    assert ("support_bot_evals.run_eval", "COMPLETE") in completed
    eval_event = next(
        e for e in events if e["job"]["name"] == "support_bot_evals.run_eval" and e["eventType"] == "COMPLETE"
    )
    (pinned,) = eval_event["inputs"]
    assert pinned["name"] == "default/support_bot" and pinned["facets"]["version"]["datasetVersion"]
    metrics = pinned["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 36 and set(metrics["columnMetrics"]) == {
        "exact_match",
        "levenshtein",
        "mentions_required_facts",
    }
    assert eval_event["outputs"][0]["name"] == "default/eval_reports/support_bot"
    gate_events = [e for e in events if e["job"]["name"] == "support_bot_evals.gate"]
    assertions = [
        a
        for e in gate_events
        for i in e.get("inputs", [])
        for a in i.get("inputFacets", {}).get("dataQualityAssertions", {}).get("assertions", [])
    ]
    assert {"assertion": "threshold_levenshtein", "success": False} in [
        {"assertion": a["assertion"], "success": a["success"]} for a in assertions
    ]


# -- new prompt versions ---------------------------------------------------------------------------------
def test_each_new_prompt_version_is_evaluated_exactly_once(airflow: Airflow) -> None:
    first, second = airflow.run(
        {
            "dag_id": "support_bot_prompt_versions",
            "push_prompts": [["support_bot_system", {"sign_off": "Thanks!"}]],
        },
        {
            "dag_id": "support_bot_prompt_versions",
            "push_prompts": [
                ["support_bot_system", {"sign_off": "Cheers."}],
                ["support_bot_system", {"sign_off": "Have a good day."}],
            ],
        },
    )

    assert first["state"] == "success", first
    assert [v["key"] for v in first["xcom"]["new_prompt_versions"]] == ["support_bot_system@1"]
    assert [first["xcom"]["run_eval[0]"]["name"].split("-")[1]] == ["support_bot_system@1"]
    assert second["state"] == "success", second
    assert [v["key"] for v in second["xcom"]["new_prompt_versions"]] == [
        "support_bot_system@2",
        "support_bot_system@3",
    ]
    evaluated = sorted(
        v["name"].split("-")[1] for k, v in second["xcom"].items() if k.startswith("run_eval[")
    )
    assert evaluated == ["support_bot_system@2", "support_bot_system@3"]  # version 1 is not evaluated again
    assert {k: v for k, v in second["tasks"].items() if k.startswith("gate[")} == {
        "gate[0]": "success",
        "gate[1]": "success",
    }


def test_each_new_release_is_evaluated_exactly_once(airflow: Airflow, tmp_path: Path) -> None:
    repo = tmp_path / "bot"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "bot.py").write_text("VERSION = 1\n")
    git(repo, "add", "bot.py")
    git(repo, "commit", "-qm", "first")
    git(repo, "tag", "v1.0")
    git(repo, "tag", "v1.1")
    airflow.env["SUPPORT_BOT_RELEASE_REPO"] = str(repo)

    first, second = airflow.run(
        {"dag_id": "support_bot_releases"}, {"dag_id": "support_bot_releases", "git_tags": ["v1.2"]}
    )

    head = git(repo, "rev-parse", "HEAD")
    assert first["state"] == "success", first
    assert first["xcom"]["new_releases"] == [{"tag": "v1.1", "commit": head}]  # initial: the latest only
    assert first["xcom"]["run_eval[0]"]["name"].startswith("support_bot_releases-v1.1-")
    assert second["xcom"]["new_releases"] == [{"tag": "v1.2", "commit": head}]  # v1.1 is not evaluated again
    assert [k for k in second["xcom"] if k.startswith("run_eval[")] == ["run_eval[0]"]
    assert second["tasks"]["gate[0]"] == "success"


# -- a deferred Keywords AI eval run, and no key anywhere --------------------------------------------------
@pytest.fixture
def keywordsai() -> Iterator[tuple[KeywordsAIFake, str]]:
    fake = KeywordsAIFake(
        api_keys=[KEYWORDSAI_KEY],
        rate_limit_per_minute=None,
        eval_statuses=("pending", "running", "running", "running", "completed"),
    )
    with fake.serve() as server:
        yield fake, server.url


def test_deferred_keywordsai_eval_waits_in_the_triggerer_and_no_key_leaks(
    airflow: Airflow, keywordsai: tuple[KeywordsAIFake, str]
) -> None:
    fake, url = keywordsai
    now = datetime.now(UTC)
    fake.add_request_logs(
        {"input": f"q{i}", "output": "x" * i, "metadata": {"env": "prod"}} for i in range(1, 9)
    )
    platform = KeywordsAIPlatform.connect(KEYWORDSAI_KEY, base_url=url, rate_limit_per_minute=None)
    platform.create_dataset_from_logs(
        "support-bot-prod-sample", start_time=now - timedelta(hours=1), end_time=now + timedelta(minutes=1),
        filters=metadata_filter("env", "prod"),
    )  # fmt: skip
    platform.close()
    airflow.env["AIRFLOW_CONN_EVALS_KEYWORDSAI"] = json.dumps(
        {
            "conn_type": "dagster_evals_keywordsai",
            "host": url,
            "password": KEYWORDSAI_KEY,
            "extra": {"rate_limit_per_minute": 600, "eval_poll_interval_s": 0.05, "settle_delay_s": 0.0},
        }
    )

    (run,) = airflow.run({"dag_id": "support_bot_logs"})

    assert run["state"] == "success", airflow.output[-6000:]
    summary = run["xcom"]["run_eval"]
    assert summary["platform"] == "keywordsai" and summary["rows_in_snapshot"] == 8
    assert summary["scores"]["char_count_eval"]["mean"] == pytest.approx(4.5)
    assert "DEFERRED" in airflow.output.upper()
    assert fake.requests["GET /api/datasets/{dataset_id}/eval-reports/list/"] >= 4  # polled until final
    # The key is in no log, no XCom, no rendered field, no event and no output of the run.
    assert KEYWORDSAI_KEY not in airflow.output
    assert KEYWORDSAI_KEY not in json.dumps(run)
    for path in airflow.home.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert KEYWORDSAI_KEY.encode() not in path.read_bytes(), path
    assert KEYWORDSAI_KEY.encode() not in (airflow.home / "airflow.db").read_bytes()
    validate_events(airflow.lineage_events())


BRAINTRUST_KEY = "bt-test-key-0123456789abcdef"
BRAINTRUST_DAG = """
from datetime import datetime

from airflow.sdk import DAG

from dagster_evals.airflow import EvalGateOperator, PinSnapshotOperator, RunEvalOperator
from dagster_evals.models import PlatformFunction

TASK = PlatformFunction(
    platform="braintrust",
    name="echo",
    spec={"inline_context": {"runtime": "python", "version": "3.11"}, "code": "def handler(input):\\n    return input"},
)
SCORER = PlatformFunction(platform="braintrust", name="ExactMatch", spec={"global_function": "ExactMatch"})

with DAG("braintrust_functions", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as braintrust_functions:
    pin = PinSnapshotOperator(task_id="pin_snapshot", conn_id="evals_braintrust", dataset_name="ds")
    run_eval = RunEvalOperator(
        task_id="run_eval", conn_id="evals_braintrust", suite="functions", snapshot=pin.output, task=TASK,
        scorers=[SCORER], deferrable=True,
    )
    EvalGateOperator(task_id="gate", conn_id="evals_braintrust", summary=run_eval.output, thresholds={"ExactMatch": 0.9})
"""


def test_deferred_braintrust_eval_runs_in_the_triggerer(airflow: Airflow, tmp_path: Path) -> None:
    fake = BraintrustFake(api_key=BRAINTRUST_KEY)
    with fake.serve() as server:
        seed = braintrust_platform(server.url, BRAINTRUST_KEY)
        dataset = seed.ensure_dataset("ds")
        seed.upsert_rows(dataset, [DatasetRow.build(f"q{i}", f"q{i}", id=f"r{i}") for i in range(5)])
        seed.close()
        dags = tmp_path / "dags"
        dags.mkdir()
        (dags / "braintrust_functions.py").write_text(BRAINTRUST_DAG)
        airflow.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        airflow.env["AIRFLOW_CONN_EVALS_BRAINTRUST"] = json.dumps(
            {
                "conn_type": "dagster_evals_braintrust",
                "host": server.url,
                "password": BRAINTRUST_KEY,
                "extra": {"project": "p", "collect_git": False},
            }
        )
        (run,) = airflow.run(
            {"dag_id": "braintrust_functions", "dag_file": str(dags / "braintrust_functions.py")}
        )

    assert run["state"] == "success", airflow.output[-6000:]
    summary = run["xcom"]["run_eval"]
    assert summary["platform"] == "braintrust" and summary["rows_scored"] == 5
    assert summary["scores"]["ExactMatch"]["mean"] == 1.0
    assert "DEFERRED" in airflow.output.upper()
    assert BRAINTRUST_KEY not in airflow.output and BRAINTRUST_KEY not in json.dumps(run)
    assert BRAINTRUST_KEY.encode() not in (airflow.home / "airflow.db").read_bytes()


# -- OpenLineage schemas ---------------------------------------------------------------------------------
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


# -- bad input, caught when the DAG loads or the connection is read ---------------------------------------
BAD_INPUT = """
import json, os
from dagster_evals.airflow import EvalGateOperator, RunEvalOperator, SyncDatasetOperator, EvalsHook
from dagster_evals.errors import DagsterEvalsError

def error(make):
    try:
        make()
    except DagsterEvalsError as exc:
        return str(exc)
    return "no error"

print(json.dumps([
    error(lambda: RunEvalOperator(task_id="run_eval", conn_id="c", suite="s", snapshot={}, task=str,
                                  scorers=["exact_match"], trial_count=True)),
    error(lambda: RunEvalOperator(task_id="run_eval", conn_id="c", suite="s", snapshot={}, task=str,
                                  scorers=["bleu"])),
    error(lambda: EvalGateOperator(task_id="gate", conn_id="c", summary={}, thresholds={"levenshtein": "0.7"})),
    error(lambda: SyncDatasetOperator(task_id="sync", conn_id="c", dataset_name="d", source="rows.txt")),
    error(lambda: EvalsHook.for_connection("evals_bad").get_platform()),
    error(lambda: EvalsHook.for_connection("evals_odd")),
]))
"""


def test_bad_operator_arguments_and_connection_extras_fail_with_one_clear_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **airflow_env(tmp_path),
        "AIRFLOW_CONN_EVALS_BAD": json.dumps(
            {
                "conn_type": "dagster_evals_keywordsai",
                "password": "k",
                "extra": {"timeout_s": "30", "colour": 1},
            }
        ),
        "AIRFLOW_CONN_EVALS_ODD": json.dumps({"conn_type": "http"}),
    }
    done = subprocess.run([PYTHON, "-c", BAD_INPUT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trials, scorer, threshold, source, extras, conn_type = json.loads(done.stdout.strip().splitlines()[-1])
    assert trials == "task 'run_eval': trial_count must be an integer of at least 1, got True"
    assert "unknown scorer 'bleu'" in scorer
    assert "threshold for scorer 'levenshtein' must be a number in [0, 1], got '0.7'" in threshold
    assert "rows.txt" in source
    assert (
        extras.startswith("connection 'evals_bad' extra: ") and "timeout_s" in extras and "colour" in extras
    )
    assert "'k'" not in extras  # the password is never echoed
    assert conn_type.startswith("connection 'evals_odd' has conn_type 'http'")
