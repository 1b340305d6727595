"""Gates that hold on every executor: an asset refuses to materialize unless its eval report's blocking
checks passed in the same run, for the same partition.

A blocking asset check stops downstream steps only where the executor honours it. The in-process and
multiprocess executors skip the dependents of a failed step; dagster-dask submits every step up front and
runs them anyway, so a release asset that merely depends on the eval report would still be materialized
after a failed gate. `require_passing_gates`, called first in the protected asset's body, reads the check
evaluations from the Dagster instance (the run's event log) and fails the step, closed, unless every
blocking check of the report has a passing evaluation in this run (or in the run it re-executes) for the
asset's partition:

    @dg.asset(deps=[suite.eval_report_key])
    def release_approved(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        approval = require_passing_gates(context, suite.eval_report_key)
        ...
        return dg.MaterializeResult(metadata=approval.metadata)

A check that failed, was never evaluated in this run, was evaluated only in another run, or only for
another partition refuses the asset with a `GateClosedError` naming the report and each such check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_evals.engine.errors import ConfigError, DagsterEvalsError
from dagster_evals.step_failures import dagster_failures

if TYPE_CHECKING:
    from dagster_evals.suite import EvalSuite

__all__ = ["GateApproval", "GateClosedError", "require_passing_gates"]

PARTITION_TAG = "dagster/partition"
# Runs followed up a re-execution chain (run → parent → ...): a bound, so a corrupt chain cannot loop.
MAX_REEXECUTION_DEPTH = 100


class GateClosedError(DagsterEvalsError, dg.Failure):
    """A gated asset refused to materialize: a blocking check of its eval report did not pass in this run.

    A `dagster.Failure` (the run page shows its message) that a retry policy does not retry: running the
    same step again reads the same evaluations.
    """

    def __init__(self, message: str, metadata: Mapping[str, Any] | None = None) -> None:
        DagsterEvalsError.__init__(self, message, metadata)
        dg.Failure.__init__(self, description=message, metadata=self.metadata, allow_retries=False)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class GateApproval:
    """The passing evaluations that let a gated asset materialize.

    Attributes:
        report_key: The eval report whose checks were read.
        run_id: The run whose evaluations were read (this run, or the run it re-executes).
        partitions: The partitions checked (`[None]` for an unpartitioned report).
        checks: Check name → its (last) passing evaluation's description.
    """

    report_key: dg.AssetKey
    run_id: str
    partitions: tuple[str | None, ...]
    checks: Mapping[str, str] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata for the gated asset's materialization: which report and checks approved it."""
        data: dict[str, Any] = {
            "gate_report": self.report_key.to_user_string(),
            "gate_checks_passed": ", ".join(sorted(self.checks)),
            "gate_run_id": self.run_id,
        }
        if self.partitions != (None,):
            data["gate_partitions"] = ", ".join(str(p) for p in self.partitions)
        return data


def report_key_of(report: Any) -> dg.AssetKey:
    """The asset key of `report`: an `EvalSuite` (its eval report), an `AssetKey`, a `"a/b/c"` string or a
    sequence of path parts."""
    key = getattr(report, "eval_report_key", None)
    if isinstance(key, dg.AssetKey):
        return key
    if isinstance(report, dg.AssetKey):
        return report
    if isinstance(report, str) and report:
        return dg.AssetKey.from_user_string(report)
    if isinstance(report, Sequence) and report and all(isinstance(p, str) and p for p in report):
        return dg.AssetKey(list(report))
    raise ConfigError(
        f"require_passing_gates: report must be an EvalSuite, an AssetKey, a 'path/to/eval_report' string or "
        f"a list of path parts, got {report!r}"
    )


@dataclass(frozen=True)
class _Declared:
    """What the code location declares about the report: its checks' blocking flags and its partitions
    (`checks` None when this job's definitions do not include the report's checks)."""

    checks: Mapping[str, bool] | None
    partitions_def: dg.PartitionsDefinition | None


def _declared(context: dg.AssetExecutionContext, report_key: dg.AssetKey) -> _Declared:
    """The report's declared checks, from the run's job (or, failing that, the code location)."""
    graphs = [context.job_def.asset_layer.asset_graph]
    with contextlib.suppress(Exception):  # an ephemeral in-process job (`dg.materialize`) has no repository
        graphs.append(context.repository_def.asset_graph)
    partitions_def = None
    for graph in graphs:
        if graph.has(report_key):
            node = graph.get(report_key)
            partitions_def = partitions_def or node.partitions_def
            if node.check_keys:  # a job that does not run the report may leave its checks out
                checks = {key.name: graph.get_check_spec(key).blocking for key in node.check_keys}
                return _Declared(checks=checks, partitions_def=node.partitions_def)
    return _Declared(checks=None, partitions_def=partitions_def)


