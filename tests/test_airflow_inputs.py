"""The Airflow provider on bad input and on Braintrust: operator arguments and connection extras refused with
one clear error when the DAG loads or the connection is read; a deferred Braintrust `/v1/eval` against the
Braintrust fake, in a small DAG of platform functions."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is None:
    pytest.skip("the Airflow provider's tests need the [airflow] extra", allow_module_level=True)

from dagster_evals.engine.models import DatasetRow
from dagster_evals.testing.braintrust import BraintrustFake
from tests.airflow_harness import PYTHON, Airflow, airflow_env
from tests.conftest import braintrust_platform

# -- bad input, caught when the DAG loads or the connection is read ---------------------------------------
BAD_INPUT = """
import json, os
from dagster_evals.airflow import EvalGateOperator, RunEvalOperator, SyncDatasetOperator, EvalsHook
from dagster_evals.engine.errors import DagsterEvalsError

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


BRAINTRUST_KEY = "bt-test-key-0123456789abcdef"
BRAINTRUST_DAG = """
from datetime import datetime

from airflow.sdk import DAG

from dagster_evals.airflow import EvalGateOperator, PinSnapshotOperator, RunEvalOperator
from dagster_evals.engine.models import PlatformFunction

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
    # As Airflow stored it: the connection id and the request, no key.
    ((classpath, stored),) = run["triggers"]
    assert classpath == "dagster_evals.airflow.triggers.PlatformEvalTrigger"
    assert stored["conn_id"] == "evals_braintrust" and stored["request"]["task"]["name"]
    assert BRAINTRUST_KEY not in airflow.output and BRAINTRUST_KEY not in json.dumps(run)
    assert BRAINTRUST_KEY.encode() not in (airflow.home / "airflow.db").read_bytes()
