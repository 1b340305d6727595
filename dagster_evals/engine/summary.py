"""Aggregating row results into an `EvalReport`: per-scorer means, errors, latencies, baseline diffs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dagster_evals.engine.models import (
    DatasetRef,
    EvalReport,
    EvalRequest,
    PlatformName,
    RowResult,
    ScoreSummary,
)
from dagster_evals.engine.report_spill import ResultSpill
from dagster_evals.engine.stats import percentile  # noqa: F401  (importable from here as before)
from dagster_evals.engine.usage import TASK_SCOPE
from dagster_evals.engine.usage_report import UsageTotals

# A per-row score moving by more than this counts as an improvement / regression.
ROW_CHANGE_EPSILON = 1e-9
LATENCY = "latency"
JUDGE_LATENCY = "judge_latency"
# A baseline's scores: row means by row id, or `(row id, scores)` per result (averaged per row).
BaselineScores = Mapping[str, Mapping[str, float]] | Iterable[tuple[str, Mapping[str, float | None]]]


class ReportBuilder:
    """Accumulates `RowResult`s (streaming, one at a time) and builds the report at the end.

    Memory stays bounded however many rows the eval has: counts and sums are kept as numbers, and the
    per-row values (scores for the per-row means and the baseline diffs, rows seen and errored,
    latencies for the percentiles) go to a temporary SQLite file (see `dagster_evals.engine.report_spill`). The
    report is exact and equals one computed from in-memory lists. `build` ends the builder.

    Example:
        >>> from dagster_evals.engine.models import RowResult
        >>> builder = ReportBuilder(["exact_match"])
        >>> builder.add(RowResult(row_id="q1", scores={"exact_match": 1.0}, latency_s=0.1))
        >>> builder.add(RowResult(row_id="q2", scores={"exact_match": 0.0}, latency_s=0.3))
        >>> report = builder.build(id="r", name="r", platform="local", dataset=None, dataset_version=None,
        ...                        rows_in_snapshot=2, trial_count=1, duration_s=1.0)
        >>> report.scores["exact_match"].mean, report.rows_scored, report.metrics["latency_p50_ms"]
        (0.5, 2, 100.0)
    """

    def __init__(self, scorer_names: Iterable[str]) -> None:
        self.scorer_names = list(scorer_names)
        self._spill = ResultSpill()
        self._scorer_errors: dict[str, int] = defaultdict(int)
        self._skipped: dict[str, int] = defaultdict(int)
        self._task_errors = 0
        self._scorer_error_count = 0
        self._usage = UsageTotals()
        self._judge_latencies = 0

    def add(self, result: RowResult) -> None:
        if result.usage:
            self._usage.add(self._spill_judge_latencies(result.usage), result.error)
        errored = result.error is not None
        self._spill.add_result(
            result.row_id,
            errored or bool(result.scorer_errors),
            None if errored else result.scores,
            (LATENCY, result.latency_s) if result.latency_s is not None and not errored else None,
        )
        if errored:
            self._task_errors += 1
            return
        for name, value in result.scores.items():
            if value is None and name not in result.scorer_errors:  # the scorer skipped this row
                self._skipped[name] += 1
        for name in result.scorer_errors:
            self._scorer_errors[name] += 1
            self._scorer_error_count += 1

    def _spill_judge_latencies(self, row_usage: dict[str, Any]) -> dict[str, Any]:
        """The row's usage without its per-call latencies; the judges' go to the spill (for percentiles)."""
        scopes = row_usage.get("scopes")
        if not scopes:
            return row_usage
        stripped: dict[str, Any] = {}
        for name, values in scopes.items():
            if name != TASK_SCOPE:
                for latency in values.get("latencies_s") or ():
                    self._spill.add_sample(JUDGE_LATENCY, float(latency))
                    self._judge_latencies += 1
            stripped[name] = {k: v for k, v in values.items() if k != "latencies_s"}
        return {**row_usage, "scopes": stripped}

    def add_baseline(self, row_scores: BaselineScores) -> None:
        """The baseline's scores: row means by row id, or `(row id, scores)` per result (one per trial,
        averaged per row). Streamed to the spill, never held in memory; call before `build`."""
        items: Iterable[tuple[str, Mapping[str, float | None]]] = (
            row_scores.items() if isinstance(row_scores, Mapping) else row_scores  # type: ignore[assignment]
        )
        for row_id, scores in items:
            self._spill.add_scores("baseline", row_id, scores)

    def iter_row_means(self) -> Iterator[tuple[str, dict[str, float]]]:
        """`(row id, {scorer: mean score over trials})`, streamed, rows in the order they were first scored."""
        return self._spill.row_means("current")

    def row_means(self) -> dict[str, dict[str, float]]:
        """Mean score per row and scorer (averaged over trials), as one dict (holds every row)."""
        return dict(self.iter_row_means())

    def build_for(
        self, request: EvalRequest, *, id: str, platform: PlatformName, duration_s: float, **fields: Any
    ) -> EvalReport:
        """`build` with the name, snapshot, trial count, baseline, metadata and tags taken from `request`
        (any of them can be overridden in `fields`)."""
        derived: dict[str, Any] = {
            "name": request.name,
            "dataset": request.snapshot.dataset,
            "dataset_version": request.snapshot.version,
            "rows_in_snapshot": request.snapshot.row_count,
            "trial_count": request.trial_count,
            "baseline_id": request.baseline_id,
            "metadata": request.metadata,
            "tags": request.tags,
        }
        return self.build(id=id, platform=platform, duration_s=duration_s, **(derived | fields))

    def build(
        self,
        *,
        id: str,
        name: str,
        platform: PlatformName,
        dataset: DatasetRef | None,
        dataset_version: str | None,
        rows_in_snapshot: int,
        trial_count: int,
        duration_s: float,
        baseline_id: str | None = None,
        baseline_name: str | None = None,
        baseline_row_scores: BaselineScores | None = None,
        url: str | None = None,
        project_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
    ) -> EvalReport:
        try:
            return self._build(
                baseline_row_scores,
                id=id, name=name, platform=platform, dataset=dataset, dataset_version=dataset_version,
                rows_in_snapshot=rows_in_snapshot, trial_count=trial_count, baseline_id=baseline_id,
                baseline_name=baseline_name, url=url, project_url=project_url,
                metadata=dict(metadata or {}), tags=list(tags), duration_s=duration_s,
            )  # fmt: skip
        finally:
            self._spill.close()

    def _build(
        self, baseline_row_scores: BaselineScores | None, *, duration_s: float, **fields: Any
    ) -> EvalReport:
        if baseline_row_scores:
            self.add_baseline(baseline_row_scores)
        compared = self._spill.has_scores("baseline")
        means = self._spill.scorer_means("current", self.scorer_names)
        base_means = self._spill.scorer_means("baseline", self.scorer_names) if compared else {}
        changes = self._spill.changes(ROW_CHANGE_EPSILON) if compared else {}
        summaries: dict[str, ScoreSummary] = {}
        for scorer in self.scorer_names:
            mean, count = means[scorer]
            baseline_mean = base_means[scorer][0] if compared else None
            improvements, regressions = changes.get(scorer, (0, 0))
            summaries[scorer] = ScoreSummary(
                name=scorer,
                mean=mean,
                count=count,
                errors=self._scorer_errors.get(scorer, 0),
                skipped=self._skipped.get(scorer, 0),
                baseline_mean=baseline_mean,
                diff=(mean - baseline_mean) if mean is not None and baseline_mean is not None else None,
                improvements=improvements,
                regressions=regressions,
            )
        metrics: dict[str, float] = {"duration_s": round(duration_s, 4)}
        p50 = self._spill.percentile(LATENCY, 0.5)
        p95 = self._spill.percentile(LATENCY, 0.95)
        if p50 is not None and p95 is not None:
            metrics["latency_p50_ms"] = round(p50 * 1000, 3)
            metrics["latency_p95_ms"] = round(p95 * 1000, 3)
        rows_seen, rows_errored = self._spill.row_counts()
        return EvalReport(
            status="completed",
            rows_scored=rows_seen - rows_errored,
            rows_errored=rows_errored,
            task_errors=self._task_errors,
            scorer_errors=self._scorer_error_count,
            scores=summaries,
            metrics=metrics,
            usage=self._usage_report(),
            **fields,
        )

    def _usage_report(self) -> dict[str, Any]:
        """The usage totals, with the judge-call latency percentiles read from the spill."""
        report = self._usage.report()
        if not report or not self._judge_latencies:
            return report
        p50 = self._spill.percentile(JUDGE_LATENCY, 0.5)
        p95 = self._spill.percentile(JUDGE_LATENCY, 0.95)
        budget = report.pop("budget_message", None)
        if p50 is not None and p95 is not None:
            report["judge_latency_p50_ms"] = round(p50 * 1000, 3)
            report["judge_latency_p95_ms"] = round(p95 * 1000, 3)
        if budget:
            report["budget_message"] = budget
        return report


def report_counts_line(report: EvalReport) -> str:
    """What was scored, by which scorer, for the run log: per scorer its mean over the rows it scored
    and its errors, then the rows with and without an error.

    Example:
        `exact_match=0.9333 on 15/15 rows; sql=n/a on 0/15 rows (15 errors); 15 rows: 0 without errors,
        15 with errors (task errors 0, scorer errors 15)`
    """
    total = report.rows_in_snapshot
    scorers = []
    for name, summary in report.scores.items():
        mean = f"{summary.mean:.4f}" if summary.mean is not None else "n/a"
        errors = f" ({summary.errors} error{'s' if summary.errors != 1 else ''})" if summary.errors else ""
        scorers.append(f"{name}={mean} on {summary.count}/{total} rows{errors}")
    rows = f"{total} rows: {report.rows_scored} without errors, {report.rows_errored} with errors"
    if report.rows_errored:
        rows += f" (task errors {report.task_errors}, scorer errors {report.scorer_errors})"
    return "; ".join([*scorers, rows])
