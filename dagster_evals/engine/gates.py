"""The gate rules on an eval report, shared by the Dagster checks and the Airflow gate operator.

Three rules, each turning an `EvalReport` into `(passed, message, numbers)`: per-scorer thresholds
(`threshold_<scorer>`), regression against a baseline (`no_regression`), completeness (`completeness`).
Both orchestrators show these same messages. Imports no orchestrator.

Gates fail closed: an empty snapshot fails every threshold and completeness, and a baseline that was recorded
but cannot be read fails `no_regression` (`Baseline.failure`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.formatting import format_number
from dagster_evals.engine.models import EvalReport
from dagster_evals.engine.platform import EvalPlatform

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def describe_backend(platform: EvalPlatform) -> str:
    """Where a platform stores its data, for messages: `local backend at /path/evals.sqlite`.

    Credentials in a URL (`user:password@`) are left out.
    """
    for attr in ("url", "path", "api_url", "base_url"):
        value = getattr(platform, attr, None)
        if value:
            return f"{platform.platform} backend at {_URL_CREDENTIALS.sub('***@', str(value))}"
    return f"{platform.platform} backend"


@dataclass(frozen=True)
class Baseline:
    """The outcome of a baseline lookup.

    Attributes:
        report_id: The report to compare with, or None.
        note: Why there is (or is not) a baseline, for logs and the `no_regression` check.
        failure: Set when a baseline was recorded but cannot be read: the `no_regression` check fails
            with this message.
        run_id: The run (Dagster's or Airflow's) that produced the baseline report, when known.
    """

    report_id: str | None
    note: str
    failure: str | None = None
    run_id: str | None = None


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

    Fails closed when a baseline was recorded but could not be read (`baseline.failure`). The numbers name
    the baseline (`baseline_id`) and, per scorer, the diff and the allowed drop (`allowed_drop/<scorer>`),
    so a reader of the check sees why it passed or failed.
    """
    metadata: dict[str, Any] = {f"allowed_drop/{scorer}": float(limit) for scorer, limit in max_drop.items()}
    if baseline is not None and baseline.failure:
        return False, baseline.failure, metadata
    if report.baseline_id is None:
        note = baseline.note if baseline is not None else "no baseline to compare with yet"
        return True, note, metadata
    metadata["baseline_id"] = report.baseline_id
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


@dataclass(frozen=True)
class GateResult:
    """One rule's verdict on a report.

    Attributes:
        name: The rule: `threshold_<scorer>`, `no_regression` or `completeness`.
        passed: Whether the report meets the rule.
        message: Why, in words (the same text in Dagster's check and in Airflow's gate task).
        numbers: The figures behind the verdict (score, threshold, diffs, row counts).
    """

    name: str
    passed: bool
    message: str
    numbers: dict[str, Any]


def evaluate_gate(
    report: EvalReport,
    thresholds: Mapping[str, float],
    max_regression: Mapping[str, float],
    max_errored_rows: int,
    baseline: Baseline | None = None,
) -> list[GateResult]:
    """Every rule against a report: thresholds (in the order given), `no_regression` when any scorer has an
    allowed drop, then `completeness`.

    Examples:
        >>> from dagster_evals.engine.models import EvalReport, ScoreSummary
        >>> report = EvalReport(id="r1", name="bot", platform="local", rows_in_snapshot=2, rows_scored=2,
        ...                     scores={"exact_match": ScoreSummary(name="exact_match", mean=0.5, count=2)})
        >>> [(g.name, g.passed) for g in evaluate_gate(report, {"exact_match": 0.9}, {}, 0)]
        [('threshold_exact_match', False), ('completeness', True)]
    """
    results = [
        GateResult(threshold_check_name(scorer), *check_threshold(report, scorer, minimum))
        for scorer, minimum in thresholds.items()
    ]
    if max_regression:
        results.append(GateResult(REGRESSION_CHECK, *check_regression(report, max_regression, baseline)))
    results.append(GateResult(COMPLETENESS_CHECK, *check_completeness(report, max_errored_rows)))
    return results


def gate_verdict(results: Sequence[GateResult]) -> str:
    """`passed`, or `FAILED: ` and the names of the failed rules."""
    failed = [result.name for result in results if not result.passed]
    return "passed" if not failed else "FAILED: " + ", ".join(failed)
