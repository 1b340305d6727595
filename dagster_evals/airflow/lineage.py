"""OpenLineage facets of the eval tasks, for Marquez, DataHub or OpenMetadata.

The Airflow OpenLineage provider calls each operator's `get_openlineage_facets_on_complete`; these build
what it returns:

- a sync task: the platform dataset (at its new version) out;
- a snapshot task: the pinned dataset version in;
- an eval task: the pinned dataset version in — its scores as `dataQualityMetrics` (one column per scorer:
  mean as `sum / count`, min and max left out) — and the suite's eval report out;
- a gate task: the pinned dataset version in, the gate's rules as `dataQualityAssertions`.

Dataset namespaces are `dagster-evals-<platform>://<host or database>` (credentials left out), names
`<project>/<dataset>` and `<project>/eval_reports/<suite>`. Facet shapes follow the OpenLineage spec
(OpenLineage/OpenLineage@8f02abfb7a252783b95df79f443edb13959bf52c:spec/facets/
DataQualityMetricsInputDatasetFacet.json, DataQualityAssertionsDatasetFacet.json,
DatasetVersionDatasetFacet.json); the tests validate the emitted events against those schemas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.engine.gates import GateResult
from dagster_evals.engine.models import EvalReport, Snapshot

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def namespace(platform: EvalPlatform) -> str:
    """`dagster-evals-<platform>://<where>`: the platform's API host or database, without credentials."""
    for attr in ("url", "api_url", "base_url", "path"):
        value = getattr(platform, attr, None)
        if value:
            where = _CREDENTIALS.sub("", str(value))
            where = where.split("://", 1)[1] if "://" in where else where
            return f"dagster-evals-{platform.platform}://{where.strip('/') or 'default'}"
    return f"dagster-evals-{platform.platform}://default"


def dataset_name(project: str | None, name: str) -> str:
    return f"{project or 'default'}/{name}"


def _version_facet(version: str) -> Any:
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    return DatasetVersionDatasetFacet(datasetVersion=version)


def snapshot_input(platform: EvalPlatform, snapshot: Snapshot, **input_facets: Any) -> Any:
    """The pinned dataset version as an OpenLineage input dataset."""
    from openlineage.client.event_v2 import InputDataset

    return InputDataset(
        namespace=namespace(platform),
        name=dataset_name(snapshot.dataset.project, snapshot.dataset.name),
        facets={"version": _version_facet(snapshot.version)},
        inputFacets=input_facets,
    )


def score_metrics(report: EvalReport) -> Any:
    """The report's scores as a `dataQualityMetrics` facet: one column per scorer."""
    from openlineage.client.generated.data_quality_metrics_input_dataset import (
        ColumnMetrics,
        DataQualityMetricsInputDatasetFacet,
    )

    columns = {
        name: ColumnMetrics(
            nullCount=summary.errors,
            count=float(summary.count),
            sum=float(summary.mean * summary.count) if summary.mean is not None else None,
        )
        for name, summary in report.scores.items()
    }
    return DataQualityMetricsInputDatasetFacet(columnMetrics=columns, rowCount=report.rows_in_snapshot)


def gate_assertions(results: Sequence[GateResult]) -> Any:
    """The gate's rules as a `dataQualityAssertions` facet (a threshold rule names its scorer as column)."""
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )

    assertions = []
    for result in results:
        scorer = result.name.removeprefix("threshold_") if result.name.startswith("threshold_") else None
        assertions.append(
            Assertion(
                assertion=result.name,
                success=result.passed,
                column=scorer,
                severity="error",
                description=result.message[:1000],
            )
        )
    return DataQualityAssertionsDatasetFacet(assertions=assertions)


def report_output(platform: EvalPlatform, project: str | None, suite: str, report: EvalReport) -> Any:
    """The suite's eval report as an OpenLineage output dataset, at the report's id as version."""
    from openlineage.client.event_v2 import OutputDataset

    return OutputDataset(
        namespace=namespace(platform),
        name=f"{project or 'default'}/eval_reports/{suite}",
        facets={"version": _version_facet(report.id)},
    )


def operator_lineage(inputs: Sequence[Any] = (), outputs: Sequence[Any] = ()) -> Any:
    """What `get_openlineage_facets_on_complete` returns."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=list(inputs), outputs=list(outputs))
