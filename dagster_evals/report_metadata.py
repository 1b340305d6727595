"""The eval report's materialization metadata: few entries, one name per fact, plotted only where it varies.

What the Dagster UI shows for a report, in order:

- plotted numbers (they vary from run to run): `score/<scorer>`, `diff/<scorer>` (with a baseline),
  `rows_scored`, `rows_errored`, `rows_in_snapshot`, `rows_regressed` (rows, not (row, scorer) pairs),
  `duration_s`, `latency_p50_ms`, `latency_p95_ms` (and a platform's own metrics), and with model calls
  `tokens_total`, `cost_usd`, `model_calls`;
- reading: `summary` (per-scorer table), `rows_to_review` (the worst rows and the regressed rows with their
  input, output, expected value, scores and reasons, each headed "N of M"), `html_report` (every row, local
  backend), `experiment_url` (the platform's own view);
- links and identity: `report_id`, `dagster_run_id` (a run link), `baseline_id` and `baseline_run`,
  `dataset_asset`, `dataset_version`, `prompt_version`, `release_tag`, `git_commit`, `partition`,
  `gate_passed`;
- everything else (constants and details) in one JSON entry, `details`.

Numbers follow one rounding rule (`metadata.display_float`, 4 significant digits) in every entry, table
and description; the exact means stay in `details`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_evals.engine.errors import DagsterEvalsError
from dagster_evals.engine.git import repo_info
from dagster_evals.engine.models import EvalReport
from dagster_evals.engine.review import REVIEW_ROWS, Review, ReviewedRow, review_report
from dagster_evals.engine.usage_report import usage_metadata
from dagster_evals.metadata import (
    exact_scores,
    format_number,
    md_escape,
    report_markdown,
    rounded_for_display,
)
from dagster_evals.translator import suite_asset_spec

if TYPE_CHECKING:
    from dagster_evals.backends.base import EvalPlatform
    from dagster_evals.eval_step import SuiteEvalRun
    from dagster_evals.suite import EvalSuite

StepContext = dg.AssetExecutionContext | dg.OpExecutionContext

# Plotted usage entries (the per-scope breakdown goes to `details`).
PLOTTED_USAGE = {"tokens/total": "tokens_total", "cost_usd": "cost_usd", "model_calls": "model_calls"}


def gate_verdict(checks: Sequence[dg.AssetCheckResult]) -> tuple[bool, list[str]]:
    """Whether every check passed, and the names of those that failed."""
    failed = [str(check.check_name) for check in checks if not check.passed]
    return not failed, failed


def observed_prompt_version(instance: dg.DagsterInstance, suite: EvalSuite) -> str | None:
    """The prompt version last observed on the suite's prompt asset, or None."""
    if suite.prompt is None:
        return None
    key = suite_asset_spec(suite, "prompt").key
    record = instance.get_latest_data_version_record(key, is_source=True)
    if record is None or record.asset_observation is None:
        return None
    return record.asset_observation.tags.get("dagster/data_version")


def _cell(text: str) -> str:
    return md_escape(text) if text else "–"


def _score_cell(row: ReviewedRow, scorer: str) -> str:
    now = row.scores.get(scorer)
    before = row.baseline.get(scorer)
    if before is not None:
        return f"{format_number(before)} → {format_number(now) if now is not None else '–'}"
    return format_number(now) if now is not None else "–"


def _reason_cell(row: ReviewedRow) -> str:
    parts = [f"{name}: {text}" for name, text in row.reasons.items()]
    if row.error:
        parts.insert(0, f"error: {row.error}")
    return md_escape("; ".join(parts)) if parts else "–"


