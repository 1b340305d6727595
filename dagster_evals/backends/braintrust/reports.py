"""Braintrust experiments read back as eval reports and per-row scores."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.launch import RUN_TOKEN_KEY
from dagster_evals.backends.braintrust.session import BraintrustSession
from dagster_evals.backends.braintrust.traces import traces
from dagster_evals.engine.models import (
    DatasetRef,
    EvalReport,
    ScoreSummary,
)
from dagster_evals.engine.report_spill import ResultSpill

logger = logging.getLogger("dagster_evals.braintrust")


class BraintrustReports(BraintrustSession):
    """Reading experiments back as `EvalReport`s and per-row scores."""

    def _report(
        self, experiment: api.Experiment, summary: api.ExperimentSummary, rows_hint: int
    ) -> EvalReport:
        """An `EvalReport` of an experiment on Braintrust, from its summary and every span of its rows.

        Scores are read from the whole trace (child `score` spans included) and scorer failures from the
        root's `metadata.scorer_errors`, so the error budget sees them; a `None` score is a skipped
        evaluation, counted per scorer in `ScoreSummary.skipped` (see `traces.py`).
        """
        spill = ResultSpill()  # per-row values on disk: memory stays flat in the experiment's size
        try:
            task_errors = scorer_errors = 0
            skipped: Counter[str] = Counter()
            for trace in traces(self.client.iter_experiment_events(experiment.id)):
                key = trace.key
                errored = trace.task_error or bool(trace.failed_scorers)
                spill.add_result(key, errored, None if trace.task_error else trace.mean_scores())
                if trace.task_error:
                    task_errors += 1
                    continue
                scorer_errors += len(trace.failed_scorers)
                skipped.update(trace.skipped)
            counts = spill.scorer_means("current", list(summary.scores or {}))
            rows_seen, rows_errored = spill.row_counts()
            trial_count = spill.max_results_per_row() or 1
        finally:
            spill.close()
        scores = {}
        for name, remote in (summary.scores or {}).items():
            has_diff = remote.diff is not None
            scores[name] = ScoreSummary(
                name=name,
                mean=remote.score,
                count=counts[name][1],
                skipped=skipped[name],
                baseline_mean=remote.score - remote.diff if remote.diff is not None else None,
                diff=remote.diff,
                improvements=remote.improvements if has_diff else 0,
                regressions=remote.regressions if has_diff else 0,
            )
        metrics = {name: m.metric for name, m in (summary.metrics or {}).items()}
        return EvalReport(
            id=experiment.id,
            name=experiment.name,
            platform="braintrust",
            dataset=None,
            dataset_version=experiment.dataset_version,
            rows_in_snapshot=max(rows_hint, rows_seen),
            trial_count=trial_count,
            rows_scored=rows_seen - rows_errored,
            rows_errored=rows_errored,
            task_errors=task_errors,
            scorer_errors=scorer_errors,
            scores=scores,
            metrics=metrics,
            baseline_id=experiment.base_exp_id,
            baseline_name=summary.comparison_experiment_name,
            url=summary.experiment_url,
            project_url=summary.project_url,
            metadata={k: v for k, v in (experiment.metadata or {}).items() if k != RUN_TOKEN_KEY},
            tags=experiment.tags or [],
        )

    def get_eval_report(self, report_id: str) -> EvalReport:
        experiment = self.client.get_experiment(report_id)
        summary = self.client.summarize_experiment(
            report_id, summarize_scores=True, comparison_experiment_id=experiment.base_exp_id
        )
        report = self._report(experiment, summary, 0)
        if experiment.dataset_id:
            report = report.model_copy(
                update={"dataset": DatasetRef(platform="braintrust", id=experiment.dataset_id, name="")}
            )
        return report

    def report_row_scores(self, report_id: str) -> dict[str, dict[str, float]]:
        """Per dataset row, the mean of each score over its trials, read from every span of each trace."""
        sums: dict[str, dict[str, list[float]]] = {}
        for key, scores in self.iter_report_row_scores(report_id):
            for name, value in scores.items():
                sums.setdefault(key, {}).setdefault(name, []).append(value)
        return {row: {n: sum(v) / len(v) for n, v in s.items()} for row, s in sums.items()}

    def iter_report_row_scores(self, report_id: str) -> Iterator[tuple[str, dict[str, float]]]:
        """`(dataset row, mean of each score over the trace's spans)` of each trace without a task error,
        streamed."""
        for trace in traces(self.client.iter_experiment_events(report_id)):
            if not trace.task_error:
                yield trace.key, trace.mean_scores()
