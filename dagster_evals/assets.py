"""Factories for the assets of an eval suite: dataset → dataset snapshot → eval report (with checks).

    suite = EvalSuite(name="support_bot", source="data/support_bot.jsonl", task=answer,
                      scorers=["levenshtein", "exact_match"], thresholds={"levenshtein": 0.7})
    defs = build_eval_suite_definitions(suite)

Every asset asks the resource under `suite.resource_key` (any `EvalPlatformResource`: local, Braintrust,
Keywords AI) for its platform, so the same suite runs on all three.
"""

import dataclasses
import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import dagster as dg

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource
from dagster_evals.baselines import (
    BASELINE_DEFAULT,
    BASELINE_LAST_PASSING,
    BASELINE_LOOKBACK,
    BASELINE_MODES,
    BASELINE_PREVIOUS,
    BASELINE_PREVIOUS_PARTITION,
    Baseline,
    describe_backend,
    resolve_baseline,
)
from dagster_evals.checks import check_specs, evaluate_checks
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.git import repo_info
from dagster_evals.engine.models import EvalReport, EvalRequest, PlatformFunction, Snapshot
from dagster_evals.engine.scorers import resolve_scorer
from dagster_evals.engine.sources import RowSource, as_source
from dagster_evals.engine.summary import report_counts_line
from dagster_evals.engine.sync import scan_source, sync_rows
from dagster_evals.engine.triggers import Trigger, find_prompt_version, resolve_trigger
from dagster_evals.eval_state import eval_state, fail_abandoned_reports
from dagster_evals.judges.binding import bind_judge, judge_resource_keys
from dagster_evals.metadata import PREVIEW_ROWS, snapshot_metadata, sync_metadata
from dagster_evals.pinning import Upstream, load_pinned_snapshot, pin_dataset_version
from dagster_evals.report_metadata import eval_report_metadata, observed_prompt_version
from dagster_evals.sharding import suite_checkpoints, validate_sharding
from dagster_evals.step_failures import dagster_failures
from dagster_evals.suite_config import check_scorer_names, validate_suite
from dagster_evals.translator import BACKENDS, DagsterEvalsTranslator, spec_kwargs, suite_asset_spec

SourceLike = RowSource | str | Path | Callable[[], Iterable[Any]]
__all__ = [
    "BASELINE_DEFAULT",
    "BASELINE_LAST_PASSING",
    "BASELINE_LOOKBACK",
    "BASELINE_MODES",
    "BASELINE_PREVIOUS",
    "BASELINE_PREVIOUS_PARTITION",
    "EvalSuite",
    "build_dataset_asset",
    "build_eval_report_asset",
    "build_eval_suite_assets",
    "build_eval_suite_definitions",
    "build_eval_suite_job",
    "build_snapshot_asset",
    "get_platform",
    "load_pinned_snapshot",
    "run_suite_eval",
]


