"""Airflow DAGs of the support-bot example: the Dagster example (`definitions.py`) on Airflow.

- `support_bot_evals`: sync data/support_bot.jsonl into a dataset → pin a snapshot → run the bot over it and
  score it → gate (thresholds, no regression against the last passing report, completeness) →
  `approve_release`, which runs only when the gate passed.
- `support_bot_prompt_versions`: every new version of the prompt `support_bot_system` is evaluated once
  (a sensor hands the new versions to an eval mapped over them) and gated per version.
- `support_bot_releases`: every new release tag (`v*`) of this repository (or `$SUPPORT_BOT_RELEASE_REPO`)
  evaluated once and gated per release.
- `support_bot_logs`: the logs already on Keywords AI (a dataset sampled from production) scored by the
  platform's evaluators, waiting for the eval run in the triggerer (deferrable), then gated.

The backend is the Airflow connection `$SUPPORT_BOT_EVALS_CONN` (default `evals_local`, the embedded
database: `AIRFLOW_CONN_EVALS_LOCAL='{"conn_type": "dagster_evals_local"}'`).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dagster_evals.airflow import (  # noqa: E402
    EvalGateOperator,
    NewPromptVersionsSensor,
    NewReleasesSensor,
    PinSnapshotOperator,
    RunEvalOperator,
    SyncDatasetOperator,
)
from dagster_evals.engine.models import PlatformFunction  # noqa: E402
from example.support_bot_evals import (  # noqa: E402
    SCORERS,
    THRESHOLDS,
    support_bot_task,
    support_bot_with_prompt,
)

CONN_ID = os.environ.get("SUPPORT_BOT_EVALS_CONN", "evals_local")
ROWS = Path(os.environ.get("SUPPORT_BOT_ROWS", ROOT / "data" / "support_bot.jsonl"))
START = datetime(2026, 1, 1)


def synced_snapshot(after: Any = None) -> PinSnapshotOperator:
    """Sync data/support_bot.jsonl into the `support_bot` dataset (after the task `after`, if given) and
    pin a snapshot of it, in the DAG being defined; returns the pin task, whose output is the snapshot."""
    sync = SyncDatasetOperator(
        task_id="sync_dataset", conn_id=CONN_ID, dataset_name="support_bot", source=ROWS, key_field="id"
    )
    if after is not None:
        after >> sync
    return PinSnapshotOperator(task_id="pin_snapshot", conn_id=CONN_ID, sync_result=sync.output)


def gated_eval_per_item(
    new_items: NewPromptVersionsSensor | NewReleasesSensor, suite: str, task: Any, expand: str
) -> None:
    """Once the sensor hands over new items (prompt versions or releases): sync and pin the rows, run one
    eval per item (`expand` names the operator's argument the item goes to) and gate each one."""
    pin = synced_snapshot(after=new_items)
    evals = RunEvalOperator.partial(
        task_id="run_eval",
        conn_id=CONN_ID,
        suite=suite,
        snapshot=pin.output,
        task=task,
        scorers=SCORERS,
        tags=["example", suite.removeprefix("support_bot_")],
    ).expand(**{expand: new_items.output})
    EvalGateOperator.partial(task_id="gate", conn_id=CONN_ID, thresholds=THRESHOLDS).expand(
        summary=evals.output
    )


with DAG(
    "support_bot_evals",
    description="Evaluate the support bot and approve the release when the gate passes.",
    schedule="@daily",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=["evals", "example"],
) as support_bot_evals:
    pin = synced_snapshot()
    run_eval = RunEvalOperator(
        task_id="run_eval",
        conn_id=CONN_ID,
        suite="support_bot",
        snapshot=pin.output,
        task=support_bot_task,
        scorers=SCORERS,
        max_concurrency=8,
        baseline_from="gate",
        tags=["example"],
    )
    gate = EvalGateOperator(
        task_id="gate",
        conn_id=CONN_ID,
        summary=run_eval.output,
        thresholds=THRESHOLDS,
        max_regression=0.05,
        max_errored_rows=0,
    )

    @task
    def approve_release(verdict: dict[str, Any]) -> dict[str, Any]:
        """Marks the support bot as releasable. Runs only when the gate passed."""
        print(f"eval report {verdict['report_id']} passed its gate: the support bot is approved for release")
        return {"approved": True, "report_id": verdict["report_id"]}

    approve_release(gate.output)


with DAG(
    "support_bot_prompt_versions",
    description="Evaluate each new version of the support bot's system prompt once, and gate it.",
    schedule="*/15 * * * *",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=["evals", "example"],
) as support_bot_prompt_versions:
    new_versions = NewPromptVersionsSensor(
        task_id="new_prompt_versions",
        conn_id=CONN_ID,
        prompt_slugs=["support_bot_system"],
        poke_interval=30,
        timeout=60,
        soft_fail=True,  # no new version: the run is skipped
    )
    gated_eval_per_item(new_versions, "support_bot_versions", support_bot_with_prompt, expand="prompt")


with DAG(
    "support_bot_releases",
    description="Evaluate each new release of the support bot once, and gate it.",
    schedule="@hourly",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    tags=["evals", "example"],
) as support_bot_releases:
    new_releases = NewReleasesSensor(
        task_id="new_releases",
        repo=os.environ.get("SUPPORT_BOT_RELEASE_REPO", str(ROOT)),
        tag_pattern="v*",
        poke_interval=60,
        timeout=120,
        soft_fail=True,  # no new release: the run is skipped
    )
    gated_eval_per_item(new_releases, "support_bot_releases", support_bot_task, expand="release")


with DAG(
    "support_bot_logs",
    description="Score the support bot's sampled production logs with Keywords AI evaluators (deferrable).",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["evals", "example", "keywordsai"],
) as support_bot_logs:
    logs_pin = PinSnapshotOperator(
        task_id="pin_snapshot",
        conn_id=os.environ.get("SUPPORT_BOT_LOGS_CONN", "evals_keywordsai"),
        dataset_name="support-bot-prod-sample",
    )
    logs_eval = RunEvalOperator(
        task_id="run_eval",
        conn_id=os.environ.get("SUPPORT_BOT_LOGS_CONN", "evals_keywordsai"),
        suite="support_bot_logs",
        snapshot=logs_pin.output,
        task=None,
        scorers=[PlatformFunction(platform="keywordsai", name="char_count_eval")],
        deferrable=True,
        poll_interval_s=1.0,
    )
    EvalGateOperator(
        task_id="gate",
        conn_id=os.environ.get("SUPPORT_BOT_LOGS_CONN", "evals_keywordsai"),
        summary=logs_eval.output,
        max_errored_rows=0,
    )
