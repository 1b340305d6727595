"""What the Airflow tasks hand each other through XCom (small JSON), and the Airflow Assets they update.

- A sync task returns its `SyncResult` (dataset, version, row counts).
- A snapshot task returns the pinned `Snapshot` (dataset, version, row count, digest).
- An eval task returns the report summary: scores (mean, count, baseline mean, diff, rows improved and
  regressed), row counts, the baseline it was compared with, the report's URL, and the `attempt` (the try
  number, and the row trials read back from earlier tries' checkpoints or scored by this one) — never rows,
  outputs or keys, so it stays a few hundred bytes per scorer.
- The gate reads that summary back into an `EvalReport` and applies the shared gate rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset

from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.gates import Baseline
from dagster_evals.engine.models import EvalReport, ScoreSummary, Snapshot

ASSET_SCHEME = "dagster-evals"
_SUMMARY_FIELDS = (
    "id",
    "name",
    "platform",
    "status",
    "dataset_version",
    "rows_in_snapshot",
    "trial_count",
    "rows_scored",
    "rows_errored",
    "task_errors",
    "scorer_errors",
    "baseline_id",
    "baseline_name",
    "url",
    "dataset",
)
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def _segment(value: str) -> str:
    return _SAFE.sub("_", value) or "_"


def dataset_asset(conn_id: str, dataset_name: str) -> Asset:
    """The Airflow Asset of a platform dataset: updated by its sync task; asset-aware DAGs run on it."""
    return Asset(
        name=f"evals/{conn_id}/{dataset_name}",
        uri=f"{ASSET_SCHEME}://{_segment(conn_id)}/datasets/{_segment(dataset_name)}",
        group="dagster-evals",
    )


def report_asset(conn_id: str, suite: str) -> Asset:
    """The Airflow Asset of a suite's eval reports: updated by each eval task of the suite."""
    return Asset(
        name=f"evals/{conn_id}/{suite}/eval_report",
        uri=f"{ASSET_SCHEME}://{_segment(conn_id)}/eval_reports/{_segment(suite)}",
        group="dagster-evals",
    )


def snapshot_from_xcom(value: Any, where: str) -> Snapshot:
    """The `Snapshot` a snapshot task returned (a clear error for anything else)."""
    if isinstance(value, Snapshot):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: expected the return value of a snapshot task, got {type(value).__name__}"
        )
    try:
        return Snapshot.model_validate(dict(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: not a snapshot ({exc})") from None


def report_summary(report: EvalReport, baseline: Baseline) -> dict[str, Any]:
    """The XCom summary of a report (see the module docstring)."""
    summary: dict[str, Any] = report.model_dump(mode="json", include=set(_SUMMARY_FIELDS))
    summary["scores"] = {
        name: score.model_dump(mode="json", exclude={"name"}) for name, score in report.scores.items()
    }
    summary["baseline"] = {
        "report_id": baseline.report_id,
        "note": baseline.note,
        "failure": baseline.failure,
    }
    return summary


def report_from_summary(summary: Any, where: str) -> tuple[EvalReport, Baseline]:
    """The report and baseline an eval task's summary describes."""
    if not isinstance(summary, Mapping) or "scores" not in summary or "id" not in summary:
        raise ConfigError(f"{where}: expected the return value of an eval task, got {summary!r:.200}")
    fields = {field: summary[field] for field in _SUMMARY_FIELDS if summary.get(field) is not None}
    try:
        scores = {
            name: ScoreSummary.model_validate({**dict(values), "name": name})
            for name, values in dict(summary["scores"]).items()
        }
        report = EvalReport.model_validate({**fields, "scores": scores})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: not an eval task's summary ({exc})") from None
    recorded = summary.get("baseline") or {}
    baseline = Baseline(
        report_id=recorded.get("report_id"),
        note=str(recorded.get("note") or "no baseline"),
        failure=recorded.get("failure"),
    )
    return report, baseline


def try_number_of(context: Any) -> int:
    """The task instance's try number (1 on the first try, 2 on the first retry, ...)."""
    number = getattr(context.get("ti"), "try_number", None)
    return number if isinstance(number, int) and not isinstance(number, bool) and number > 0 else 1


def attempt(try_number: int, report: EvalReport, checkpoints: Any = None) -> dict[str, int]:
    """The summary's `attempt`: which try produced the report, how many row trials it read back from the
    checkpoints of earlier tries (`checkpoints`: the run's `RowCheckpoints`, or None) and how many it scored."""
    return {
        "try_number": try_number,
        "rows_from_checkpoints": checkpoints.replayed if checkpoints is not None else 0,
        "rows_scored_now": checkpoints.recorded if checkpoints is not None else report.rows_scored,
    }
