"""Evals on Keywords AI: a Python task's outputs written to a dataset of their own and scored there, or
the evaluators run over a dataset's existing logs (`task=None`, e.g. sampled production logs).

With a Python task, the task and local scorers run here (`run_request_locally`); each result becomes a
log of a new dataset named after the run (output, local scores and errors in metadata), written exactly
once (see `datasets.py`), then the Keywords AI evaluators given as
`PlatformFunction(platform="keywordsai", name=<slug>)` run over it. A report id is
`<dataset id>:<task ids>` (just the dataset id when only local scorers ran).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from dagster_evals.backends.base import ProgressFn, _quiet, rows_digest
from dagster_evals.backends.keywordsai.datasets import DatasetChangedError, version_of
from dagster_evals.backends.keywordsai.eval_runs import split_report_id
from dagster_evals.backends.keywordsai.models import DatasetLog, DatasetLogInput
from dagster_evals.backends.keywordsai.rows import (
    ERROR_KEY,
    LATENCY_KEY,
    RESERVED_KEYS,
    RESULT_KEY,
    ROW_ID_KEY,
    RUN_KEY,
    SCORER_ERRORS_KEY,
    SCORES_KEY,
    TRIAL_KEY,
    decode_expected,
    json_safe,
)  # fmt: skip
from dagster_evals.engine.errors import ConfigError, CountMismatchError, NotFoundError, pinned_dataset_gone
from dagster_evals.engine.models import EvalReport, EvalRequest, PlatformFunction, RowResult, Snapshot
from dagster_evals.engine.runner import run_coroutine, run_request_locally
from dagster_evals.engine.scorers import Scorer, resolve_local_scorers
from dagster_evals.engine.summary import ReportBuilder

EXISTING_OUTPUT_TASKS = frozenset({"existing_output", "logs"})
# Results buffered (in bulk requests of `batch_size`) before they are written to the eval dataset.
RESULT_BATCHES = 10


def split_scorers(specs: Iterable[Any]) -> tuple[list[str], list[Scorer]]:
    """The Keywords AI evaluator slugs among `specs` (`PlatformFunction`s) and the local scorers (the rest,
    resolved); a `ConfigError` for another platform's function or two scorers of one name."""
    slugs: list[str] = []
    local: list[Any] = []
    for spec in specs:
        if isinstance(spec, PlatformFunction):
            if spec.platform != "keywordsai":
                raise ConfigError(
                    f"scorer {spec.name!r} runs on {spec.platform}; it cannot run on Keywords AI"
                )
            slugs.append(spec.name)
        else:
            local.append(spec)
    scorers = resolve_local_scorers(local)
    clash = sorted({s.name for s in scorers} & set(slugs))
    if clash or len(set(slugs)) != len(slugs):
        raise ConfigError(
            f"two scorers share the name(s) {', '.join(clash or slugs)}; give each a unique name"
        )
    return slugs, scorers


