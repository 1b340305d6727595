"""The deferrable prompt-version sensor and the triggers, run for real.

`NewPromptVersionsSensor(deferrable=True)` in a small DAG run with `dag.test()`, which runs a deferred task's
trigger in line: a version pushed while the trigger waits is handed on, the cursor (an Airflow Variable)
moves past it once, and a run with no new version is skipped (`soft_fail=True`) when the sensor's timeout
passes. The triggers themselves, in a subprocess with Airflow's connections from the environment: one that
cannot read the platform ends with one error naming the connection, and no trigger carries an API key in
its serialized form (what Airflow stores in its metadata database), its repr or its events.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is None:
    pytest.skip("the Airflow provider's tests need the [airflow] extra", allow_module_level=True)

from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.airflow_harness import PYTHON, Airflow, airflow_env
from tests.conftest import KEYWORDSAI_KEY

SENSOR_DAG = """
from datetime import datetime

from airflow.sdk import DAG, task
from dagster_evals.airflow import NewPromptVersionsSensor

with DAG(
    "deferred_prompt_versions", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1
) as deferred_prompt_versions:
    new_versions = NewPromptVersionsSensor(
        task_id="new_prompt_versions", conn_id="evals_local", prompt_slugs=["greeting"], deferrable=True,
        poke_interval=0.2, timeout=5, soft_fail=True, cursor_variable="greeting_cursor",
    )

    @task
    def evaluate(versions):
        return [version["key"] for version in versions]

    evaluate(new_versions.output)
"""


def test_the_deferred_sensor_hands_on_a_version_pushed_while_it_waits(
    airflow: Airflow, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "deferred_prompt_versions.py").write_text(SENSOR_DAG)
    airflow.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    dag = {"dag_id": "deferred_prompt_versions", "dag_file": str(dags / "deferred_prompt_versions.py")}

    first, second, third = airflow.run(
        {**dag, "push_prompts": [["greeting", {"text": "Hello"}]]},
        {**dag, "push_prompts_when_deferred": [["greeting", {"text": "Hi there"}]]},
        dag,
    )

    # A version already there: picked up at once, without deferring.
    assert first["state"] == "success", first
    assert first["xcom"]["evaluate"] == ["greeting@1"]
    prompt_id = first["xcom"]["new_prompt_versions"][0]["prompt_id"]
    assert json.loads(first["variables"]["greeting_cursor"]) == {"prompts": {prompt_id: "1"}}
    # Nothing new: the sensor defers; the version pushed while its trigger waits is handed on, alone.
    assert second["state"] == "success", second
    assert airflow.output.count("running trigger in line") >= 1
    assert second["xcom"]["new_prompt_versions"] == [
        {
            "slug": "greeting",
            "version": "2",
            "prompt_id": prompt_id,
            "project": "default",
            "platform": "local",
            "key": "greeting@2",
        }
    ]
    assert second["xcom"]["evaluate"] == ["greeting@2"]
    ((classpath, stored),) = second["triggers"]  # what Airflow stored for the triggerer: ids, never a key
    assert classpath == "dagster_evals.airflow.triggers.PromptVersionTrigger"
    assert stored["conn_id"] == "evals_local" and stored["slugs"] == ["greeting"]
    assert json.loads(second["variables"]["greeting_cursor"]) == {"prompts": {prompt_id: "2"}}
    # Nothing new again: the sensor's timeout passes in the triggerer and the run is skipped, cursor unchanged.
    assert third["tasks"] == {"new_prompt_versions": "skipped", "evaluate": "skipped"}, third
    assert "new_prompt_versions" not in third["xcom"]
    assert third["variables"]["greeting_cursor"] == second["variables"]["greeting_cursor"]


TRIGGERS = """
import asyncio, json

from dagster_evals.airflow.triggers import KeywordsAIEvalRunTrigger, PlatformEvalTrigger, PromptVersionTrigger


