"""Aggregating row results into an `EvalReport`: per-scorer means, errors, latencies, baseline diffs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from dagster_evals.models import DatasetRef, EvalReport, EvalRequest, PlatformName, RowResult, ScoreSummary
from dagster_evals.usage import UsageTotals

# A per-row score moving by more than this counts as an improvement / regression.
ROW_CHANGE_EPSILON = 1e-9


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (None for an empty list)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class ReportBuilder:
    """Accumulates `RowResult`s (streaming, one at a time) and builds the report at the end."""

    def __init__(self, scorer_names: Iterable[str]) -> None:
        self.scorer_names = list(scorer_names)
        self._row_scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._scorer_errors: dict[str, int] = defaultdict(int)
        self._rows_with_error: set[str] = set()
        self._rows_seen: set[str] = set()
        self._task_errors = 0
        self._scorer_error_count = 0
        self._latencies: list[float] = []
        self._usage = UsageTotals()

    def add(self, result: RowResult) -> None:
        self._rows_seen.add(result.row_id)
        if result.usage:
            self._usage.add(result.usage, result.error)
        if result.latency_s is not None and result.error is None:
            self._latencies.append(result.latency_s)
        if result.error is not None:
            self._task_errors += 1
            self._rows_with_error.add(result.row_id)
            return
        for name, value in result.scores.items():
            if value is not None:
                self._row_scores[result.row_id][name].append(value)
        for name in result.scorer_errors:
            self._scorer_errors[name] += 1
            self._scorer_error_count += 1
            self._rows_with_error.add(result.row_id)

    def row_means(self) -> dict[str, dict[str, float]]:
        """Mean score per row and scorer (averaged over trials)."""
        return {
            row_id: {name: sum(vals) / len(vals) for name, vals in scores.items() if vals}
            for row_id, scores in self._row_scores.items()
        }

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
        baseline_row_scores: Mapping[str, Mapping[str, float]] | None = None,
        url: str | None = None,
        project_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
    ) -> EvalReport:
        row_means = self.row_means()
        summaries: dict[str, ScoreSummary] = {}
        for scorer in self.scorer_names:
            values = [scores[scorer] for scores in row_means.values() if scorer in scores]
            mean = sum(values) / len(values) if values else None
            baseline_mean = improvements = regressions = None
            if baseline_row_scores:
                base_values = [s[scorer] for s in baseline_row_scores.values() if scorer in s]
                baseline_mean = sum(base_values) / len(base_values) if base_values else None
                improvements = regressions = 0
                for row_id, scores in row_means.items():
                    before = baseline_row_scores.get(row_id, {}).get(scorer)
                    if before is None or scorer not in scores:
                        continue
                    if scores[scorer] > before + ROW_CHANGE_EPSILON:
                        improvements += 1
                    elif scores[scorer] < before - ROW_CHANGE_EPSILON:
                        regressions += 1
            summaries[scorer] = ScoreSummary(
                name=scorer,
                mean=mean,
                count=len(values),
                errors=self._scorer_errors.get(scorer, 0),
                baseline_mean=baseline_mean,
                diff=(mean - baseline_mean) if mean is not None and baseline_mean is not None else None,
                improvements=improvements or 0,
                regressions=regressions or 0,
            )
        metrics: dict[str, float] = {"duration_s": round(duration_s, 4)}
        p50 = percentile(self._latencies, 0.5)
        p95 = percentile(self._latencies, 0.95)
        if p50 is not None and p95 is not None:
            metrics["latency_p50_ms"] = round(p50 * 1000, 3)
            metrics["latency_p95_ms"] = round(p95 * 1000, 3)
        rows_errored = len(self._rows_with_error)
        return EvalReport(
            id=id,
            name=name,
            platform=platform,
            status="completed",
            dataset=dataset,
            dataset_version=dataset_version,
            rows_in_snapshot=rows_in_snapshot,
            trial_count=trial_count,
            rows_scored=len(self._rows_seen) - rows_errored,
            rows_errored=rows_errored,
            task_errors=self._task_errors,
            scorer_errors=self._scorer_error_count,
            scores=summaries,
            metrics=metrics,
            baseline_id=baseline_id,
            baseline_name=baseline_name,
            url=url,
            project_url=project_url,
            metadata=dict(metadata or {}),
            tags=list(tags),
            usage=self._usage.report(),
        )
