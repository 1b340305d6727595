"""A `RunEvalOperator` task that fails part-way is retried by Airflow (`retries=1`) and resumes from the engine's
row checkpoints: the retry scores only the rows the failed try did not save, leaves one report (one Braintrust
experiment, one Keywords AI results dataset), and says which try it is in its XCom summary and log.

Two ways a try fails, at a known row, whatever the machine's speed (every call the bot gets is written to a
file, so the test sees what each try asked):
- the bot stops its worker (`SystemExit`, as a stopped interpreter does): `dag.test()` schedules the failed task
  instance again with the next try number, as the scheduler does (airflow-core 3.3: `DAG.test` re-schedules
  `up_for_retry` task instances and increments `try_number`);
- the bot kills its worker (SIGKILL) once the rows so far are checkpointed: the DAG run stays open, the task
  instance `running`; the harness then fails it as the scheduler fails a task without heartbeat and carries on
  that run (`retry_after_worker_died` in tests/airflow_dag_runs.py).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("airflow") is None:
    pytest.skip("the Airflow provider's tests need the [airflow] extra", allow_module_level=True)

from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.airflow_harness import Airflow
from tests.conftest import KEYWORDSAI_KEY, braintrust_platform

BRAINTRUST_KEY = "bt-test-key-retries-0123456789"

ROWS = 10
STOP_AT = 5  # the first try saves 4 rows, then its worker stops on the 5th
RETRY_DAG = """
import os
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG
from dagster_evals.airflow import PinSnapshotOperator, RunEvalOperator, SyncDatasetOperator

CALLS = Path(os.environ["RETRY_CALLS"])
STOP_AT = int(os.environ["RETRY_STOP_AT"])
CONN = os.environ["RETRY_CONN"]


def flaky_bot(question):
    \"\"\"Answers in capitals; on the first try the worker stops (or is killed) at the STOP_AT-th call.\"\"\"
    calls = CALLS.read_text().splitlines() if CALLS.exists() else []
    stopped_before = "stopped" in calls
    with CALLS.open("a") as out:
        out.write(question + "\\n")
        if not stopped_before and len(calls) + 1 == STOP_AT:
            out.write("stopped\\n")
            out.flush()
            if os.environ.get("RETRY_KILL"):
                # The rows so far were handed to the checkpoint writer (a thread) at the previous row: let
                # it commit them, then die the way a lost worker does.
                time.sleep(1.0)
                os.kill(os.getpid(), signal.SIGKILL)
            raise SystemExit("the worker was stopped")
    if os.environ.get("RETRY_KILL") and not stopped_before and len(calls) + 1 == STOP_AT - 1:
        time.sleep(1.2)  # past the runner's checkpoint interval: the rows so far are written after this one
    return question.upper()


