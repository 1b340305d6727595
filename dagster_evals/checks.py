"""Gates on an eval report: per-scorer thresholds, regression against a baseline, completeness.

The rules themselves are in `dagster_evals.engine.gates` (shared with the Airflow provider); here each verdict
becomes a `dg.AssetCheckResult`. The eval report asset emits them in the
same step that ran the eval; with `blocking=True` a failed gate stops downstream assets (e.g. a release).

A partitioned eval report declares its checks with the same partitions: Dagster then records each result
against the partition it checked, and the check's **Partitions** tab in the UI shows which prompt version or
release failed its gate (Dagster's per-partition checks, a preview feature in Dagster 1.13).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from dagster_evals.engine.gates import (
    COMPLETENESS_CHECK,
    REGRESSION_CHECK,
    Baseline,
    check_completeness,
    check_regression,
    check_threshold,
    empty_reason,
    evaluate_gate,
    threshold_check_name,
    validate_thresholds,
)
from dagster_evals.engine.models import EvalReport
from dagster_evals.metadata import rounded_for_display

# The rules live in `dagster_evals.engine.gates` (shared with the Airflow provider); kept importable from here.
__all__ = [
    "COMPLETENESS_CHECK",
    "REGRESSION_CHECK",
    "check_completeness",
    "check_regression",
    "check_specs",
    "check_threshold",
    "empty_reason",
    "evaluate_checks",
    "threshold_check_name",
    "validate_thresholds",
]


def check_specs(
    asset_key: dg.AssetKey,
    thresholds: Mapping[str, float],
    max_regression: Mapping[str, float],
    blocking: bool,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> list[dg.AssetCheckSpec]:
    """The check specs an eval report asset declares for these rules.

    Args:
        asset_key: The eval report asset.
        thresholds: Minimum mean per scorer; one `threshold_<scorer>` check each.
        max_regression: Allowed drop per scorer; a `no_regression` check when not empty.
        blocking: Whether a failed check stops downstream assets.
        partitions_def: The eval report's partitions: each check result is then recorded against the
            partition it checked (per-partition pass/fail in the UI and in `partitionStatuses`).

    Example:
        >>> import dagster as dg
        >>> specs = check_specs(dg.AssetKey("report"), {"exact_match": 0.9}, {}, blocking=True)
        >>> [spec.name for spec in specs]
        ['threshold_exact_match', 'completeness']
    """
    declared: list[tuple[str, str]] = [
        (threshold_check_name(scorer), f"Mean {scorer} score is at least {minimum}.")
        for scorer, minimum in thresholds.items()
    ]
    if max_regression:
        declared.append(
            (REGRESSION_CHECK, "No scorer's mean dropped more than allowed against the baseline.")
        )
    declared.append((COMPLETENESS_CHECK, "Every snapshot row was run; errored rows within the allowance."))
    with warnings.catch_warnings():
        # Dagster flags partitioned check specs as a preview (the API may change in a patch release);
        # unfiltered, that warning would print every time the definitions load.
        warnings.filterwarnings(
            "ignore", message=r"Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
        )
        return [
            dg.AssetCheckSpec(
                name,
                asset=asset_key,
                blocking=blocking,
                description=description,
                partitions_def=partitions_def,
            )
            for name, description in declared
        ]


def evaluate_checks(
    report: EvalReport,
    asset_key: dg.AssetKey,
    thresholds: Mapping[str, float],
    max_regression: Mapping[str, float],
    max_errored_rows: int,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    baseline: Baseline | None = None,
    partition: str | None = None,
) -> list[dg.AssetCheckResult]:
    """Evaluate every rule against a report, in the order of `check_specs`.

    Float metadata is rounded for display like the report's (`metadata.display_float`); the verdict is
    decided on the exact values. With a `partition`, each result's description starts with it and its
    metadata names it (the check's execution history lists every partition together); with partitioned
    check specs Dagster also records the result against that partition.
    """
    return [
        dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=result.name,
            passed=result.passed,
            severity=severity,
            description=f"[{partition}] {result.message}" if partition else result.message,
            metadata=rounded_for_display(
                {
                    **result.numbers,
                    **_baseline_run_link(result.name, report, baseline),
                    "report_id": report.id,
                    **({"partition": partition} if partition else {}),
                }
            ),
        )
        for result in evaluate_gate(report, thresholds, max_regression, max_errored_rows, baseline)
    ]


def _baseline_run_link(check: str, report: EvalReport, baseline: Baseline | None) -> dict[str, Any]:
    """`baseline_run`, a link to the run that produced the baseline, on the `no_regression` check."""
    if check != REGRESSION_CHECK or report.baseline_id is None or baseline is None or not baseline.run_id:
        return {}
    return {"baseline_run": dg.MetadataValue.dagster_run(baseline.run_id)}
