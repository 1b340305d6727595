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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is None:
    pytest.skip("the Airflow provider's tests need the [airflow] extra", allow_module_level=True)

from dagster_evals.backends.keywordsai.models import metadata_filter
from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.airflow_harness import REPO, Airflow, validate_events
from tests.conftest import KEYWORDSAI_KEY, git


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
    # The sync and eval tasks update the dataset's and the suite's Airflow Assets (asset-aware DAGs run on them).
    assert first["assets"] == [
        ["run_eval", "dagster-evals://evals_local/eval_reports/support_bot"],
        ["sync_dataset", "dagster-evals://evals_local/datasets/support_bot"],
    ]

    # The data changed under the bot: the gate fails, and the release task does not run.
    assert second["state"] == "failed"
    assert second["tasks"]["gate"] == "failed" and second["tasks"]["approve_release"] == "upstream_failed"
    assert "approve_release" not in second["xcom"] and "gate" not in second["xcom"]
    regressed = second["xcom"]["run_eval"]
    assert regressed["baseline_id"] == summary["id"]  # compared with the passing report
    assert regressed["scores"]["levenshtein"]["diff"] < -0.05
    assert "levenshtein mean 0." in airflow.output and "is below the threshold 0.7" in airflow.output
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
    # The trigger Airflow stored for the triggerer names the connection, not its key.
    ((classpath, stored),) = run["triggers"]
    assert classpath == "dagster_evals.airflow.triggers.KeywordsAIEvalRunTrigger"
    assert stored["conn_id"] == "evals_keywordsai"
    # The key is in no log, no XCom, no stored trigger, no rendered field, no event and no output of the run.
    assert KEYWORDSAI_KEY not in airflow.output
    assert KEYWORDSAI_KEY not in json.dumps(run)
    for path in airflow.home.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert KEYWORDSAI_KEY.encode() not in path.read_bytes(), path
    assert KEYWORDSAI_KEY.encode() not in (airflow.home / "airflow.db").read_bytes()
    validate_events(airflow.lineage_events())