def _rows_table(rows: Sequence[ReviewedRow], scorers: Sequence[str], with_values: bool) -> list[str]:
    head = ["row", *(["input", "output", "expected"] if with_values else []), *scorers, "reason / error"]
    lines = [
        "| " + " | ".join(md_escape(h) for h in head) + " |",
        "|" + "|".join("---:" if h in scorers else "---" for h in head) + "|",
    ]
    for row in rows:
        values = [_cell(row.input), _cell(row.output), _cell(row.expected)] if with_values else []
        cells = [md_escape(row.row_id), *values, *(_score_cell(row, s) for s in scorers), _reason_cell(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def review_markdown(report: EvalReport, review: Review) -> str:
    """The `rows_to_review` entry: the worst rows, then (with a baseline) the regressed rows."""
    scorers = list(report.scores)
    lines = [
        f"**Rows to review: {len(review.to_review)} of {review.rows_to_review}** "
        f"(errored or below 1 on a scorer, of {review.rows_total} rows; errored first, then lowest scores)",
        "",
    ]
    if review.to_review:
        lines += _rows_table(review.to_review, scorers, review.has_outputs)
    elif review.rows_total == 0 and report.rows_scored + report.rows_errored > 0:
        lines.append(f"{report.platform} gave no per-row results for this report.")
    else:
        lines.append("Every row scored 1 on every scorer.")
    if not review.has_outputs and report.rows_errored:
        lines += ["", f"{report.rows_errored} errored rows are listed on {report.platform} (not here)."]
    if review.compared:
        lines += [
            "",
            f"**Regressed rows: {len(review.regressed)} of {review.rows_regressed}** (baseline → now, biggest "
            f"drop first; {review.pairs_regressed} (row, scorer) pairs fell)",
            "",
        ]
        if review.regressed:
            lines += _rows_table(review.regressed, scorers, review.has_outputs)
        else:
            lines.append("No row scored lower than in the baseline.")
    if report.url:
        lines += ["", f"Every row on {report.platform}: {report.url}"]
    return "\n".join(lines)


def _review(context: StepContext, platform: EvalPlatform, report: EvalReport) -> Review | None:
    try:  # streamed: memory bounded by the tables' length, not the report's rows
        return review_report(platform, report, REVIEW_ROWS)
    except DagsterEvalsError as exc:
        context.log.warning(f"could not list the rows to review on {platform.platform}: {exc}")
        return None


def _lineage(context: StepContext, suite: EvalSuite, run: SuiteEvalRun) -> dict[str, Any]:
    """Prompt version, release tag and git commit of the report (the ones that are known)."""
    trigger = run.trigger
    entries: dict[str, Any] = {}
    prompt_version = trigger.prompt.version if trigger.prompt is not None else None
    if prompt_version is None:
        prompt_version = observed_prompt_version(context.instance, suite)
    if prompt_version is not None:
        entries["prompt_version"] = str(prompt_version)
    if trigger.release is not None:
        entries["release_tag"] = trigger.release.tag
    commit = trigger.release.commit if trigger.release is not None and trigger.release.commit else None
    if commit is None and suite.git_repo is not None:
        commit = (repo_info(suite.git_repo) or {}).get("commit")
    if commit:
        entries["git_commit"] = str(commit)
    return entries


def eval_report_metadata(
    context: StepContext,
    suite: EvalSuite,
    platform: EvalPlatform,
    run: SuiteEvalRun,
    checks: Sequence[dg.AssetCheckResult],
    *,
    extra_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata of an eval report materialization (see the module docstring)."""
    from dagster_evals.html_report import write_html_report

    report = run.report
    passed, failed = gate_verdict(checks)
    review = _review(context, platform, report)
    plotted: dict[str, Any] = {}
    for name, summary in report.scores.items():
        if summary.mean is not None:
            plotted[f"score/{name}"] = float(summary.mean)
    for name, summary in report.scores.items():
        if summary.diff is not None:
            plotted[f"diff/{name}"] = float(summary.diff)
    for name, summary in report.scores.items():
        if summary.skipped:  # results the scorer skipped (returned None): not in its mean, not errors
            plotted[f"skipped/{name}"] = summary.skipped
    plotted.update(
        rows_scored=report.rows_scored,
        rows_errored=report.rows_errored,
        rows_in_snapshot=report.rows_in_snapshot,
    )
    if review is not None and review.compared:
        plotted["rows_regressed"] = review.rows_regressed
    # Timings and the platform's own numbers (e.g. Braintrust's duration and token metrics) vary per run.
    plotted.update({name: float(value) for name, value in report.metrics.items()})
    usage = usage_metadata(report.usage)
    plotted.update({new: usage[old] for old, new in PLOTTED_USAGE.items() if old in usage})
    metadata: dict[str, Any] = {**rounded_for_display(plotted)}
    if usage.get("budget_stop"):
        metadata["budget_stop"] = usage["budget_stop"]
    metadata["summary"] = dg.MetadataValue.md(report_markdown(report, baseline_note=run.baseline.note))
    if review is not None:
        metadata["rows_to_review"] = dg.MetadataValue.md(review_markdown(report, review))
    html = write_html_report(context, platform, report)
    if html is not None:
        metadata["html_report"] = dg.MetadataValue.path(str(html))
    if report.url:
        metadata["experiment_url"] = dg.MetadataValue.url(report.url)
    metadata["report_id"] = report.id
    metadata["dagster_run_id"] = dg.MetadataValue.dagster_run(context.run_id)
    if report.baseline_id:
        metadata["baseline_id"] = report.baseline_id
        if run.baseline.run_id:
            metadata["baseline_run"] = dg.MetadataValue.dagster_run(run.baseline.run_id)
    metadata["dataset_asset"] = dg.MetadataValue.asset(suite.dataset_key)
    if report.dataset_version is not None:
        metadata["dataset_version"] = str(report.dataset_version)
    metadata.update(_lineage(context, suite, run))
    if context.has_partition_key:
        metadata["partition"] = context.partition_key
    metadata["gate_passed"] = passed
    details = report_details(report, run, failed, review, usage)
    details.update(extra_details or {})
    metadata["details"] = dg.MetadataValue.json(details)
    return metadata


def report_details(
    report: EvalReport,
    run: SuiteEvalRun,
    failed_checks: Sequence[str],
    review: Review | None,
    usage: dict[str, Any],
) -> dict[str, Any]:
    """The `details` JSON entry: what does not vary from run to run, or is read rather than plotted."""
    snapshot = run.snapshot
    upstream = run.snapshot_upstream
    details: dict[str, Any] = {
        "platform": report.platform,
        "report_name": report.name,
        "status": report.status,
        "gate": "passed" if not failed_checks else "FAILED: " + ", ".join(failed_checks),
        "failed_checks": list(failed_checks),
        "baseline": run.baseline.note,
        "trial_count": report.trial_count,
        "task_errors": report.task_errors,
        "scorer_errors": report.scorer_errors,
        "scores_exact": exact_scores(report),
        "dataset": {
            "id": snapshot.dataset.id,
            "name": snapshot.dataset.name,
            "version": snapshot.version,
            "digest": snapshot.digest,
            "rows": snapshot.row_count,
            "pinned_from": upstream.source,
            "pinned_from_run_id": upstream.run_id,
            **({"url": report.dataset.url} if report.dataset is not None and report.dataset.url else {}),
        },
    }
    if review is not None and review.compared:
        details["pairs_regressed"] = review.pairs_regressed
    if report.project_url:
        details["project_url"] = report.project_url
    unplotted_usage = {k: v for k, v in usage.items() if k not in PLOTTED_USAGE and k != "budget_stop"}
    if unplotted_usage:
        details["usage"] = unplotted_usage
    prompt = run.trigger.prompt
    if prompt is not None:
        details["prompt"] = {"slug": prompt.slug, "id": prompt.prompt_id, "version": prompt.version}
    return details