@dataclass(frozen=True)
class EvalSuite:
    """Declares one eval suite: where its rows come from, what runs on them, and what must hold.

    Args:
        name: Suite name; used for the dataset name, asset keys, group and job names.
        source: A `.jsonl`/`.csv` path, a `RowSource`, or a callable returning an iterable of row dicts.
        task: The application under test: a Python callable (sync or async) taking the row's input (or
            keyword arguments `input`, `expected`, `metadata`, `row_id`, `trial`), or a `PlatformFunction`.
        scorers: Built-in scorer names (`levenshtein`, `exact_match`, `numeric_diff`, `json_diff`, …),
            callables returning a score in [0, 1] or None, or `PlatformFunction`s.
        key_field: Top-level field holding each row's stable key; default: ids derived from row content.
        row_timeout_s: Longest one task call may take; a row past it is recorded as timed out.
        scorer_timeout_s: Longest one scorer call may take; past it the row records a scorer error.
            Default `"auto"`: the row timeout when set, at most 300 s (None: no limit).
        isolation: `"process"` runs each call of a sync task in a worker process that is killed when the
            call times out (for tasks that can wedge a thread); default `"thread"`.
        thresholds: Minimum mean score per scorer name; each becomes an asset check.
        max_regression: Largest allowed drop of a scorer's mean against the baseline (one number for all
            scorers, or per scorer name); becomes the `no_regression` check.
        max_errored_rows: Rows allowed to error (task or scorer) before the completeness check fails.
        blocking: Whether failed checks stop downstream assets (e.g. a release) in the same run.
        baseline: What `no_regression` compares with. `"last_passing"` (default: the latest earlier
            report, any partition, whose checks all passed — a blocked regression never becomes the
            baseline, so re-running it cannot approve it), `"previous"` (the latest earlier report even if
            it failed its gate), `"previous_partition"` (the latest report of the partition added before
            this one), a pinned report id, or None for no baseline.
        allow_missing_baseline: By default a baseline recorded in Dagster that the backend can no longer
            read (deleted, or a step on another backend) fails `no_regression`; True compares with the
            newest readable one instead (or none), with a warning.
        partitions_def: Dynamic partitions of the eval report, one per prompt version / release; the
            prompt-version and release sensors add partitions to it.
        git_repo: Local git checkout used to resolve a release tag's commit and to record the repository
            state of unpartitioned runs.
        shards: Dagster steps the eval report runs across (default 1). With N > 1 a plan step, N shard
            steps (each scoring the rows whose row-id hash falls in its shard) and a combine step that
            builds one report, equal to an unsharded run's, and emits the checks. Needs a Python task.
        resume: Checkpoint each scored row in the suite's state database (the resource's `url` or
            `state_database_url`, else `DAGSTER_EVALS_DATABASE_URL`) so a run re-executed from failure
            scores only the rows not yet scored (default True; required with shards > 1).
        judge_resource_key: Key of an `OpenAIJudgeResource` (e.g. "judge") that the LLM judges and
            `prompt_task()` of this suite call, unless built with their own `endpoint=`; None (default):
            `OPENAI_BASE_URL` / `OPENAI_API_KEY`.
    """

    name: str
    source: SourceLike
    task: Any
    scorers: Sequence[Any]
    key_field: str | None = None
    dataset_name: str | None = None
    project: str | None = None
    description: str | None = None
    trial_count: int = 1
    max_concurrency: int | None = 10
    row_timeout_s: float | None = 60.0
    scorer_timeout_s: float | Literal["auto"] | None = "auto"
    isolation: Literal["thread", "process"] = "thread"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    max_regression: float | Mapping[str, float] | None = None
    max_errored_rows: int = 0
    blocking: bool = True
    baseline: str | None = BASELINE_DEFAULT
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    resource_key: str = "evals"
    key_prefix: Sequence[str] | None = None
    group_name: str | None = None
    partitions_def: dg.DynamicPartitionsDefinition | None = None
    git_repo: str | Path | None = None
    allow_missing_baseline: bool = False
    row_tags: Sequence[str] = ()
    backend: str | None = None
    translator: DagsterEvalsTranslator | None = None
    prompt: str | None = None
    owners: Sequence[str] = ()
    asset_tags: Mapping[str, str] = field(default_factory=dict)
    op_tags: Mapping[str, Any] = field(default_factory=dict)
    pool: str | None = None
    retry_policy: dg.RetryPolicy | None = None
    code_version: str | None = None
    automation_condition: dg.AutomationCondition | None = None
    shards: int = 1
    resume: bool = True
    judge_resource_key: str | None = None

    def __post_init__(self) -> None:
        validate_suite(self)  # first: checks `tags` as given, before it is mapped onto `row_tags`
        validate_dagster_fields(self)
        validate_sharding(self)
        names = self.scorer_names
        check_scorer_names(self.name, names)
        unknown = sorted(set(self.thresholds) - set(names))
        if unknown:
            raise ConfigError(
                f"suite {self.name!r}: thresholds name unknown scorer(s) {', '.join(unknown)}; "
                f"the suite's scorers are {', '.join(names)}"
            )
        unknown = sorted(set(self.regression_limits) - set(names))
        if unknown:
            raise ConfigError(
                f"suite {self.name!r}: max_regression names unknown scorer(s) {', '.join(unknown)}; "
                f"the suite's scorers are {', '.join(names)}"
            )

    @property
    def scorer_names(self) -> list[str]:
        return [s.name if isinstance(s, PlatformFunction) else resolve_scorer(s).name for s in self.scorers]

    @property
    def regression_limits(self) -> dict[str, float]:
        if self.max_regression is None:
            return {}
        if isinstance(self.max_regression, int | float):
            return {name: float(self.max_regression) for name in self.scorer_names}
        return {k: float(v) for k, v in self.max_regression.items()}

    @property
    def prefix(self) -> list[str]:
        return list(self.key_prefix) if self.key_prefix is not None else ["evals", self.name]

    @property
    def dataset_key(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "dataset"])

    @property
    def snapshot_key(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "dataset_snapshot"])

    @property
    def eval_report_key(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "eval_report"])

    @property
    def job_name(self) -> str:
        return f"{self.name.replace('-', '_')}_eval_job"


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


def snapshot_upstream_metadata(upstream: Upstream) -> dict[str, Any]:
    """Which upstream materialization a step read, for its own metadata."""
    return {"pinned_from": upstream.source, "pinned_from_run_id": upstream.run_id}


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