async def first_event(trigger):
    async for event in trigger.run():
        return event.payload


triggers = {
    "down": PromptVersionTrigger("evals_down", {}, ["greeting"], poll_interval_s=0.05),
    "wrong_key": PromptVersionTrigger("evals_wrong_key", {}, ["greeting"], poll_interval_s=0.05),
    "missing": PromptVersionTrigger("evals_missing", {}, ["greeting"], poll_interval_s=0.05),
}
events = {name: asyncio.run(first_event(trigger)) for name, trigger in triggers.items()}
events["eval_run"] = asyncio.run(
    first_event(KeywordsAIEvalRunTrigger("evals_wrong_key", "ds-1", ["task-1"], poll_interval_s=0.05))
)
others = [
    KeywordsAIEvalRunTrigger("evals_wrong_key", "ds-1", ["task-1"], carry={"baseline": {"report_id": None}}),
    PlatformEvalTrigger("evals_wrong_key", {"name": "run", "metadata": {"suite": "s"}}, carry={}),
]
print("RESULT " + json.dumps({
    "events": events,
    "serialized": [list(t.serialize()) for t in [*triggers.values(), *others]],
    "reprs": [repr(t) for t in [*triggers.values(), *others]],
}, default=str))
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_trigger_that_cannot_read_the_platform_names_the_connection_and_no_trigger_holds_a_key(
    tmp_path: Path,
) -> None:
    wrong_key = "kw-wrong-key-9876543210"
    fake = KeywordsAIFake(api_keys=[KEYWORDSAI_KEY], rate_limit_per_minute=None)
    extra = {"max_retries": 0, "rate_limit_per_minute": None}
    with fake.serve() as server:
        env = {
            **os.environ,
            **airflow_env(tmp_path),
            "AIRFLOW_CONN_EVALS_DOWN": json.dumps(
                {
                    "conn_type": "dagster_evals_keywordsai",
                    "host": f"http://127.0.0.1:{closed_port()}",
                    "password": KEYWORDSAI_KEY,
                    "extra": {**extra, "timeout_s": 2},
                }
            ),
            "AIRFLOW_CONN_EVALS_WRONG_KEY": json.dumps(
                {
                    "conn_type": "dagster_evals_keywordsai",
                    "host": server.url,
                    "password": wrong_key,
                    "extra": extra,
                }
            ),
        }
        done = subprocess.run(
            [PYTHON, "-c", TRIGGERS], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))

    events = result["events"]
    for name, conn_id in (
        ("down", "evals_down"),
        ("wrong_key", "evals_wrong_key"),
        ("missing", "evals_missing"),
    ):
        assert events[name]["status"] == "error", events[name]
        message = events[name]["message"]
        assert message.startswith(f"cannot read new prompt versions through connection {conn_id!r}: ")
        assert "\n" not in message
    # A refused key points at the connection's password (not at an environment variable).
    assert events["wrong_key"]["message"].endswith(
        "refused the API key (HTTP 401): Your API key is invalid or expired, please check your API key at "
        "https://platform.keywordsai.co/platform/api/api-keys — put a valid key in the password of Airflow "
        "connection 'evals_wrong_key'"
    )
    assert "environment variable" not in events["wrong_key"]["message"]
    assert events["eval_run"]["status"] == "error" and events["eval_run"]["message"].startswith(
        "cannot read eval run ds-1:task-1 through connection 'evals_wrong_key': keywordsai "
    )
    assert "password of Airflow connection 'evals_wrong_key'" in events["eval_run"]["message"]
    assert "evals_missing" in events["missing"]["message"].split(": ", 1)[1]  # Airflow's own words
    everything = json.dumps(result) + done.stdout + done.stderr
    assert KEYWORDSAI_KEY not in everything and wrong_key not in everything
    for classpath, kwargs in result["serialized"]:
        assert classpath.startswith("dagster_evals.airflow.triggers.")
        assert kwargs["conn_id"].startswith("evals_")
