"""The eval step of a suite: pin the snapshot, resolve baseline and trigger, run the eval, report it.

`prepare_suite_eval` builds the request an eval report step runs (the pinned snapshot, the baseline, the
prompt version or release that triggered it, the run's metadata); `run_suite_eval` runs it with row
checkpoints; `eval_report_result` turns the report into the materialization and its check results. The
unsharded eval report asset (`dagster_evals.assets`) and the plan and combine steps of a sharded one
(`dagster_evals.sharding`) share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource
from dagster_evals.baselines import Baseline, describe_backend, resolve_baseline
from dagster_evals.checks import evaluate_checks
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.git import repo_info
from dagster_evals.engine.models import EvalReport, EvalRequest, Snapshot
from dagster_evals.engine.summary import report_counts_line
from dagster_evals.engine.triggers import Trigger, resolve_trigger
from dagster_evals.eval_state import fail_abandoned_reports
from dagster_evals.lineage import with_observed_prompt
from dagster_evals.pinning import Upstream, load_pinned_snapshot
from dagster_evals.report_metadata import eval_report_metadata
from dagster_evals.sharding.shards import suite_checkpoints
from dagster_evals.suite import EvalSuite

__all__ = [
    "PreparedEval",
    "SuiteEvalRun",
    "eval_report_result",
    "get_platform",
    "prepare_suite_eval",
    "require_partition_key",
    "run_suite_eval",
]


def get_platform(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, resource_key: str
) -> EvalPlatform:
    """The platform behind the resource under `resource_key`."""
    resource = getattr(context.resources, resource_key, None)
    if not isinstance(resource, EvalPlatformResource):
        raise ConfigError(
            f"resource {resource_key!r} must be a LocalEvalResource, BraintrustResource or KeywordsAIResource, "
            f"got {type(resource).__name__}"
        )
    return resource.get_platform()


def require_partition_key(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, suite: EvalSuite
) -> str | None:
    """The run's partition key; an error when the suite is partitioned and the run has none."""
    if context.has_partition_key:
        return context.partition_key
    if suite.partitions_def is not None:
        raise ConfigError(
            f"{suite.eval_report_key.to_user_string()} is partitioned by {suite.partitions_def.name!r}: run it "
            "for one partition (e.g. `dagster asset materialize --partition <key>`, or a sensor/schedule of "
            "the suite), not without a partition key"
        )
    return None


@dataclass(frozen=True)
class SuiteEvalRun:
    """One eval of a suite: the report, the snapshot it ran on (and where that came from), the baseline."""

    report: EvalReport
    snapshot: Snapshot
    snapshot_upstream: Upstream
    trigger: Trigger
    baseline: Baseline


@dataclass(frozen=True)
class PreparedEval:
    """An eval of a suite ready to run: the request, and where its snapshot, trigger and baseline came from."""

    request: EvalRequest
    snapshot_upstream: Upstream
    trigger: Trigger
    baseline: Baseline

    def finished(self, report: EvalReport) -> SuiteEvalRun:
        """The run, once `report` is built."""
        return SuiteEvalRun(
            report, self.request.snapshot, self.snapshot_upstream, self.trigger, self.baseline
        )


def run_suite_eval(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, suite: EvalSuite, platform: EvalPlatform
) -> SuiteEvalRun:
    """Run the suite's eval over the snapshot its upstream snapshot materialization recorded.

    With `suite.resume` (the default), each scored row is checkpointed as it completes, and a re-execution
    of the run (Dagster's "re-execute from failure") replays the rows already scored instead of scoring
    them again.
    """
    prepared = prepare_suite_eval(context, suite, platform)
    request = prepared.request
    if suite.resume and callable(suite.task):  # a platform-side task has no rows scored here to keep
        request = request.model_copy(
            update={"checkpoints": suite_checkpoints(context, suite, request.snapshot, prune=True)}
        )
    fail_abandoned_reports(context, platform, request.snapshot.dataset.id)
    report = platform.run_eval(request, progress=context.log.info)
    return prepared.finished(report)


def prepare_suite_eval(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, suite: EvalSuite, platform: EvalPlatform
) -> PreparedEval:
    """The eval request of this step: pinned snapshot, baseline, trigger, prompt version and metadata."""
    partition = require_partition_key(context, suite)
    snapshot, upstream = load_pinned_snapshot(context.instance, context.run_id, suite.snapshot_key, platform)
    baseline = resolve_baseline(
        context,
        suite_name=suite.name,
        key=suite.eval_report_key,
        mode=suite.baseline,
        platform=platform,
        partitions_def=suite.partitions_def,
        allow_missing=suite.allow_missing_baseline,
    )
    if baseline.failure and suite.regression_limits:
        context.log.error(f"no_regression will fail: {baseline.failure}")
    baseline_id = baseline.report_id
    trigger = resolve_trigger(dict(context.run.tags), partition, platform, suite.project, suite.git_repo)
    trigger = with_observed_prompt(context, suite, platform, trigger)
    metadata: dict[str, Any] = {
        **suite.metadata,
        "suite": suite.name,
        "dagster_run_id": context.run_id,
        "dataset_asset": suite.dataset_key.to_user_string(),
        "dataset_version": snapshot.version,
        "dataset_digest": snapshot.digest,
        **trigger.metadata(),
    }
    if partition is not None:
        metadata["partition"] = partition
    repo_state = None
    if trigger.release is not None:
        repo_state = {
            "tag": trigger.release.tag,
            **({"commit": trigger.release.commit} if trigger.release.commit else {}),
        }
    elif suite.git_repo is not None:
        repo_state = repo_info(suite.git_repo)
    name = (
        f"{suite.name}-{partition}-{context.run_id[:8]}"
        if partition
        else f"{suite.name}-{context.run_id[:8]}"
    )
    request = EvalRequest.with_run_settings_of(
        suite,
        name=name,
        snapshot=snapshot,
        baseline_id=baseline_id,
        metadata=metadata,
        prompt=trigger.prompt,
        repo_info=repo_state,
    )
    context.log.info(
        f"running eval {name!r} on {platform.platform}: {snapshot.row_count} rows x {suite.trial_count} trials, "
        f"max_concurrency={suite.max_concurrency}; snapshot version {snapshot.version} from {upstream.source}; "
        f"{baseline.note}"
    )
    return PreparedEval(request, upstream, trigger, baseline)


def eval_report_result(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    suite: EvalSuite,
    platform: EvalPlatform,
    run: SuiteEvalRun,
    *,
    extra_details: dict[str, Any] | None = None,
) -> dg.MaterializeResult:
    """The eval report's materialization: report metadata (see `report_metadata`) and check results."""
    report = run.report
    context.log.info(
        f"eval report {report.id}: {report_counts_line(report)} — stored in "
        f"{report.url or describe_backend(platform)}"
    )
    partition = context.partition_key if context.has_partition_key else None
    checks = evaluate_checks(
        report,
        suite.eval_report_key,
        dict(suite.thresholds),
        suite.regression_limits,
        suite.max_errored_rows,
        baseline=run.baseline,
        partition=partition,
    )
    metadata = eval_report_metadata(context, suite, platform, run, checks, extra_details=extra_details)
    return dg.MaterializeResult(metadata=metadata, check_results=checks)