class EvalOps:
    """Eval operations of `KeywordsAIPlatform` (a mixin over DatasetOps and EvalRunOps)."""

    client: Any
    page_size: int

    def _check_snapshot(self: Any, snapshot: Snapshot, progress: ProgressFn) -> None:
        count, digest = rows_digest(self.iter_rows(snapshot.dataset))
        if digest != snapshot.digest:
            raise DatasetChangedError(
                f"dataset {snapshot.dataset.name!r} on Keywords AI changed since snapshot {snapshot.version} "
                f"was taken ({snapshot.row_count} rows then, {count} now, version {version_of(digest)}): "
                "materialize the dataset snapshot again before running the eval",
                metadata={"snapshot_version": snapshot.version, "current_version": version_of(digest)},
            )
        progress(
            f"dataset {snapshot.dataset.name!r} still matches snapshot {snapshot.version} ({count} rows)"
        )

    def start_evaluators_run(
        self: Any, snapshot: Snapshot, scorers: Iterable[Any], *, progress: ProgressFn = _quiet
    ) -> str:
        """Start the organization's evaluators over the logs of a pinned dataset, and return at once.

        For orchestrators that wait elsewhere (Airflow's triggerer): poll `find_tasks` with the report id's
        dataset id and keys (`split_report_id`), then read the result with `eval_run_report`. Nothing is
        started unless every scorer is a Keywords AI evaluator the organization has and the dataset still
        matches the snapshot; starting twice (a retried request) starts one run.

        Args:
            snapshot: The pinned dataset snapshot whose logs are evaluated.
            scorers: `PlatformFunction(platform="keywordsai", name=<evaluator slug>)` each.
            progress: Called with one line per step.

        Returns:
            The report id of the run: `<dataset id>:<task keys>`.

        Raises:
            ConfigError: A scorer is not a Keywords AI evaluator, or the organization has no such evaluator.
            DatasetChangedError: The dataset changed since the snapshot was pinned.
            NotFoundError: The pinned dataset is gone.
        """
        slugs, local = split_scorers(scorers)
        if local or not slugs:
            raise ConfigError(
                "an eval run on Keywords AI runs the platform's evaluators only; score "
                f"{', '.join(s.name for s in local) or 'nothing'} with a Python task instead"
            )
        self._check_evaluators(slugs)
        try:
            self._check_snapshot(snapshot, progress)
        except NotFoundError as exc:
            raise pinned_dataset_gone(exc, snapshot.dataset.name) from None
        keys = self.start_eval_run(snapshot.dataset.id, slugs, progress)
        return f"{snapshot.dataset.id}:{','.join(keys)}"

    def eval_run_report(self: Any, report_id: str, baseline_id: str | None = None) -> EvalReport:
        """The report of a finished eval run (`get_eval_report`), compared with the baseline report when one
        is given: per row where rows match, else by the scorers' means.

        Args:
            report_id: The run's report id (as `start_evaluators_run` returned it).
            baseline_id: The report to compare with, or None.
        """
        report = self.get_eval_report(report_id)
        if baseline_id is None:
            return report
        report = _apply_baseline(report, self.get_eval_report(baseline_id))
        return report.model_copy(update={"baseline_id": baseline_id})

    def run_eval(self: Any, request: EvalRequest, *, progress: ProgressFn = _quiet) -> EvalReport:
        slugs, scorers = split_scorers(request.scorers)
        self._check_evaluators(slugs)
        try:
            self._check_snapshot(request.snapshot, progress)
        except NotFoundError as exc:
            raise pinned_dataset_gone(exc, request.snapshot.dataset.name) from None
        baseline = baseline_rows = None
        if request.baseline_id:
            baseline = self.get_eval_report(request.baseline_id)
            # streamed into the report builder's spill when the report is built
            baseline_rows = self.iter_report_row_scores(request.baseline_id)
        task = request.task
        if task is None or (
            isinstance(task, PlatformFunction)
            and task.platform == "keywordsai"
            and task.name in EXISTING_OUTPUT_TASKS
        ):
            report = self._eval_existing_logs(request, slugs, scorers, baseline_rows, progress)
        elif isinstance(task, PlatformFunction):
            raise ConfigError(
                f"task {task.name!r} runs on {task.platform}: Keywords AI runs evaluators, not tasks; pass a Python "
                "callable, or task=None to evaluate the outputs already in the dataset's logs"
            )
        else:
            report = self._eval_local_task(request, slugs, scorers, baseline_rows, progress)
        return _apply_baseline(report, baseline)

    def _eval_local_task(self: Any, request: EvalRequest, slugs: list[str], scorers: list[Scorer],
                         baseline_rows: Any, progress: ProgressFn) -> EvalReport:  # fmt: skip
        snapshot = request.snapshot
        started = time.monotonic()
        eval_dataset = self.ensure_dataset(
            request.name,  # unique per run
            # Keywords AI keeps no metadata on a dataset or eval report: the description names the run's
            # source dataset and version on the platform itself (each result log also carries `run_info`).
            description=(
                f"dagster-evals eval run {request.name!r} over dataset {snapshot.dataset.name!r} "
                f"version {snapshot.version}"
            ),
        )
        run_info = {
            "name": request.name,
            "source_dataset_id": snapshot.dataset.id,
            "source_dataset_name": snapshot.dataset.name,
            "dataset_version": snapshot.version,
            "rows_in_snapshot": snapshot.row_count,
            "trial_count": request.trial_count,
            "scorers": [s.name for s in scorers],
            "evaluators": slugs,
        }
        progress(f"writing outputs to eval dataset {eval_dataset.id} ({request.name!r})")
        # Results are written as they come, a buffer at a time, so memory is bounded by the buffer.
        logs: dict[str, DatasetLogInput] = {}
        self._insert_failures.clear()

        def write() -> None:
            if not logs:
                return
            keys = list(logs)
            certain = self._insert(eval_dataset.id, keys, [logs[k] for k in keys], progress, "results")
            self._reconcile(eval_dataset.id, RESULT_KEY, dict.fromkeys(keys), logs, not certain, progress)
            logs.clear()

        def on_result(result: RowResult) -> None:
            key = f"{result.row_id}#{result.trial}"
            metadata: dict[str, Any] = {
                **json_safe(result.metadata),
                ROW_ID_KEY: result.row_id,
                RESULT_KEY: key,
                TRIAL_KEY: result.trial,
                SCORES_KEY: result.scores,
                RUN_KEY: run_info,
            }
            if result.scorer_errors:
                metadata[SCORER_ERRORS_KEY] = result.scorer_errors
            if result.error is not None:
                metadata[ERROR_KEY] = result.error
            if result.latency_s is not None:
                metadata[LATENCY_KEY] = round(result.latency_s, 6)
            logs[key] = DatasetLogInput(
                input=json_safe(result.input),
                output=json_safe(result.output),
                expected_output=json_safe(result.expected),
                metadata=metadata,
                metrics={"latency": round(result.latency_s or 0.0, 6)},
            )
            if len(logs) >= self.batch_size * RESULT_BATCHES:
                write()

        stats = run_request_locally(request, self.iter_rows(snapshot.dataset), scorers, on_result)
        write()
        present = self.client.count_dataset_logs(eval_dataset.id)
        if present != stats.pairs:
            raise CountMismatchError(
                f"eval dataset {eval_dataset.id} holds {present} results, but {stats.pairs} were written",
                metadata={"results_written": stats.pairs, "results_on_platform": present},
            )
        suffix, tasks = self.run_evaluators(eval_dataset.id, slugs, progress)
        builder = ReportBuilder([*run_info["scorers"], *slugs])
        for log in self.client.iter_dataset_logs(eval_dataset.id, page_size=self.page_size):
            builder.add(self.row_result(log, slugs))
        report = builder.build_for(
            request,
            id=f"{eval_dataset.id}:{suffix}" if suffix else eval_dataset.id,
            platform="keywordsai",
            duration_s=time.monotonic() - started,
            baseline_row_scores=baseline_rows,
            url=self.dataset_url(eval_dataset.id),
            project_url=self.dataset_url(snapshot.dataset.id),
            metadata={**request.metadata, "eval_dataset_id": eval_dataset.id, "keywordsai_report_id": suffix},
        )
        return self.fill_from_tasks(report, tasks)

    def _eval_existing_logs(self: Any, request: EvalRequest, slugs: list[str], scorers: list[Scorer],
                            baseline_rows: Any, progress: ProgressFn) -> EvalReport:  # fmt: skip
        snapshot = request.snapshot
        started = time.monotonic()
        suffix, tasks = self.run_evaluators(snapshot.dataset.id, slugs, progress)
        builder = ReportBuilder([*(s.name for s in scorers), *slugs])
        for log in self.client.iter_dataset_logs(snapshot.dataset.id, page_size=self.page_size):
            local_scores: dict[str, float | None] = {}
            local_errors: dict[str, str] = {}
            expected = decode_expected(log)
            metadata = {k: v for k, v in (log.metadata or {}).items() if k not in RESERVED_KEYS}
            for scorer in scorers:
                try:
                    if scorer.is_async:
                        value = run_coroutine(scorer.score_async(log.input, log.output, expected, metadata))
                    else:
                        value = scorer.score(log.input, log.output, expected, metadata)
                    local_scores[scorer.name] = value
                except Exception as exc:
                    local_errors[scorer.name] = f"{type(exc).__name__}: {exc}"[:2000]
            builder.add(self.row_result(log, slugs, {"scores": local_scores, "errors": local_errors}))
        report = builder.build_for(
            request,
            id=f"{snapshot.dataset.id}:{suffix}" if suffix else snapshot.dataset.id,
            platform="keywordsai",
            trial_count=1,
            duration_s=time.monotonic() - started,
            baseline_row_scores=baseline_rows,
            url=self.dataset_url(snapshot.dataset.id),
            metadata={**request.metadata, "keywordsai_report_id": suffix},
        )
        return self.fill_from_tasks(report, tasks)

    def _eval_dataset_logs(self: Any, dataset_id: str) -> tuple[dict[str, Any] | None, Iterator[DatasetLog]]:
        """The run info of a dataset dedicated to one eval run (None for other datasets), and its logs."""
        logs = self.client.iter_dataset_logs(dataset_id, page_size=self.page_size)
        first = next(logs, None)
        if first is None:
            return None, iter(())
        info = (first.metadata or {}).get(RUN_KEY)

        def chained() -> Iterator[DatasetLog]:
            yield first
            yield from logs

        return (info if isinstance(info, dict) else None), chained()

    def get_eval_report(self: Any, report_id: str) -> EvalReport:
        """Rebuild a report from Keywords AI: the run's status and scores, and for runs of a Python task
        the results stored on the run's dataset."""
        dataset_id, keys = split_report_id(report_id)
        dataset = self.client.get_dataset(dataset_id)
        tasks = self.find_tasks(dataset_id, keys) if keys else []
        if keys and not tasks:
            raise NotFoundError(
                "keywordsai", 404, "GET", f"/api/datasets/{dataset_id}/eval-reports/list/",
                f"eval run {','.join(keys)} is not among the eval runs of dataset {dataset_id}",
            )  # fmt: skip
        states = {t.state for t in tasks}
        status = "failed" if "failed" in states else "running" if "running" in states else "completed"
        slugs = [slug for t in tasks for slug in t.slugs]
        info, logs = self._eval_dataset_logs(dataset_id)
        if info is None:
            if not tasks:
                raise NotFoundError(
                    "keywordsai", 404, "GET", f"/api/datasets/{dataset_id}/", "no eval report with this id"
                )
            builder = ReportBuilder(slugs)
            for log in logs:
                builder.add(self.row_result(log, slugs))
            report = builder.build(
                id=report_id, name=f"{dataset.name} eval {','.join(keys)}", platform="keywordsai",
                dataset=self._ref(dataset.id, dataset.name), dataset_version=None,
                rows_in_snapshot=dataset.log_count or 0, trial_count=1, duration_s=0.0,
                url=self.dataset_url(dataset.id), project_url=self.dataset_url(dataset.id),
                metadata={"keywordsai_report_id": ",".join(keys)},
            )  # fmt: skip
            return self.fill_from_tasks(report.model_copy(update={"status": status}), tasks)
        builder = ReportBuilder([*info.get("scorers", []), *slugs])
        for log in logs:
            builder.add(self.row_result(log, slugs))
        report = builder.build(
            id=report_id,
            name=str(info.get("name", dataset.name)),
            platform="keywordsai",
            dataset=self._ref(str(info.get("source_dataset_id")), str(info.get("source_dataset_name"))),
            dataset_version=info.get("dataset_version"),
            rows_in_snapshot=int(info.get("rows_in_snapshot", 0)),
            trial_count=int(info.get("trial_count", 1)),
            duration_s=0.0,
            url=self.dataset_url(dataset.id),
            project_url=self.dataset_url(str(info.get("source_dataset_id"))),
            metadata={"eval_dataset_id": dataset.id, "keywordsai_report_id": ",".join(keys)},
        )
        return self.fill_from_tasks(report.model_copy(update={"status": status}), tasks)

    def report_row_scores(self: Any, report_id: str) -> dict[str, dict[str, float]]:
        """Per-row mean scores of a report run with a Python task (read from its dedicated dataset).

        Reports run over a dataset's existing logs (`task=None`) return {}: Keywords AI keeps one score per
        evaluator per log, so a later run on the same logs overwrites the earlier run's per-row scores.
        """
        dataset_id, keys = split_report_id(report_id)
        info, logs = self._eval_dataset_logs(dataset_id)
        if info is None:
            return {}
        sums: dict[str, dict[str, list[float]]] = {}
        for row_id, scores in self._iter_row_scores(info, keys, logs):
            for name, value in scores.items():
                sums.setdefault(row_id, {}).setdefault(name, []).append(value)
        return {row: {n: sum(v) / len(v) for n, v in s.items()} for row, s in sums.items()}

    def iter_report_row_scores(self: Any, report_id: str) -> Iterator[tuple[str, dict[str, float]]]:
        """`(row id, scores)` of each result without a task error of a report run with a Python task,
        streamed page by page from its dedicated dataset (nothing for reports over existing logs)."""
        dataset_id, keys = split_report_id(report_id)
        info, logs = self._eval_dataset_logs(dataset_id)
        if info is not None:
            yield from self._iter_row_scores(info, keys, logs)

    def _iter_row_scores(self: Any, info: dict[str, Any], keys: list[str],
                         logs: Iterator[DatasetLog]) -> Iterator[tuple[str, dict[str, float]]]:  # fmt: skip
        slugs = list(info.get("evaluators", [])) if keys else []
        for log in logs:
            result = self.row_result(log, slugs)
            if result.error is None:
                yield result.row_id, {n: v for n, v in result.scores.items() if v is not None}


def _apply_baseline(report: EvalReport, baseline: EvalReport | None) -> EvalReport:
    """Mean-level baseline comparison for scorers the row-level comparison could not cover."""
    if baseline is None:
        return report
    scores = {}
    for name, summary in report.scores.items():
        base = baseline.scores.get(name)
        if summary.baseline_mean is None and base is not None and base.mean is not None:
            diff = summary.mean - base.mean if summary.mean is not None else None
            summary = summary.model_copy(update={"baseline_mean": base.mean, "diff": diff})
        scores[name] = summary
    return report.model_copy(update={"scores": scores, "baseline_name": baseline.name})
