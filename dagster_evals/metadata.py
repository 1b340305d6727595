"""Materialization metadata for datasets, snapshots and eval reports.

Numbers are emitted as plain floats/ints so the Dagster UI plots them across materializations: one key
per scorer (`score/<scorer>`), plus counts, duration and latency percentiles.

The UI prints a float entry exactly as stored (a mean over 36 rows reads `0.7827160493827161`), so float
entries are stored rounded to `DISPLAY_DIGITS` significant digits, and every table and description prints
numbers by the same rule (`format_number`): one rounding rule wherever a number is shown. Gates never read
these entries (they decide on the report's exact means); the exact means, baseline means and diffs stay in
the report's `details` JSON entry (`scores_exact`) and on the platform.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import dagster as dg

from dagster_evals.engine.formatting import DISPLAY_DIGITS, display_float, format_number, rounded_for_display
from dagster_evals.engine.models import DatasetRow, EvalReport, Snapshot, SyncResult

__all__ = ["DISPLAY_DIGITS", "display_float", "format_number", "rounded_for_display"]

PREVIEW_ROWS = 5
PREVIEW_CHARS = 80


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
    return format_number(value, signed=signed)


_MARKDOWN_SPECIAL = "\\`*[]<>|"


def md_escape(text: str) -> str:
    """`text` as literal Markdown on one line: special characters backslash-escaped, line breaks as spaces
    (a scorer named `a|b` stays one table cell)."""
    flat = " ".join(str(text).splitlines()) if text else ""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in flat)


def report_markdown(report: EvalReport, *, baseline_note: str | None = None) -> str:
    """Markdown table of per-scorer means and diffs against the baseline (numbers by `format_number`)."""
    base = report.baseline_name or report.baseline_id
    if base:
        against = f", baseline {md_escape(base)}"
    else:
        against = f", {md_escape(baseline_note)}" if baseline_note else ", no baseline"
    lines = [
        f"**{md_escape(report.name)}** on {report.platform} — dataset version {report.dataset_version}, "
        f"{report.rows_scored}/{report.rows_in_snapshot} rows scored, {report.rows_errored} errored"
        + against,
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
    cost = (report.usage.get("total") or {}).get("cost_usd") if report.usage else None
    if cost is not None:
        lines += ["", f"Model cost: {format_number(float(cost), usd=True)} (USD)"]
    return "\n".join(lines)


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
