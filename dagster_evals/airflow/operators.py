"""Airflow operators: sync a dataset, pin a snapshot, gate a report (the eval itself: `eval_operator.py`).

Each operator is one call into the engine that the Dagster assets make too (`sync_rows`, the row digest
of a pinned version, the shared gate rules in `dagster_evals.engine.gates`); a connection picks the backend.

Examples:
    .. code-block:: python

        sync = SyncDatasetOperator(task_id="sync_dataset", conn_id="evals_local",
                                   dataset_name="support_bot", source="data/support_bot.jsonl", key_field="id")
        pin = PinSnapshotOperator(task_id="pin_snapshot", conn_id="evals_local", sync_result=sync.output)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from dagster_evals.airflow import lineage
from dagster_evals.airflow.hooks import EvalsHook
from dagster_evals.airflow.reports import dataset_asset, report_from_summary
from dagster_evals.engine.errors import ConfigError, DagsterEvalsError, NotFoundError
from dagster_evals.engine.gates import GateResult, evaluate_gate, gate_verdict, validate_thresholds
from dagster_evals.engine.models import DatasetRef, EvalReport, Snapshot, SyncResult
from dagster_evals.engine.row_index import pairs_digest
from dagster_evals.engine.sources import RowSource, as_source
from dagster_evals.engine.sync import scan_source, sync_rows


class EvalGateFailed(AirflowFailException):
    """The eval report failed its gate: the task fails (without retries) and downstream tasks do not run."""


def require_text(value: Any, field: str, task_id: str, *, optional: bool = False) -> str | None:
    """A non-empty string (or None when `optional`), else a `ConfigError` naming the task and field."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"task {task_id!r}: {field} must be a non-empty string, got {value!r}")
    return value


