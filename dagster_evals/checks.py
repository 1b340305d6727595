"""Gates on an eval report: per-scorer thresholds, regression against a baseline, completeness.

Each rule turns an `EvalReport` into a `dg.AssetCheckResult`. The eval report asset emits them in the
same step that ran the eval; with `blocking=True` a failed gate stops downstream assets (e.g. a release).

A partitioned eval report declares its checks with the same partitions: Dagster then records each result
against the partition it checked, and the check's **Partitions** tab in the UI shows which prompt version or
release failed its gate (Dagster's per-partition checks, a preview feature in Dagster 1.13).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_evals.errors import ConfigError
from dagster_evals.metadata import format_number, rounded_for_display
from dagster_evals.models import EvalReport

if TYPE_CHECKING:
    from dagster_evals.baselines import Baseline

COMPLETENESS_CHECK = "completeness"
REGRESSION_CHECK = "no_regression"


def threshold_check_name(scorer: str) -> str:
    """Check name for a scorer's threshold, e.g. `threshold_levenshtein`."""
    return "threshold_" + re.sub(r"[^A-Za-z0-9_]", "_", scorer).lower()


def validate_thresholds(thresholds: Mapping[str, float], suite: str | None = None) -> None:
    """Every threshold is a number in [0, 1] (not NaN, not a bool)."""
    where = f"suite {suite!r}: " if suite else ""
    if not isinstance(thresholds, Mapping):
        raise ConfigError(f"{where}thresholds must map scorer names to numbers in [0, 1], got {thresholds!r}")
    for scorer, minimum in thresholds.items():
        if (
            isinstance(minimum, bool)
            or not isinstance(minimum, int | float)
            or not 0.0 <= float(minimum) <= 1.0  # also False for NaN
        ):
            raise ConfigError(
                f"{where}threshold for scorer {scorer!r} must be a number in [0, 1], got {minimum!r}"
            )


def empty_reason(report: EvalReport) -> str | None:
    """Why a report evaluated nothing (`snapshot has 0 rows`), or None."""
    if report.rows_in_snapshot == 0:
        return (
            "snapshot has 0 rows: nothing was evaluated (is the dataset empty, or does this step use a "
            "different eval backend than the step that synced it?)"
        )
    return None


def check_threshold(report: EvalReport, scorer: str, minimum: float) -> tuple[bool, str, dict[str, float]]:
    """Pass when the scorer's mean is at least `minimum`; an empty snapshot fails."""
    empty = empty_reason(report)
    if empty:
        return False, empty, {"threshold": minimum}
    summary = report.scores.get(scorer)
    if summary is None:
        known = ", ".join(sorted(report.scores)) or "none"
        return False, f"scorer {scorer!r} is not in the report (scorers: {known})", {"threshold": minimum}
    if summary.mean is None:
        return False, f"scorer {scorer!r} scored no row", {"threshold": minimum}
    passed = summary.mean >= minimum
    verb = "meets" if passed else "is below"
    text = f"{scorer} mean {format_number(summary.mean)} {verb} the threshold {format_number(minimum)}"
    return passed, text, {"score": summary.mean, "threshold": minimum}


def check_regression(
    report: EvalReport, max_drop: Mapping[str, float], baseline: Baseline | None = None
) -> tuple[bool, str, dict[str, Any]]:
    """Pass when no scorer's mean dropped by more than its allowed amount against the baseline.

    Fails closed when a baseline was recorded but could not be read (`baseline.failure`). The metadata
    names the baseline (`baseline_id`, and `baseline_run` as a run link when known) and, per scorer, the
    diff and the allowed drop (`allowed_drop/<scorer>`), so the run log shows why it passed or failed.
    """
    metadata: dict[str, Any] = {f"allowed_drop/{scorer}": float(limit) for scorer, limit in max_drop.items()}
    if baseline is not None and baseline.failure:
        return False, baseline.failure, metadata
    if report.baseline_id is None:
        note = baseline.note if baseline is not None else "no baseline to compare with yet"
        return True, note, metadata
    metadata["baseline_id"] = report.baseline_id
    if baseline is not None and baseline.run_id:
        metadata["baseline_run"] = dg.MetadataValue.dagster_run(baseline.run_id)
    failures: list[str] = []
    for scorer, summary in report.scores.items():
        if scorer not in max_drop or summary.diff is None:
            continue
        metadata[f"diff/{scorer}"] = summary.diff
        if summary.diff < -max_drop[scorer]:
            failures.append(
                f"{scorer} dropped {format_number(-summary.diff)} (allowed {format_number(max_drop[scorer])}; "
                f"{summary.regressions} rows regressed)"
            )
    base = report.baseline_name or report.baseline_id
    if failures:
        return False, f"regressions against baseline {base}: " + "; ".join(failures), metadata
    return True, f"no scorer dropped more than allowed against baseline {base}", metadata


def check_completeness(report: EvalReport, max_errored_rows: int) -> tuple[bool, str, dict[str, float]]:
    """Pass when every snapshot row was run and at most `max_errored_rows` rows errored."""
    accounted = report.rows_scored + report.rows_errored
    metadata = {
        "rows_in_snapshot": float(report.rows_in_snapshot),
        "rows_scored": float(report.rows_scored),
        "rows_errored": float(report.rows_errored),
    }
    empty = empty_reason(report)
    if empty:
        return False, empty, metadata
    if accounted != report.rows_in_snapshot:
        return (
            False,
            f"{report.rows_in_snapshot - accounted} of {report.rows_in_snapshot} snapshot rows were never run "
            f"({report.rows_scored} scored, {report.rows_errored} errored)",
            metadata,
        )
    if report.rows_errored > max_errored_rows:
        return (
            False,
            f"{report.rows_errored} rows errored ({report.task_errors} task errors, "
            f"{report.scorer_errors} scorer errors); at most {max_errored_rows} allowed",
            metadata,
        )
    return True, f"all {report.rows_in_snapshot} rows accounted for, {report.rows_errored} errored", metadata


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
    outcomes: list[tuple[str, tuple[bool, str, Mapping[str, Any]]]] = [
        (threshold_check_name(scorer), check_threshold(report, scorer, minimum))
        for scorer, minimum in thresholds.items()
    ]
    if max_regression:
        outcomes.append((REGRESSION_CHECK, check_regression(report, max_regression, baseline)))
    outcomes.append((COMPLETENESS_CHECK, check_completeness(report, max_errored_rows)))
    return [
        dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=name,
            passed=passed,
            severity=severity,
            description=f"[{partition}] {text}" if partition else text,
            metadata=rounded_for_display(
                {**metadata, "report_id": report.id, **({"partition": partition} if partition else {})}
            ),
        )
        for name, (passed, text, metadata) in outcomes
    ]