def build_dataset_asset(suite: EvalSuite) -> dg.AssetsDefinition:
    """Asset that syncs the suite's source rows into the platform dataset, idempotently."""
    source = as_source(suite.source, suite.key_field)

    @dg.asset(
        **spec_kwargs(suite_asset_spec(suite, "dataset")),
        **op_kwargs(suite),
        required_resource_keys={suite.resource_key},
    )
    @dagster_failures
    def _dataset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        platform = get_platform(context, suite.resource_key)
        # The source is validated (in bounded memory) before the dataset is created or touched.
        with scan_source(source, check=platform.check_rows) as scanned:
            dataset = platform.ensure_dataset(suite.dataset_name or suite.name, project=suite.project)
            result = sync_rows(platform, dataset, scanned, progress=context.log.info)
        context.log.info(
            f"dataset {dataset.name!r} on {platform.platform}: {result.rows_total} rows, {result.added} added, "
            f"{result.updated} updated, {result.removed} removed, {result.unchanged} unchanged "
            f"(version {result.version})"
        )
        return dg.MaterializeResult(metadata=sync_metadata(result))

    return _dataset


def build_snapshot_asset(suite: EvalSuite) -> dg.AssetsDefinition:
    """Asset that pins the dataset's current version: version id, row count, digest, preview."""

    @dg.asset(
        **spec_kwargs(suite_asset_spec(suite, "snapshot")),
        **op_kwargs(suite),
        required_resource_keys={suite.resource_key},
    )
    @dagster_failures
    def _snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        platform = get_platform(context, suite.resource_key)
        snapshot, upstream = pin_dataset_version(
            context.instance,
            context.run_id,
            suite.dataset_key,
            platform,
            suite.project,
            # task=None scores a dataset kept on the platform (e.g. sampled production logs)
            platform_dataset=(suite.dataset_name or suite.name) if suite.task is None else None,
        )
        preview = list(
            itertools.islice(platform.iter_rows(snapshot.dataset, version=snapshot.version), PREVIEW_ROWS)
        )
        context.log.info(
            f"pinned {snapshot.dataset.name!r} version {snapshot.version} (recorded by the dataset "
            f"materialization of {upstream.source}): {snapshot.row_count} rows, digest {snapshot.digest[:12]}"
        )
        return dg.MaterializeResult(
            metadata={**snapshot_metadata(snapshot, preview), **snapshot_upstream_metadata(upstream)},
            data_version=dg.DataVersion(snapshot.digest),
        )

    return _snapshot


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
    request = EvalRequest(
        name=name,
        snapshot=snapshot,
        task=suite.task,
        scorers=list(suite.scorers),
        trial_count=suite.trial_count,
        max_concurrency=suite.max_concurrency,
        row_timeout_s=suite.row_timeout_s,
        scorer_timeout_s=suite.scorer_timeout_s,
        isolation=suite.isolation,
        baseline_id=baseline_id,
        metadata=metadata,
        tags=list(suite.tags),
        prompt=trigger.prompt,
        repo_info=repo_state,
    )
    context.log.info(
        f"running eval {name!r} on {platform.platform}: {snapshot.row_count} rows x {suite.trial_count} trials, "
        f"max_concurrency={suite.max_concurrency}; snapshot version {snapshot.version} from {upstream.source}; "
        f"{baseline.note}"
    )
    return PreparedEval(request, upstream, trigger, baseline)


def build_eval_report_asset(suite: EvalSuite) -> dg.AssetsDefinition:
    """Asset that runs the eval on the pinned snapshot and gates it with threshold/regression/completeness checks."""
    if suite.shards > 1:
        from dagster_evals.sharded_asset import build_sharded_eval_report_asset

        return build_sharded_eval_report_asset(suite)
    key = suite.eval_report_key
    thresholds = dict(suite.thresholds)
    regression = suite.regression_limits

    @dg.asset(
        **spec_kwargs(suite_asset_spec(suite, "eval_report")),
        **op_kwargs(suite),
        required_resource_keys={suite.resource_key, *judge_resource_keys(suite)},
        check_specs=check_specs(key, thresholds, regression, suite.blocking, suite.partitions_def),
        partitions_def=suite.partitions_def,
    )
    @dagster_failures
    def _eval_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        platform = get_platform(context, suite.resource_key)
        with bind_judge(context, suite.judge_resource_key), eval_state(context, suite):
            run = run_suite_eval(context, suite, platform)
        return eval_report_result(context, suite, platform, run)

    return _eval_report


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


