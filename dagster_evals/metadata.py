"""Materialization metadata for datasets, snapshots and eval reports.

Numbers are emitted as plain floats/ints so the Dagster UI plots them across materializations: one key
per scorer (`score/<scorer>`), plus counts, duration and latency percentiles.

The UI prints a float entry exactly as stored (a mean over 36 rows reads `0.7827160493827161`), so float
entries are stored rounded to `DISPLAY_DIGITS` significant digits: far below what a plot can show, and far
below what a mean over a sample means. Gates never read these entries (they decide on the report's exact
means); the exact means, baseline means and diffs stay in the report's `scores_full_precision` JSON entry
and on the platform.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from dagster_evals.models import DatasetRow, EvalReport, Snapshot, SyncResult
from dagster_evals.usage_report import usage_metadata

PREVIEW_ROWS = 5
PREVIEW_CHARS = 80
# An error cell of `rows_to_review` keeps more: the fix is usually at the end of the message.
ERROR_CHARS = 400
DISPLAY_DIGITS = 6


def display_float(value: float, digits: int = DISPLAY_DIGITS) -> float:
    """`value` rounded to `digits` significant digits, as a float entry should be stored for the UI.

    Example:
        >>> display_float(2 / 3), display_float(1234.56789), display_float(0.000123456789)
        (0.666667, 1234.57, 0.000123457)
    """
    if value != value or value in (float("inf"), float("-inf")):
        return value
    return float(f"{value:.{digits}g}")


def rounded_for_display(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """`metadata` with every plain float entry rounded by `display_float` (other entries unchanged).

    Example:
        >>> rounded_for_display({"score/em": 2 / 3, "rows": 3, "ok": True})
        {'score/em': 0.666667, 'rows': 3, 'ok': True}
    """
    return {key: display_float(v) if isinstance(v, float) else v for key, v in metadata.items()}


def _short(value: Any, limit: int = PREVIEW_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sync_metadata(result: SyncResult) -> dict[str, Any]:
    return {
        "dataset_id": result.dataset.id,
        "dataset_name": result.dataset.name,
        "dataset_project": result.dataset.project or "",
        "platform": result.dataset.platform,
        "dataset_version": result.version,
        **_version_number("dataset_version", result.version),
        "dagster/row_count": result.rows_total,
        "rows_total": result.rows_total,
        "rows_added": result.added,
        "rows_updated": result.updated,
        "rows_removed": result.removed,
        "rows_unchanged": result.unchanged,
        "rows_sent": result.rows_sent,
        **({"dataset_url": dg.MetadataValue.url(result.dataset.url)} if result.dataset.url else {}),
    }


def snapshot_metadata(snapshot: Snapshot, preview: Iterable[DatasetRow]) -> dict[str, Any]:
    records = [
        dg.TableRecord({"id": row.id, "input": _short(row.input), "expected": _short(row.expected)})
        for row in preview
    ]
    return {
        "dataset_id": snapshot.dataset.id,
        "dataset_name": snapshot.dataset.name,
        "dataset_project": snapshot.dataset.project or "",
        "platform": snapshot.dataset.platform,
        "snapshot_version": snapshot.version,
        **_version_number("snapshot_version", snapshot.version),
        **({"dataset_url": dg.MetadataValue.url(snapshot.dataset.url)} if snapshot.dataset.url else {}),
        "dagster/row_count": snapshot.row_count,
        "row_count": snapshot.row_count,
        "digest": snapshot.digest,
        "preview": dg.MetadataValue.table(
            records,
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("id", "string"),
                    dg.TableColumn("input", "string"),
                    dg.TableColumn("expected", "string"),
                ]
            ),
        ),
    }


_INTEGER = re.compile(r"^(0|[1-9][0-9]{0,17})$")


def _version_number(key: str, version: Any) -> dict[str, int]:
    """`{"<key>_number": n}` when a version is a plain integer (so the UI can plot it), else `{}`."""
    text = str(version) if version is not None else ""
    return {f"{key}_number": int(text)} if _INTEGER.match(text) else {}


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


_MARKDOWN_SPECIAL = "\\`*[]<>|"


def md_escape(text: str) -> str:
    """`text` as literal Markdown on one line: special characters backslash-escaped, line breaks as spaces
    (a scorer named `a|b` stays one table cell)."""
    flat = " ".join(str(text).splitlines()) if text else ""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in flat)


def report_markdown(report: EvalReport) -> str:
    """Markdown table of per-scorer means and diffs against the baseline."""
    base = report.baseline_name or report.baseline_id
    lines = [
        f"**{md_escape(report.name)}** on {report.platform} — dataset version {report.dataset_version}, "
        f"{report.rows_scored}/{report.rows_in_snapshot} rows scored, {report.rows_errored} errored"
        + (f", baseline {md_escape(base)}" if base else ", no baseline"),
        "",
        "| scorer | mean | baseline | diff | improved rows | regressed rows | scorer errors | skipped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for summary in report.scores.values():
        lines.append(
            f"| {md_escape(summary.name)} | {_fmt(summary.mean)} | {_fmt(summary.baseline_mean)} | "
            f"{_fmt(summary.diff, signed=True)} | {summary.improvements} | {summary.regressions} | {summary.errors} | "
            f"{summary.skipped} |"
        )
    return "\n".join(lines)


def report_metadata(report: EvalReport, snapshot: Snapshot | None = None) -> dict[str, Any]:
    """Metadata of an eval report materialization, `score/*` first (the UI lists and plots in this order).

    Float entries are rounded to `DISPLAY_DIGITS` significant digits (what the UI shows and plots); the
    Markdown `summary` shows 4 decimals; `scores_full_precision` keeps each scorer's exact mean, baseline
    mean and diff.

    Example:
        >>> from dagster_evals.models import EvalReport, ScoreSummary
        >>> report = EvalReport(id="r", name="r", platform="local",
        ...                     scores={"em": ScoreSummary(name="em", mean=2 / 3, count=3)})
        >>> metadata = report_metadata(report)
        >>> metadata["score/em"], metadata["scores_full_precision"].data["em"]["mean"] == 2 / 3
        (0.666667, True)
    """
    metadata: dict[str, Any] = {}
    for name, summary in report.scores.items():
        if summary.mean is not None:
            metadata[f"score/{name}"] = float(summary.mean)
    metadata.update(
        {
            "rows_scored": report.rows_scored,
            "rows_errored": report.rows_errored,
            "summary": dg.MetadataValue.md(report_markdown(report)),
        }
    )
    if report.url:
        metadata["experiment_url"] = dg.MetadataValue.url(report.url)
    if report.dataset is not None and report.dataset.url:
        metadata["dataset_url"] = dg.MetadataValue.url(report.dataset.url)
    if report.project_url:
        metadata["project_url"] = dg.MetadataValue.url(report.project_url)
    for name, summary in report.scores.items():
        if summary.diff is not None:
            metadata[f"diff/{name}"] = float(summary.diff)
    for name, summary in report.scores.items():
        if summary.skipped:  # results the scorer skipped (returned None): not in its mean, not errors
            metadata[f"skipped/{name}"] = summary.skipped
    metadata.update(
        {
            "report_id": report.id,
            "report_name": report.name,
            "platform": report.platform,
            "status": report.status,
            "rows_in_snapshot": report.rows_in_snapshot,
            "task_errors": report.task_errors,
            "scorer_errors": report.scorer_errors,
            "trial_count": report.trial_count,
        }
    )
    for name, value in report.metrics.items():
        metadata[name] = float(value)
    metadata.update(usage_metadata(report.usage))
    if report.dataset_version is not None:
        metadata["dataset_version"] = report.dataset_version
        metadata.update(_version_number("dataset_version", report.dataset_version))
    if report.dataset is not None:
        metadata["dataset_id"] = report.dataset.id
        metadata["dataset_name"] = report.dataset.name
    if snapshot is not None:
        metadata["dataset_digest"] = snapshot.digest
    if report.baseline_id:
        metadata["baseline_id"] = report.baseline_id
    metadata["scores_full_precision"] = dg.MetadataValue.json(exact_scores(report))
    return rounded_for_display(metadata)


def exact_scores(report: EvalReport) -> dict[str, dict[str, float]]:
    """Each scorer's mean, baseline mean and diff at full precision (the entries that are set)."""
    return {
        name: {
            key: float(value)
            for key, value in (
                ("mean", summary.mean),
                ("baseline_mean", summary.baseline_mean),
                ("diff", summary.diff),
            )
            if value is not None
        }
        for name, summary in report.scores.items()
    }