def require_int(value: Any, field: str, task_id: str, *, minimum: int, maximum: int | None = None) -> int:
    """An int in range — not a bool, not a float, not a numeric string."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"task {task_id!r}: {field} must be an integer of at least {minimum}, got {value!r}"
        )
    if maximum is not None and value > maximum:
        raise ConfigError(f"task {task_id!r}: {field} must be at most {maximum}, got {value!r}")
    return value


class EvalsBaseOperator(BaseOperator):
    """An operator on the backend of the Airflow connection `conn_id` (see `dagster_evals.airflow.hooks`)."""

    ui_color = "#e8f0fe"

    def __init__(self, *, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = require_text(conn_id, "conn_id", self.task_id)

    @cached_property
    def hook(self) -> EvalsHook:
        return EvalsHook.for_connection(str(self.conn_id))


class SyncDatasetOperator(EvalsBaseOperator):
    """Make the platform dataset hold exactly the source's rows (idempotent: unchanged rows send nothing).

    Returns the `SyncResult` (dataset, version, counts) as XCom; its outlet is the dataset's Airflow Asset.

    Args:
        conn_id: The evals connection (embedded, Braintrust or Keywords AI).
        dataset_name: The platform dataset (created when missing).
        source: A `.jsonl`/`.json`/`.csv` path, a `RowSource`, or a callable returning row dicts.
        key_field: Top-level field holding each row's stable key; default: ids derived from row content.
        project: Platform project (default: the connection's).
    """

    template_fields: Sequence[str] = ("dataset_name", "project")

    def __init__(
        self,
        *,
        conn_id: str,
        dataset_name: str,
        source: RowSource | str | Path | Callable[[], Iterable[Any]],
        key_field: str | None = None,
        project: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [dataset_asset(conn_id, dataset_name)])
        super().__init__(conn_id=conn_id, **kwargs)
        self.dataset_name = require_text(dataset_name, "dataset_name", self.task_id)
        self.key_field = require_text(key_field, "key_field", self.task_id, optional=True)
        self.project = require_text(project, "project", self.task_id, optional=True)
        self.source = as_source(source, key_field)  # a bad path or source type fails when the DAG loads
        self._result: SyncResult | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        platform = self.hook.get_platform()
        try:
            # The source is validated (in bounded memory) before the dataset is created or touched.
            with scan_source(self.source, check=platform.check_rows) as scanned:
                dataset = platform.ensure_dataset(str(self.dataset_name), project=self.project)
                result = sync_rows(platform, dataset, scanned, progress=self.log.info)
        finally:
            self.hook.close()
        self.log.info(
            "dataset %r on %s: %d rows, %d added, %d updated, %d removed, %d unchanged (version %s)",
            dataset.name, platform.platform, result.rows_total, result.added, result.updated,
            result.removed, result.unchanged, result.version,
        )  # fmt: skip
        self._result = result
        return result.model_dump(mode="json")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        if self._result is None:
            return lineage.operator_lineage()
        snapshot = Snapshot(
            dataset=self._result.dataset, version=self._result.version, row_count=0, digest=""
        )
        output = lineage.snapshot_input(self.hook.get_platform(), snapshot)
        from openlineage.client.event_v2 import OutputDataset

        self.hook.close()
        return lineage.operator_lineage(
            outputs=[OutputDataset(namespace=output.namespace, name=output.name, facets=output.facets)]
        )


class PinSnapshotOperator(EvalsBaseOperator):
    """Pin the dataset version a sync task recorded: version id, row count and content digest.

    Fails when the backend cannot read that version or it holds another number of rows than the sync
    wrote (e.g. a task on another backend). With `dataset_name` instead, pins the current version of a
    dataset kept on the platform (e.g. production logs sampled into a Keywords AI dataset). Returns the
    `Snapshot` as XCom.

    Args:
        conn_id: The evals connection.
        sync_result: The sync task's return value (e.g. `sync.output`).
        dataset_name: A platform dataset no task of this DAG syncs (instead of `sync_result`).
        project: Platform project of `dataset_name` (default: the connection's).
    """

    template_fields: Sequence[str] = ("sync_result", "dataset_name")

    def __init__(
        self,
        *,
        conn_id: str,
        sync_result: Any = None,
        dataset_name: str | None = None,
        project: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        if (sync_result is None) == (dataset_name is None):
            raise ConfigError(
                f"task {self.task_id!r}: give sync_result (a sync task's output) or dataset_name"
            )
        self.sync_result = sync_result
        self.dataset_name = require_text(dataset_name, "dataset_name", self.task_id, optional=True)
        self.project = require_text(project, "project", self.task_id, optional=True)
        self._snapshot: Snapshot | None = None

    def _pin_platform_dataset(self) -> dict[str, Any]:
        platform = self.hook.get_platform()
        name = str(self.dataset_name)
        try:
            find = getattr(platform, "find_dataset", None)
            dataset = find(name) if find is not None else platform.ensure_dataset(name, project=self.project)
            if dataset is None:
                raise DagsterEvalsError(
                    f"no dataset {name!r} on the {platform.platform} backend of connection {self.conn_id!r}: "
                    "create it on the platform (e.g. from production logs) first"
                )
            snapshot = platform.snapshot(dataset)
        finally:
            self.hook.close()
        self.log.info(
            "pinned the current version %s of %r: %d rows", snapshot.version, name, snapshot.row_count
        )
        self._snapshot = snapshot
        return snapshot.model_dump(mode="json")

    def execute(self, context: Any) -> dict[str, Any]:
        if self.sync_result is None:
            return self._pin_platform_dataset()
        where = f"task {self.task_id!r} sync_result"
        if not isinstance(self.sync_result, Mapping):
            raise ConfigError(
                f"{where}: expected the return value of a sync task, got {self.sync_result!r:.200}"
            )
        try:
            synced = SyncResult.model_validate(dict(self.sync_result))
        except ValueError as exc:
            raise ConfigError(f"{where}: not a sync result ({exc})") from None
        platform = self.hook.get_platform()
        dataset: DatasetRef = synced.dataset
        try:
            count, digest = pairs_digest(platform.iter_row_hashes(dataset, version=synced.version))
        except NotFoundError:
            raise DagsterEvalsError(
                f"dataset {dataset.name!r} (id {dataset.id}) synced by this DAG run is not on the "
                f"{platform.platform} backend of connection {self.conn_id!r}: every task must use the "
                "same eval backend"
            ) from None
        finally:
            self.hook.close()
        if count != synced.rows_total:
            raise DagsterEvalsError(
                f"version {synced.version} of dataset {dataset.name!r} has {count} rows on {platform.platform}, "
                f"but the sync task recorded {synced.rows_total}"
            )
        snapshot = Snapshot(dataset=dataset, version=synced.version, row_count=count, digest=digest)
        self.log.info(
            "pinned %r version %s: %d rows, digest %s", dataset.name, snapshot.version, count, digest[:12]
        )
        self._snapshot = snapshot
        return snapshot.model_dump(mode="json")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        if self._snapshot is None:
            return lineage.operator_lineage()
        try:
            return lineage.operator_lineage(
                inputs=[lineage.snapshot_input(self.hook.get_platform(), self._snapshot)]
            )
        finally:
            self.hook.close()


class EvalGateOperator(EvalsBaseOperator):
    """Fail the task — so downstream tasks (a release) do not run — unless the report passes its gate.

    The rules and messages are the Dagster checks': a minimum mean per scorer (`threshold_<scorer>`), no
    scorer dropping more than allowed against the baseline (`no_regression`; a baseline that was recorded
    but cannot be read fails closed), every row run with at most `max_errored_rows` errored
    (`completeness`). A failed gate raises `EvalGateFailed` (not retried). On a pass it returns the
    verdict, including `report_id`: an eval task's `baseline_from` reads it back as the last passing
    report.

    Args:
        conn_id: The evals connection.
        summary: The eval task's return value (e.g. `run_eval.output`).
        thresholds: Minimum mean per scorer name, each in [0, 1].
        max_regression: Largest allowed drop of a scorer's mean against the baseline (one number for every
            scorer of the report, or per scorer name).
        max_errored_rows: Rows allowed to error (task or scorer).
    """

    template_fields: Sequence[str] = ("summary",)
    ui_color = "#fde2e1"

    def __init__(
        self,
        *,
        conn_id: str,
        summary: Any,
        thresholds: Mapping[str, float] | None = None,
        max_regression: float | Mapping[str, float] | None = None,
        max_errored_rows: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.summary = summary
        self.thresholds = dict(thresholds or {})
        validate_thresholds(self.thresholds, suite=self.task_id)
        if max_regression is not None and not isinstance(max_regression, Mapping):
            if isinstance(max_regression, bool) or not isinstance(max_regression, int | float):
                raise ConfigError(
                    f"task {self.task_id!r}: max_regression must be a number or a mapping of scorer to "
                    f"number, got {max_regression!r}"
                )
        elif isinstance(max_regression, Mapping):
            validate_thresholds(max_regression, suite=self.task_id)
        self.max_regression = max_regression
        self.max_errored_rows = require_int(max_errored_rows, "max_errored_rows", self.task_id, minimum=0)
        self._results: list[GateResult] = []
        self._report: EvalReport | None = None

    def regression_limits(self, report: EvalReport) -> dict[str, float]:
        """The allowed drop per scorer of `report`: `max_regression` per scorer, or one value for every scorer."""
        if self.max_regression is None:
            return {}
        if isinstance(self.max_regression, Mapping):
            return {k: float(v) for k, v in self.max_regression.items()}
        return {name: float(self.max_regression) for name in report.scores}

    def execute(self, context: Any) -> dict[str, Any]:
        report, baseline = report_from_summary(self.summary, f"task {self.task_id!r} summary")
        results = evaluate_gate(
            report, self.thresholds, self.regression_limits(report), self.max_errored_rows, baseline
        )
        self._report, self._results = report, results
        for result in results:
            self.log.info("%s %s: %s", "PASS" if result.passed else "FAIL", result.name, result.message)
        verdict = gate_verdict(results)
        if any(not result.passed for result in results):
            failed = "; ".join(f"{r.name}: {r.message}" for r in results if not r.passed)
            raise EvalGateFailed(f"eval report {report.id} {verdict} — {failed}")
        return {
            "passed": True,
            "gate": verdict,
            "report_id": report.id,
            "platform": report.platform,
            "results": {r.name: {"passed": r.passed, "message": r.message} for r in results},
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return self._lineage()

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._lineage()

    def _lineage(self) -> Any:
        report = self._report
        if report is None or report.dataset is None or not report.dataset_version:
            return lineage.operator_lineage()
        snapshot = Snapshot(
            dataset=report.dataset,
            version=report.dataset_version,
            row_count=report.rows_in_snapshot,
            digest="",
        )
        try:
            facet = lineage.gate_assertions(self._results)
            return lineage.operator_lineage(
                inputs=[
                    lineage.snapshot_input(self.hook.get_platform(), snapshot, dataQualityAssertions=facet)
                ]
            )
        finally:
            self.hook.close()
