"""Eval reports on the local backend: run the task and scorers here, store every row result and the report."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from dagster_evals.backends.base import ProgressFn, _quiet
from dagster_evals.backends.local.datasets import PAGE_SIZE, LocalDatasets, loads
from dagster_evals.backends.local.leases import Lease, owner_gone
from dagster_evals.backends.local.report_rows import ReportRows
from dagster_evals.backends.local.row_writes import SharedCheckpoints, same_database
from dagster_evals.backends.local.store import (
    experiment_rows,
    experiments,
    in_memory,
    write_transaction,
)
from dagster_evals.engine.checkpoints import RowCheckpoints
from dagster_evals.engine.embedded_db import retrying
from dagster_evals.engine.errors import NotFoundError, pinned_dataset_gone
from dagster_evals.engine.models import (
    DatasetRef,
    EvalReport,
    EvalRequest,
    EvalRow,
    RowResult,
    canonical_json,
    utcnow,
)
from dagster_evals.engine.runner import run_request_locally
from dagster_evals.engine.scorers import resolve_local_scorers
from dagster_evals.engine.summary import ReportBuilder


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
        self.fail_abandoned_reports(snapshot.dataset.id)
        experiment_id = uuid.uuid4().hex
        touch = None if in_memory(self.engine.url) else lambda now: self._touch_report(experiment_id, now)
        lease = Lease(experiment_id, touch)
        try:
            report = self._run_recorded(request, scorers, builder, baseline_name, project, lease, progress)
        except BaseException as exc:
            self._mark_failed(experiment_id, f"{type(exc).__name__}: {str(exc)[:500]}")
            raise
        finally:
            lease.release()
        return report

    def _run_recorded(
        self,
        request: EvalRequest,
        scorers: list[Any],
        builder: ReportBuilder,
        baseline_name: str | None,
        project: str | None,
        lease: Lease,
        progress: ProgressFn,
    ) -> EvalReport:
        """The eval under report `lease.id`: recorded `running`, each result stored, then `completed`."""
        snapshot = request.snapshot
        experiment_id = lease.id
        now = utcnow().isoformat()
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
                    created_at=now,
                    owner=lease.owner,
                    heartbeat_at=now,
                )
            )
        shared = self._shared_checkpoints(request)
        if shared is not None:  # this database holds the checkpoints: written with their rows
            request = request.model_copy(update={"checkpoints": shared})
        rows_out = ReportRows(
            self.engine,
            experiment_id,
            builder,
            shared,
            batch_size=self.batch_size,
            total=snapshot.row_count * request.trial_count,
            progress=progress,
        )
        try:
            rows = self._rows_to_run(snapshot.dataset, snapshot.version)
            try:
                stats = run_request_locally(request, rows, scorers, rows_out.add)
            except BaseException:
                if shared is not None:  # as the checkpoints' own flush: what was scored is kept
                    with contextlib.suppress(Exception):
                        rows_out.finish()
                        rows_out.wait()
                raise
            rows_out.finish()
            rows_out.wait()
        finally:
            rows_out.close()
        report = builder.build_for(
            request,
            id=experiment_id,
            platform="local",
            duration_s=stats.duration_s,
            baseline_name=baseline_name,
        )

        def complete() -> None:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    sa.update(experiments)
                    .where(experiments.c.id == experiment_id)
                    .values(status="completed", report=report.model_dump_json(), failure=None)
                )

        retrying(complete)  # the same update twice is the same update
        return report

    def _rows_to_run(self, dataset: DatasetRef, version: str | None) -> Iterator[EvalRow]:
        """The rows the eval runs: `iter_run_rows`; or `iter_rows`, as before 0.2.0, in a subclass that
        overrides `iter_rows` and not `iter_run_rows` (it keeps seeing every row its evals read)."""
        cls = type(self)
        if cls.iter_rows is not LocalEvals.iter_rows and cls.iter_run_rows is LocalEvals.iter_run_rows:
            return self.iter_rows(dataset, version=version)
        return self.iter_run_rows(dataset, version=version)

    def _touch_report(self, experiment_id: str, now: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                sa.update(experiments)
                .where((experiments.c.id == experiment_id) & (experiments.c.status == "running"))
                .values(heartbeat_at=now)
            )

    def _mark_failed(self, experiment_id: str, why: str) -> bool:
        """Record a running report as failed with `why`; False when the database cannot be reached now
        (a later eval of the dataset then finds it abandoned)."""
        try:
            with write_transaction(self.engine) as conn:
                done = conn.execute(
                    sa.update(experiments)
                    .where((experiments.c.id == experiment_id) & (experiments.c.status == "running"))
                    .values(status="failed", failure=why)
                )
            return bool(done.rowcount)
        except DBAPIError:
            return False

    def fail_abandoned_reports(
        self, dataset_id: str, run_ended: Callable[[str], str | None] | None = None
    ) -> list[tuple[str, str]]:
        """Mark failed (with the reason) the `running` reports of this dataset whose eval is known dead:
        its process is gone (see `leases`), or `run_ended(dagster_run_id)` says its Dagster run ended.
        Returns (report id, reason) of each report marked."""
        c = experiments.c
        query = sa.select(c.id, c.owner, c.heartbeat_at, c.created_at, c.metadata).where(
            (c.dataset_id == dataset_id) & (c.status == "running")
        )
        with self.engine.connect() as conn:
            running = conn.execute(query).all()
        marked = []
        for report in running:
            why = owner_gone(report.id, report.owner, report.heartbeat_at or report.created_at)
            run_id = loads(report.metadata).get("dagster_run_id") if report.metadata else None
            if why is None and run_ended is not None and isinstance(run_id, str):
                why = run_ended(run_id)
            if why is not None and self._mark_failed(report.id, f"abandoned: {why}"):
                marked.append((report.id, f"abandoned: {why}"))
        return marked

    def list_unfinished_reports(
        self, *, project: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Reports without a result, newest first: `running` ones and `failed` ones with the reason."""
        c = experiments.c
        query = (
            sa.select(c.id, c.name, c.status, c.failure, c.created_at)
            .where((c.project == (project or self.default_project)) & c.report.is_(None))
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def _shared_checkpoints(self, request: EvalRequest) -> SharedCheckpoints | None:
        """The run's checkpoints to write with the result rows: when they are `RowCheckpoints` kept in
        this backend's database (see `row_writes`); None otherwise (they write themselves, as before)."""
        checkpoints = request.checkpoints
        if not isinstance(checkpoints, RowCheckpoints):
            return None
        if not same_database(self.engine.url, checkpoints.store.url):
            return None
        return SharedCheckpoints(checkpoints)

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