ROW_TABLE_LIMIT = 10


def row_changes_metadata(
    report: EvalReport,
    row_scores: Mapping[str, Mapping[str, float]],
    baseline_scores: Mapping[str, Mapping[str, float]],
    errors: Mapping[str, str],
    *,
    limit: int = ROW_TABLE_LIMIT,
) -> dict[str, Any]:
    """A `rows_to_review` table: errored rows, then rows whose score dropped most against the baseline.

    Each record names the row id, the scorer, the score and baseline score, the drop, the error (if any)
    and a link to the experiment on the platform when it has a URL. Empty input gives no table.

    Example:
        >>> from dagster_evals.models import EvalReport
        >>> report = EvalReport(id="r", name="r", platform="local")
        >>> table = row_changes_metadata(report, {"q1": {"em": 0.0}}, {"q1": {"em": 1.0}}, {})
        >>> [r.data["row_id"] for r in table["rows_to_review"].records]
        ['q1']
    """
    records: list[dict[str, Any]] = []
    for row_id, error in sorted(errors.items()):
        records.append(
            {"row_id": row_id, "change": "errored", "scorer": "", "error": _short(error, ERROR_CHARS)}
        )
    drops: list[tuple[float, str, str, float, float]] = []
    for row_id, scores in row_scores.items():
        base = baseline_scores.get(row_id)
        if not base:
            continue
        for scorer, value in scores.items():
            before = base.get(scorer)
            if before is not None and value < before:
                drops.append((before - value, row_id, scorer, value, before))
    drops.sort(key=lambda d: (-d[0], d[1], d[2]))
    for drop, row_id, scorer, value, before in drops:
        records.append(
            {
                "row_id": row_id,
                "change": "regressed",
                "scorer": scorer,
                "score": round(value, 4),
                "baseline": round(before, 4),
                "drop": round(drop, 4),
                "error": "",
            }
        )
    if not records:
        return {}
    shown = records[:limit]
    columns = [
        dg.TableColumn("row_id", "string"),
        dg.TableColumn("change", "string"),
        dg.TableColumn("scorer", "string"),
        dg.TableColumn("score", "float"),
        dg.TableColumn("baseline", "float"),
        dg.TableColumn("drop", "float"),
        dg.TableColumn("error", "string"),
    ]
    if report.url:
        columns.append(dg.TableColumn("link", "string"))
    table_records = [
        dg.TableRecord(
            {
                **{c.name: record.get(c.name) for c in columns if c.name != "link"},
                **({"link": report.url} if report.url else {}),
            }
        )
        for record in shown
    ]
    return {
        "rows_regressed": len(drops),
        "rows_to_review": dg.MetadataValue.table(table_records, schema=dg.TableSchema(columns=columns)),
    }


def as_number(version: str | None) -> int | float | None:
    """A version as a number when it is one (`"3"` → 3, `"1.5"` → 1.5), else None."""
    if version is None:
        return None
    try:
        number = float(version)
    except (TypeError, ValueError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return int(number) if number.is_integer() else number


def lineage_metadata(
    *, dataset_version: str | None, prompt_version: str | None, git_sha: str | None
) -> dict[str, Any]:
    """`lineage/*` entries: dataset version, prompt version and git commit of a report (numbers as numbers).

    Example:
        >>> sorted(lineage_metadata(dataset_version="3", prompt_version=None, git_sha="abc").items())
        [('lineage/dataset_version', 3), ('lineage/git_sha', 'abc')]
    """
    entries: dict[str, Any] = {}
    for name, value in (("dataset_version", dataset_version), ("prompt_version", prompt_version)):
        if value is not None:
            number = as_number(value)
            entries[f"lineage/{name}"] = number if number is not None else str(value)
    if git_sha:
        entries["lineage/git_sha"] = git_sha
    return entries
