"""Eval reports on the local backend: run the task and scorers here, store every row result and the report."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from dagster_evals.backends.base import ProgressFn, _quiet
from dagster_evals.backends.local.datasets import PAGE_SIZE, LocalDatasets, loads
from dagster_evals.backends.local.store import experiment_rows, experiments, insert, write_transaction
from dagster_evals.errors import NotFoundError, pinned_dataset_gone
from dagster_evals.models import EvalReport, EvalRequest, RowResult, canonical_json, utcnow
from dagster_evals.runner import run_request_locally
from dagster_evals.scorers import resolve_local_scorers
from dagster_evals.summary import ReportBuilder

ROW_FIELDS = (
    "input", "expected", "output", "scores", "scorer_errors", "error", "latency_s", "metadata", "reasons",
)  # fmt: skip


class LocalEvals(LocalDatasets):
    """Eval operations of `LocalPlatform` (mixed into it)."""

    def run_eval(self, request: EvalRequest, *, progress: ProgressFn = _quiet) -> EvalReport:
        scorers = resolve_local_scorers(request.scorers)
        snapshot = request.snapshot
        try:
            self._resolve_version(snapshot.dataset, snapshot.version)
        except NotFoundError as exc:
            raise pinned_dataset_gone(exc, snapshot.dataset.name) from None
        project = snapshot.dataset.project or self.default_project
        builder = ReportBuilder([s.name for s in scorers])
        baseline_name = None
        if request.baseline_id:
            baseline = self.get_eval_report(request.baseline_id)
            baseline_name = baseline.name
            builder.add_baseline(self.iter_report_row_scores(request.baseline_id))  # streamed to disk
        experiment_id = uuid.uuid4().hex
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.insert(experiments).values(
                    id=experiment_id,
                    project=project,
                    name=request.name,
                    dataset_id=snapshot.dataset.id,
                    dataset_version=snapshot.version,
                    base_experiment_id=request.baseline_id,
                    status="running",
                    metadata=canonical_json(request.metadata),
                    tags=canonical_json(request.tags),
                    created_at=utcnow().isoformat(),
                )
            )
        pending: list[RowResult] = []
        total = snapshot.row_count * request.trial_count
        done = {"n": 0}

        def flush() -> None:
            if not pending:
                return
            batch = list(pending)
            pending.clear()
            self._store_results(experiment_id, batch)
            done["n"] += len(batch)
            progress(f"scored {done['n']}/{total} row trials")

        def on_result(result: RowResult) -> None:
            builder.add(result)
            pending.append(result)
            if len(pending) >= self.batch_size:
                flush()

        stats = run_request_locally(
            request, self.iter_rows(snapshot.dataset, version=snapshot.version), scorers, on_result
        )
        flush()
        report = builder.build_for(
            request,
            id=experiment_id,
            platform="local",
            duration_s=stats.duration_s,
            baseline_name=baseline_name,
        )
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.update(experiments)
                .where(experiments.c.id == experiment_id)
                .values(status="completed", report=report.model_dump_json())
            )
        return report

    def _store_results(self, experiment_id: str, batch: list[RowResult]) -> None:
        """One transaction per batch; a result stored twice (same row and trial) is overwritten."""
        values = [
            {
                "experiment_id": experiment_id,
                "row_id": r.row_id,
                "trial": r.trial,
                "input": canonical_json(r.input),
                "expected": canonical_json(r.expected),
                "output": canonical_json(r.output),
                "scores": canonical_json(r.scores),
                "scorer_errors": canonical_json(r.scorer_errors),
                "error": r.error,
                "latency_s": r.latency_s,
                "metadata": canonical_json(r.metadata),
                "reasons": canonical_json(r.reasons) if r.reasons else None,
            }
            for r in batch
        ]
        with write_transaction(self.engine) as conn:
            stmt = insert(conn, experiment_rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=["experiment_id", "row_id", "trial"],
                set_={name: stmt.excluded[name] for name in ROW_FIELDS},
            )
            conn.execute(stmt, values)

    def get_eval_report(self, report_id: str) -> EvalReport:
        """A finished report by id (or by name: the newest report of that name)."""
        c = experiments.c
        query = (
            sa.select(c.report)
            .where(((c.id == report_id) | (c.name == report_id)) & c.report.is_not(None))
            .order_by(sa.case((c.id == report_id, 0), else_=1), c.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        if found is None:
            raise NotFoundError(
                "local", 404, "GET", f"experiment/{report_id}", "no finished eval report with this id or name"
            )
        return EvalReport.model_validate_json(found)

    def report_row_scores(self, report_id: str) -> dict[str, dict[str, float]]:
        sums: dict[str, dict[str, list[float]]] = {}
        for row_id, scores in self.iter_report_row_scores(report_id):
            for name, value in scores.items():
                sums.setdefault(row_id, {}).setdefault(name, []).append(value)
        return {row: {n: sum(v) / len(v) for n, v in scores.items()} for row, scores in sums.items()}

    def iter_report_row_scores(self, report_id: str) -> Iterator[tuple[str, dict[str, float]]]:
        """`(row id, scores)` of each result of the report without a task error, by row id and trial,
        read `PAGE_SIZE` results per query."""
        c = experiment_rows.c
        for r in self._report_pages(sa.select(c.row_id, c.trial, c.scores), report_id, c.error.is_(None)):
            scores = {n: float(v) for n, v in json.loads(r.scores).items() if v is not None}
            yield r.row_id, scores

    def _report_pages(
        self, query: Any, report_id: str, where: sa.ColumnElement[bool] | None = None
    ) -> Iterator[Any]:
        """The report's result rows selected by `query`, by (row id, trial), a page per query (keyset)."""
        c = experiment_rows.c
        after: tuple[str, int] | None = None
        condition = c.experiment_id == report_id
        if where is not None:
            condition = condition & where
        while True:
            page_query = query.where(condition)
            if after is not None:
                page_query = page_query.where(
                    (c.row_id > after[0]) | ((c.row_id == after[0]) & (c.trial > after[1]))
                )
            page_query = page_query.order_by(c.row_id, c.trial).limit(PAGE_SIZE)
            with self.engine.connect() as conn:
                page = conn.execute(page_query).all()
            yield from page
            if len(page) < PAGE_SIZE:
                return
            after = (page[-1].row_id, page[-1].trial)

    def list_eval_reports(self, *, project: str | None = None, limit: int = 100) -> list[EvalReport]:
        """Finished eval reports of a project, newest first."""
        c = experiments.c
        query = (
            sa.select(c.report)
            .where((c.project == (project or self.default_project)) & c.report.is_not(None))
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [EvalReport.model_validate_json(text) for text in conn.execute(query).scalars()]

    def iter_report_rows(self, report_id: str) -> Iterator[RowResult]:
        """Every row result of an eval report, by row id and trial, read a page at a time."""
        for r in self._report_pages(sa.select(experiment_rows), report_id):
            yield RowResult(
                row_id=r.row_id,
                trial=r.trial,
                input=loads(r.input),
                expected=loads(r.expected),
                output=loads(r.output),
                scores=json.loads(r.scores),
                scorer_errors=json.loads(r.scorer_errors),
                error=r.error,
                latency_s=r.latency_s,
                metadata=json.loads(r.metadata),
                reasons=json.loads(r.reasons) if r.reasons else {},
            )