def build_eval_suite_assets(suite: EvalSuite) -> list[dg.AssetsDefinition]:
    """The dataset, snapshot and eval report assets of a suite."""
    return [build_dataset_asset(suite), build_snapshot_asset(suite), build_eval_report_asset(suite)]


def build_eval_suite_job(suite: EvalSuite) -> Any:
    """Job materializing dataset → snapshot → eval report (with its checks)."""
    return dg.define_asset_job(
        suite.job_name,
        selection=dg.AssetSelection.assets(suite.dataset_key, suite.snapshot_key, suite.eval_report_key),
        description=f"Sync, pin and evaluate suite {suite.name!r}.",
    )


def build_eval_suite_definitions(
    suite: EvalSuite, *, translator: DagsterEvalsTranslator | None = None
) -> dg.Definitions:
    """Assets, checks and job of a suite, ready to merge into the code location's `Definitions`.

    Args:
        suite: The suite.
        translator: Shapes the assets' specs (keys, groups, kinds, owners, tags, automation); default
            the suite's own `translator`, else `DagsterEvalsTranslator()`.

    Examples:
        >>> import dagster as dg
        >>> suite = EvalSuite(name="bot", source="rows.jsonl", task=str.upper, scorers=["exact_match"])
        >>> defs = build_eval_suite_definitions(suite)
        >>> sorted(k.to_user_string() for a in defs.assets for k in a.keys)
        ['evals/bot/dataset', 'evals/bot/dataset_snapshot', 'evals/bot/eval_report']
    """
    suite = with_translator(suite, translator)
    return dg.Definitions(
        assets=[*build_eval_suite_assets(suite), *lineage_assets(suite)], jobs=[build_eval_suite_job(suite)]
    )


def validate_dagster_fields(suite: EvalSuite) -> None:
    """Check the suite's Dagster-facing fields; map the deprecated `tags` onto `row_tags`."""
    if suite.tags and suite.row_tags and list(suite.tags) != list(suite.row_tags):
        raise ConfigError(f"suite {suite.name!r}: give row_tags only (tags is its deprecated name)")
    if suite.tags and not suite.row_tags:
        warnings.warn(
            "EvalSuite(tags=...) is deprecated: use row_tags=... (tags stored on the platform's rows); "
            "Dagster asset tags are asset_tags=...",
            DeprecationWarning,
            stacklevel=4,
        )
        object.__setattr__(suite, "row_tags", tuple(suite.tags))
    object.__setattr__(suite, "tags", tuple(suite.row_tags))
    if suite.backend is not None and suite.backend not in BACKENDS:
        raise ConfigError(
            f"suite {suite.name!r}: backend {suite.backend!r} is not one of {', '.join(BACKENDS)}"
        )
    if suite.translator is not None and not isinstance(suite.translator, DagsterEvalsTranslator):
        raise ConfigError(
            f"suite {suite.name!r}: translator must be a DagsterEvalsTranslator, "
            f"got {type(suite.translator).__name__}"
        )


class OpKwargs(TypedDict):
    """The `@dg.asset` arguments that shape the step running an asset."""

    op_tags: dict[str, Any] | None
    pool: str | None
    retry_policy: dg.RetryPolicy | None


def op_kwargs(suite: EvalSuite) -> OpKwargs:
    """The `@dg.asset` arguments that shape the step running an asset: op tags, pool, retry policy."""
    return OpKwargs(op_tags=dict(suite.op_tags) or None, pool=suite.pool, retry_policy=suite.retry_policy)


def with_translator(suite: EvalSuite, translator: DagsterEvalsTranslator | None) -> EvalSuite:
    """The suite with `translator` (when given) in place of its own."""
    return suite if translator is None else dataclasses.replace(suite, translator=translator)


def lineage_assets(suite: EvalSuite) -> list[dg.AssetsDefinition]:
    """The observable prompt asset of a suite that names the prompt it evaluates (else nothing)."""
    if suite.prompt is None:
        return []
    from dagster_evals.sensors import build_prompt_asset

    return [build_prompt_asset(suite)]


def with_observed_prompt(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    suite: EvalSuite,
    platform: EvalPlatform,
    trigger: Trigger,
) -> Trigger:
    """The trigger, with the suite's prompt at its last observed version when the run names no prompt.

    So an eval started by an automation condition (after a new prompt version was observed) evaluates —
    and records — that version.
    """
    if trigger.prompt is not None or suite.prompt is None:
        return trigger
    version = observed_prompt_version(context.instance, suite)
    if version is None:
        return trigger
    prompt = find_prompt_version(platform, suite.project, suite.prompt, version)
    return dataclasses.replace(trigger, prompt=prompt)