def _required_checks(
    context: dg.AssetExecutionContext,
    report_key: dg.AssetKey,
    declared: _Declared,
    evaluated: Mapping[str, bool],
    checks: Sequence[str] | None,
) -> list[str]:
    """The checks that must pass: `checks`, else the report's blocking checks (as declared, or — when this
    job does not define the report — as recorded by the evaluations of this run)."""
    report = report_key.to_user_string()
    known = declared.checks if declared.checks is not None else evaluated
    if checks is not None:
        if isinstance(checks, str) or not all(isinstance(c, str) for c in checks):
            raise ConfigError(f"require_passing_gates: checks must be a list of check names, got {checks!r}")
        unknown = [c for c in checks if c not in known]
        if unknown and declared.checks is not None:
            raise ConfigError(
                f"require_passing_gates: eval report {report} has no check {', '.join(map(repr, unknown))} "
                f"(its checks: {', '.join(sorted(known)) or 'none'})"
            )
        return list(checks)
    if declared.checks is None and not evaluated:
        return []  # nothing to go by: the caller refuses, saying the report did not run in this run
    required = sorted(name for name, blocking in known.items() if blocking)
    if not required:
        raise GateClosedError(
            f"{context.asset_key.to_user_string()} refused to materialize: eval report {report} declares no "
            "blocking checks, so nothing gates it (set blocking=True on the suite, or name checks=...)",
            {"gate_report": report},
        )
    return required


def _partitions(
    context: dg.AssetExecutionContext,
    report_key: dg.AssetKey,
    declared: _Declared,
    partition: str | None,
) -> tuple[str | None, ...]:
    """The report partitions whose checks must have passed."""
    if partition is not None:
        return (partition,)
    if declared.partitions_def is None and (declared.checks is not None or not context.has_partition_key):
        return (None,)
    if context.has_partition_key_range or context.has_partition_key:
        return tuple(context.partition_keys)
    raise ConfigError(
        f"require_passing_gates: eval report {report_key.to_user_string()} is partitioned but "
        f"{context.asset_key.to_user_string()} runs without a partition: pass partition=<key>"
    )