with DAG("retried_eval", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as retried_eval:
    sync = SyncDatasetOperator(
        task_id="sync_dataset", conn_id=CONN, dataset_name="questions",
        source=os.environ["RETRY_ROWS"], key_field="id",
    )
    pin = PinSnapshotOperator(task_id="pin_snapshot", conn_id=CONN, sync_result=sync.output)
    RunEvalOperator(
        task_id="run_eval", conn_id=CONN, suite="questions", snapshot=pin.output, task=flaky_bot,
        scorers=["exact_match"], max_concurrency=1, retries=1, retry_delay=timedelta(seconds=0),
    )
"""


def run_retried_eval(airflow: Airflow, tmp_path: Path, conn_id: str, *, kill: bool = False) -> dict[str, Any]:
    """Run the DAG whose eval stops on its first try (with `kill`: whose worker is killed, then failed by the
    scheduler's rule for a task without heartbeat); check the retry asked the bot only about the rows the
    first try did not save, and return the run."""
    rows = tmp_path / "questions.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"id": f"q{i:02d}", "input": f"q{i:02d}", "expected": f"Q{i:02d}"}) + "\n"
            for i in range(ROWS)
        )
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "retried_eval.py").write_text(RETRY_DAG)
    calls = tmp_path / "calls.txt"
    airflow.env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        RETRY_CALLS=str(calls),
        RETRY_STOP_AT=str(STOP_AT),
        RETRY_ROWS=str(rows),
        RETRY_CONN=conn_id,
    )

    dag = {"dag_id": "retried_eval", "dag_file": str(dags / "retried_eval.py"), "day": 0}
    if kill:
        airflow.env["RETRY_KILL"] = "1"
        airflow.run_until_killed(dag)
        dag["retry_after_worker_died"] = True
    (run,) = airflow.run(dag)

    assert run["state"] == "success", airflow.output[-6000:]
    lines = calls.read_text().splitlines()
    first_try, second_try = lines[: lines.index("stopped")], lines[lines.index("stopped") + 1 :]
    assert len(first_try) == STOP_AT
    # The retry asks the bot only about the rows the first try did not save, the interrupted one included.
    assert sorted(second_try) == sorted({f"q{i:02d}" for i in range(ROWS)} - set(first_try[:-1]))
    assert first_try[-1] in second_try
    summary = run["xcom"]["run_eval"]
    assert summary["rows_in_snapshot"] == summary["rows_scored"] == ROWS and summary["rows_errored"] == 0
    assert summary["scores"]["exact_match"]["mean"] == 1.0
    assert summary["attempt"] == {
        "try_number": 2,
        "rows_from_checkpoints": STOP_AT - 1,
        "rows_scored_now": ROWS - STOP_AT + 1,
    }
    assert "try 2 of 'run_eval': rows scored by an earlier try are read back" in airflow.output
    return run


def test_an_eval_whose_worker_is_killed_resumes_on_its_retry(airflow: Airflow, tmp_path: Path) -> None:
    run = run_retried_eval(airflow, tmp_path, "evals_local", kill=True)

    assert run["tasks"] == {"sync_dataset": "success", "pin_snapshot": "success", "run_eval": "success"}
    platform = LocalPlatform(url=airflow.env["DAGSTER_EVALS_DATABASE_URL"])
    try:
        assert [r.id for r in platform.list_eval_reports()] == [run["xcom"]["run_eval"]["id"]]
    finally:
        platform.close()


def test_a_retried_eval_resumes_from_its_checkpoints_and_scores_each_row_once(
    airflow: Airflow, tmp_path: Path, database_url: str
) -> None:
    airflow.env["DAGSTER_EVALS_DATABASE_URL"] = database_url
    run = run_retried_eval(airflow, tmp_path, "evals_local")  # each row scored once, try 2 resumed

    summary = run["xcom"]["run_eval"]
    # One report with results; the stopped try is on record as failed with its reason, never left running.
    platform = LocalPlatform(url=database_url)
    try:
        assert [r.id for r in platform.list_eval_reports()] == [summary["id"]]
        (stopped,) = platform.list_unfinished_reports()
        assert stopped["status"] == "failed" and "the worker was stopped" in stopped["failure"]
    finally:
        platform.close()


def test_a_retried_eval_on_braintrust_continues_the_experiment_of_its_first_try(
    airflow: Airflow, tmp_path: Path
) -> None:
    fake = BraintrustFake(api_key=BRAINTRUST_KEY)
    with fake.serve() as server:
        airflow.env["AIRFLOW_CONN_EVALS_BRAINTRUST"] = json.dumps(
            {
                "conn_type": "dagster_evals_braintrust",
                "host": server.url,
                "password": BRAINTRUST_KEY,
                "extra": {"project": "p", "collect_git": False},
            }
        )
        run = run_retried_eval(airflow, tmp_path, "evals_braintrust")
        platform = braintrust_platform(server.url, BRAINTRUST_KEY)
        try:
            experiments = platform.client.list_experiments(project_name="p")
            rows = platform.report_row_scores(run["xcom"]["run_eval"]["id"])
        finally:
            platform.close()

    # One experiment: the retry wrote the rest of its rows into the experiment the stopped try started.
    assert [e.id for e in experiments] == [run["xcom"]["run_eval"]["id"]]
    assert len(rows) == ROWS and all(scores == {"exact_match": 1.0} for scores in rows.values())
    assert BRAINTRUST_KEY not in airflow.output and BRAINTRUST_KEY not in json.dumps(run)


def test_a_retried_eval_on_keywordsai_writes_its_results_to_one_dataset(
    airflow: Airflow, tmp_path: Path
) -> None:
    fake = KeywordsAIFake(api_keys=[KEYWORDSAI_KEY], rate_limit_per_minute=None)
    with fake.serve() as server:
        airflow.env["AIRFLOW_CONN_EVALS_KEYWORDSAI"] = json.dumps(
            {
                "conn_type": "dagster_evals_keywordsai",
                "host": server.url,
                "password": KEYWORDSAI_KEY,
                "extra": {"rate_limit_per_minute": 6000, "settle_delay_s": 0.0},
            }
        )
        run = run_retried_eval(airflow, tmp_path, "evals_keywordsai")

    # The source dataset and one dataset of results, holding each row once.
    report_dataset = run["xcom"]["run_eval"]["id"].split(":")[0]
    assert sorted(d["name"] for d in fake.datasets.values()) == sorted(
        ["questions", run["xcom"]["run_eval"]["name"]]
    )
    assert len(fake.dataset_logs(report_dataset)) == ROWS
    assert KEYWORDSAI_KEY not in airflow.output and KEYWORDSAI_KEY not in json.dumps(run)