def _run_lineage(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Iterator[dg.DagsterRun]:
    """This run, then the run it re-executes, and so on up to the first run of the group."""
    current: dg.DagsterRun | None = run
    seen: set[str] = set()
    while current is not None and current.run_id not in seen and len(seen) < MAX_REEXECUTION_DEPTH:
        seen.add(current.run_id)
        yield current
        parent = current.parent_run_id
        current = instance.get_run_by_id(parent) if parent else None


def _events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> Iterator[Any]:
    for record in instance.get_records_for_run(run_id, of_type=kind).records:
        event = record.event_log_entry.dagster_event
        if event is not None:
            yield event.event_specific_data


@dataclass(frozen=True)
class _RunEvaluations:
    """The last evaluation of each (check, partition) of the report recorded by one run."""

    run_id: str
    partition_tag: str | None
    by_check: Mapping[tuple[str, str | None], dg.AssetCheckEvaluation]

    def find(self, check: str, partition: str | None) -> dg.AssetCheckEvaluation | None:
        """The evaluation of `check` for `partition`; a check declared without partitions counts for the
        partition its run was launched for."""
        found = self.by_check.get((check, partition))
        if found is None and partition is not None and self.partition_tag == partition:
            found = self.by_check.get((check, None))
        return found


def _evaluations(
    instance: dg.DagsterInstance, run: dg.DagsterRun, report_key: dg.AssetKey
) -> tuple[list[_RunEvaluations], set[str]]:
    """The report's evaluations in this run's re-execution lineage (this run first), and the checks this
    run planned."""
    lineage: list[_RunEvaluations] = []
    for lineage_run in _run_lineage(instance, run):
        by_check: dict[tuple[str, str | None], dg.AssetCheckEvaluation] = {}
        for evaluation in _events(instance, lineage_run.run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            if isinstance(evaluation, dg.AssetCheckEvaluation) and evaluation.asset_key == report_key:
                by_check[(evaluation.check_name, evaluation.partition)] = evaluation  # the later one wins
        lineage.append(_RunEvaluations(lineage_run.run_id, lineage_run.tags.get(PARTITION_TAG), by_check))
    planned = {
        str(getattr(event, "check_name", ""))
        for event in _events(instance, run.run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED)
        if getattr(event, "asset_key", None) == report_key
    }
    return lineage, planned


def _latest(
    lineage: list[_RunEvaluations], planned: set[str], check: str, partition: str | None
) -> tuple[dg.AssetCheckEvaluation, str] | None:
    """The newest evaluation of `check` for `partition` in the lineage, with its run. A check this run
    planned counts only if this run evaluated it (an older run's result does not stand in for it)."""
    for position, run in enumerate(lineage):
        found = run.find(check, partition)
        if found is not None:
            return found, run.run_id
        if position == 0 and check in planned:
            return None
    return None


def _last_elsewhere(instance: dg.DagsterInstance, report_key: dg.AssetKey, check: str) -> str:
    """Where a check was last evaluated (any run), for the refusal message."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(report_key, check), limit=1
    )
    if not records:
        return "; it was never evaluated"
    return f"; last evaluated in run {records[0].run_id} ({records[0].status.value.lower()})"


def _last_report_run(instance: dg.DagsterInstance, report_key: dg.AssetKey) -> str:
    """Where the report was last materialized (any run), for the refusal message."""
    event = instance.get_latest_materialization_event(report_key)
    return (
        f"; last materialized in run {event.run_id}" if event is not None else "; it was never materialized"
    )


def _for(partition: str | None) -> str:
    return f" for partition {partition!r}" if partition is not None else ""


@dagster_failures
def require_passing_gates(
    context: dg.AssetExecutionContext,
    report: dg.AssetKey | str | Sequence[str] | EvalSuite,
    *,
    checks: Sequence[str] | None = None,
    partition: str | None = None,
) -> GateApproval:
    """Fail the step, closed, unless the eval report's blocking checks passed in this run.

    Call it first in the body of an asset that a gate protects (a release marker, a deployment, a model
    promotion). It reads the check evaluations of `report` from the Dagster instance and requires, for each
    blocking check (or each of `checks`), a passing evaluation recorded by this run — or, for a run
    re-executed from failure, by the run it re-executes, the newest one winning — for the same partition.
    This holds whatever the executor: dagster-dask, for instance, runs the dependents of a failed step,
    and this call is what then stops them.

    Args:
        context: The gated asset's execution context.
        report: The eval report: an `EvalSuite`, its `eval_report_key`, or that key as a `"a/b/c"` string.
        checks: The checks that must pass (default: every blocking check the report declares).
        partition: The report partition to require (default: the asset's own partition key or keys; an
            unpartitioned report needs none).

    Returns:
        The approval: which report, run, partitions and checks; `approval.metadata` is ready for the
        asset's `MaterializeResult`.

    Raises:
        GateClosedError: A check failed, was not evaluated in this run (evaluated in another run, or
            never), or was evaluated only for another partition; the report is not defined in this code
            location; or it declares no blocking checks. The message names the report and every such check.
        ConfigError: `report` or `checks` is malformed, or the report is partitioned and the asset is not
            (pass `partition=`).
    """
    report_key = report_key_of(report)
    declared = _declared(context, report_key)
    instance = context.instance
    run = context.run
    lineage, planned = _evaluations(instance, run, report_key)
    evaluated = {name: bool(e.blocking) for entry in lineage for (name, _), e in entry.by_check.items()}
    required = _required_checks(context, report_key, declared, evaluated, checks)
    partitions = _partitions(context, report_key, declared, partition)

    problems: list[str] = []
    if not required:
        problems.append(
            f"no check of eval report {report_key.to_user_string()} was evaluated in this run: materialize "
            "the eval report in the same run as this asset" + _last_report_run(instance, report_key)
        )
    passed: dict[str, str] = {}
    used_runs: set[str] = set()
    for check in required:
        for wanted in partitions:
            found = _latest(lineage, planned, check, wanted)
            if found is not None:
                evaluation, run_id = found
                if evaluation.passed:
                    passed[check] = evaluation.description or "passed"
                    used_runs.add(run_id)
                else:
                    problems.append(
                        f"{check} FAILED{_for(wanted)}: {evaluation.description or 'no description'}"
                    )
                continue
            others = sorted(
                {p or "(no partition)" for entry in lineage for (name, p) in entry.by_check if name == check}
            )
            if others:
                problems.append(
                    f"{check} was evaluated in this run only for partition {', '.join(others)}, not {wanted!r}"
                    if wanted is not None
                    else f"{check} was evaluated in this run only for partition {', '.join(others)}"
                )
            elif check in planned:
                problems.append(
                    f"{check} was planned in this run but never evaluated{_for(wanted)} (the eval report step "
                    "failed before its checks, or was skipped)"
                )
            else:
                problems.append(
                    f"{check} was not evaluated in this run{_for(wanted)}: materialize the eval report in the "
                    f"same run as this asset{_last_elsewhere(instance, report_key, check)}"
                )

    report_name = report_key.to_user_string()
    if problems:
        raise GateClosedError(
            f"{context.asset_key.to_user_string()} refused to materialize: the blocking checks of eval report "
            f"{report_name} did not pass in run {run.run_id}{_for(partitions[0]) if len(partitions) == 1 else ''}"
            f": " + "; ".join(problems),
            {"gate_report": report_name, "gate_problems": "\n".join(problems)},
        )
    context.log.info(
        f"gate of {report_name} passed{_for(partitions[0]) if len(partitions) == 1 else ''}: "
        + ", ".join(sorted(passed))
    )
    newest = next((r.run_id for r in _run_lineage(instance, run) if r.run_id in used_runs), run.run_id)
    return GateApproval(report_key=report_key, run_id=newest, partitions=partitions, checks=passed)
