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
from typing import Any, TypedDict

import dagster as dg

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource
from dagster_evals.checks import check_specs, evaluate_checks, validate_thresholds
from dagster_evals.errors import ConfigError, DagsterEvalsError, NotFoundError
from dagster_evals.git import repo_info
from dagster_evals.metadata import (
    PREVIEW_ROWS,
    lineage_metadata,
    report_metadata,
    row_changes_metadata,
    snapshot_metadata,
    sync_metadata,
)
from dagster_evals.models import DatasetRef, EvalReport, EvalRequest, PlatformFunction, Snapshot
from dagster_evals.scorers import resolve_scorer
from dagster_evals.sources import RowSource, as_source, load_rows
from dagster_evals.sync import sync_rows
from dagster_evals.translator import BACKENDS, DagsterEvalsTranslator, spec_kwargs, suite_asset_spec
from dagster_evals.triggers import Trigger, find_prompt_version, resolve_trigger

SourceLike = RowSource | str | Path | Callable[[], Iterable[Any]]
BASELINE_PREVIOUS = "previous"
BASELINE_PREVIOUS_PARTITION = "previous_partition"
BASELINE_LAST_PASSING = "last_passing"
BASELINE_MODES = (BASELINE_PREVIOUS, BASELINE_PREVIOUS_PARTITION, BASELINE_LAST_PASSING)
# How many past materializations a baseline lookup reads at most.
BASELINE_LOOKBACK = 200


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
        thresholds: Minimum mean score per scorer name; each becomes an asset check.
        max_regression: Largest allowed drop of a scorer's mean against the baseline (one number for all
            scorers, or per scorer name); becomes the `no_regression` check.
        max_errored_rows: Rows allowed to error (task or scorer) before the completeness check fails.
        blocking: Whether failed checks stop downstream assets (e.g. a release) in the same run.
        baseline: `"previous"` (the latest earlier materialization of the eval report, any partition),
            `"previous_partition"` (the latest materialization of the partition added before this one),
            `"last_passing"` (the latest materialization whose checks all passed), a pinned report id, or
            None for no baseline.
        partitions_def: Dynamic partitions of the eval report, one per prompt version / release; the
            prompt-version and release sensors add partitions to it.
        git_repo: Local git checkout used to resolve a release tag's commit and to record the repository
            state of unpartitioned runs.
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
    thresholds: Mapping[str, float] = field(default_factory=dict)
    max_regression: float | Mapping[str, float] | None = None
    max_errored_rows: int = 0
    blocking: bool = True
    baseline: str | None = BASELINE_PREVIOUS
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    resource_key: str = "evals"
    key_prefix: Sequence[str] | None = None
    group_name: str | None = None
    partitions_def: dg.DynamicPartitionsDefinition | None = None
    git_repo: str | Path | None = None
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

    def __post_init__(self) -> None:
        validate_dagster_fields(self)
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"suite name {self.name!r} must be letters, digits, '_' or '-'")
        if not self.scorers:
            raise ConfigError(f"suite {self.name!r} needs at least one scorer")
        if self.trial_count < 1:
            raise ConfigError(f"suite {self.name!r}: trial_count must be at least 1")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"suite {self.name!r}: max_concurrency must be at least 1 (or None)")
        if self.partitions_def is not None and not isinstance(
            self.partitions_def, dg.DynamicPartitionsDefinition
        ):
            raise ConfigError(f"suite {self.name!r}: partitions_def must be a dg.DynamicPartitionsDefinition")
        if self.max_errored_rows < 0:
            raise ConfigError(f"suite {self.name!r}: max_errored_rows must be 0 or more")
        validate_thresholds(self.thresholds)
        names = self.scorer_names
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


def _meta_value(metadata: Mapping[str, Any], key: str) -> Any:
    value = metadata.get(key)
    return getattr(value, "value", value)


def latest_materialization_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, Any] | None:
    """Plain metadata values of the latest materialization of `key` (any partition), or None."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return {
        k: _meta_value(event.asset_materialization.metadata, k) for k in event.asset_materialization.metadata
    }


def load_pinned_snapshot(instance: dg.DagsterInstance, suite: EvalSuite, platform: EvalPlatform) -> Snapshot:
    """The snapshot recorded by the latest materialization of the suite's snapshot asset."""
    metadata = latest_materialization_metadata(instance, suite.snapshot_key)
    if metadata is None:
        raise DagsterEvalsError(
            f"no snapshot of suite {suite.name!r} yet: materialize {suite.snapshot_key.to_user_string()} first"
        )
    if metadata.get("platform") != platform.platform:
        raise DagsterEvalsError(
            f"the latest snapshot of suite {suite.name!r} was taken on {metadata.get('platform')}, but the "
            f"resource {suite.resource_key!r} is {platform.platform}: materialize "
            f"{suite.snapshot_key.to_user_string()} again"
        )
    return Snapshot(
        dataset=DatasetRef(
            platform=platform.platform,
            id=str(metadata["dataset_id"]),
            name=str(metadata["dataset_name"]),
            project=metadata.get("dataset_project") or None,
        ),
        version=str(metadata["snapshot_version"]),
        row_count=int(metadata["row_count"]),
        digest=str(metadata["digest"]),
    )


def _report_records(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> list[dict[str, Any]]:
    """Metadata of past materializations of `key` (optionally of one partition), newest first."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=BASELINE_LOOKBACK,
    ).records
    found = []
    for record in records:
        mat = record.asset_materialization
        if mat is not None:
            found.append(
                {k: _meta_value(mat.metadata, k) for k in mat.metadata} | {"_partition": mat.partition}
            )
    return found


def resolve_baseline(
    context: dg.AssetExecutionContext, suite: EvalSuite, platform: EvalPlatform
) -> str | None:
    """The report id to compare against, per `suite.baseline`."""
    mode = suite.baseline
    if mode is None:
        return None
    if mode not in BASELINE_MODES:
        try:
            return platform.get_eval_report(mode).id
        except NotFoundError as exc:
            raise DagsterEvalsError(
                f"suite {suite.name!r}: the pinned baseline {mode!r} does not exist on {platform.platform} "
                "(it may have expired or been deleted): pin another report id or use baseline='previous'"
            ) from exc
    key = suite.eval_report_key
    partition = context.partition_key if context.has_partition_key else None
    candidates: list[dict[str, Any]]
    if mode == BASELINE_PREVIOUS_PARTITION:
        if partition is None or suite.partitions_def is None:
            candidates = _report_records(context.instance, key)
        else:
            keys = context.instance.get_dynamic_partitions(suite.partitions_def.name)
            earlier = keys[: keys.index(partition)] if partition in keys else []
            candidates = []
            for previous in reversed(earlier):
                candidates = _report_records(context.instance, key, previous)
                if candidates:
                    break
    else:
        candidates = _report_records(context.instance, key)
        if mode == BASELINE_LAST_PASSING:
            candidates = [c for c in candidates if c.get("gate_passed") is True]
    for metadata in candidates:
        if metadata.get("platform") != platform.platform or not metadata.get("report_id"):
            continue
        report_id = str(metadata["report_id"])
        try:
            platform.get_eval_report(report_id)
        except NotFoundError:
            context.log.warning(
                f"baseline report {report_id} is gone from {platform.platform}; trying an older one"
            )
            continue
        return report_id
    return None


def build_dataset_asset(suite: EvalSuite) -> dg.AssetsDefinition:
    """Asset that syncs the suite's source rows into the platform dataset, idempotently."""
    source = as_source(suite.source, suite.key_field)

    @dg.asset(
        **spec_kwargs(suite_asset_spec(suite, "dataset")),
        **op_kwargs(suite),
        required_resource_keys={suite.resource_key},
    )
    def _dataset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        platform = get_platform(context, suite.resource_key)
        rows = load_rows(source)
        dataset = platform.ensure_dataset(suite.dataset_name or suite.name, project=suite.project)
        result = sync_rows(platform, dataset, rows, progress=context.log.info)
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
    def _snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        platform = get_platform(context, suite.resource_key)
        dataset = platform.ensure_dataset(suite.dataset_name or suite.name, project=suite.project)
        snapshot = platform.snapshot(dataset)
        preview = list(itertools.islice(platform.iter_rows(dataset, version=snapshot.version), PREVIEW_ROWS))
        context.log.info(
            f"pinned {dataset.name!r} version {snapshot.version}: {snapshot.row_count} rows, digest "
            f"{snapshot.digest[:12]}"
        )
        return dg.MaterializeResult(
            metadata=snapshot_metadata(snapshot, preview), data_version=dg.DataVersion(snapshot.digest)
        )

    return _snapshot


def run_suite_eval(
    context: dg.AssetExecutionContext, suite: EvalSuite, platform: EvalPlatform
) -> tuple[EvalReport, Snapshot, Trigger]:
    """Run the suite's eval over its pinned snapshot on `platform`."""
    snapshot = load_pinned_snapshot(context.instance, suite, platform)
    baseline_id = resolve_baseline(context, suite, platform)
    partition = context.partition_key if context.has_partition_key else None
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
        baseline_id=baseline_id,
        metadata=metadata,
        tags=list(suite.tags),
        prompt=trigger.prompt,
        repo_info=repo_state,
    )
    context.log.info(
        f"running eval {name!r} on {platform.platform}: {snapshot.row_count} rows x {suite.trial_count} trials, "
        f"max_concurrency={suite.max_concurrency}, baseline={baseline_id or 'none'}"
    )
    report = platform.run_eval(request, progress=context.log.info)
    return report, snapshot, trigger


def build_eval_report_asset(suite: EvalSuite) -> dg.AssetsDefinition:
    """Asset that runs the eval on the pinned snapshot and gates it with threshold/regression/completeness checks."""
    key = suite.eval_report_key
    thresholds = dict(suite.thresholds)
    regression = suite.regression_limits

    @dg.asset(
        **spec_kwargs(suite_asset_spec(suite, "eval_report")),
        **op_kwargs(suite),
        required_resource_keys={suite.resource_key},
        check_specs=check_specs(key, thresholds, regression, suite.blocking),
        partitions_def=suite.partitions_def,
    )
    def _eval_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        platform = get_platform(context, suite.resource_key)
        report, snapshot, trigger = run_suite_eval(context, suite, platform)
        scores = ", ".join(
            f"{name}={summary.mean:.4f}" if summary.mean is not None else f"{name}=n/a"
            for name, summary in report.scores.items()
        )
        where = report.url or getattr(platform, "path", platform.platform)
        context.log.info(
            f"eval report {report.id}: {scores}; {report.rows_scored}/{report.rows_in_snapshot} rows scored, "
            f"{report.rows_errored} errored — stored in {where}"
        )
        checks = evaluate_checks(report, key, thresholds, regression, suite.max_errored_rows)
        metadata = {
            **report_metadata(report, snapshot),
            **trigger.metadata(),
            **report_lineage(context, suite, report, trigger),
            **report_rows_to_review(context, suite, report),
            "dataset_asset": dg.MetadataValue.asset(suite.dataset_key),
            "dagster_run_id": context.run_id,
            "gate_passed": all(check.passed for check in checks),
        }
        if context.has_partition_key:
            metadata["partition"] = context.partition_key
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _eval_report


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

    Example:
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


def observed_prompt_version(instance: dg.DagsterInstance, suite: EvalSuite) -> str | None:
    """The prompt version last observed on the suite's prompt asset, or None."""
    if suite.prompt is None:
        return None
    key = suite_asset_spec(suite, "prompt").key
    record = instance.get_latest_data_version_record(key, is_source=True)
    if record is None or record.asset_observation is None:
        return None
    return record.asset_observation.tags.get("dagster/data_version")


def report_lineage(
    context: dg.AssetExecutionContext, suite: EvalSuite, report: EvalReport, trigger: Trigger
) -> dict[str, Any]:
    """Which dataset version, prompt version and git commit produced a report, as `lineage/*` metadata."""
    prompt_version = trigger.prompt.version if trigger.prompt is not None else None
    if prompt_version is None:
        prompt_version = observed_prompt_version(context.instance, suite)
    git_sha = trigger.release.commit if trigger.release is not None and trigger.release.commit else None
    if git_sha is None and suite.git_repo is not None:
        git_sha = (repo_info(suite.git_repo) or {}).get("commit")
    return lineage_metadata(
        dataset_version=report.dataset_version, prompt_version=prompt_version, git_sha=git_sha
    )


def report_rows_to_review(
    context: dg.AssetExecutionContext, suite: EvalSuite, report: EvalReport
) -> dict[str, Any]:
    """The `rows_to_review` table (errored rows, then the biggest drops against the baseline), if any."""
    if not report.rows_errored and not any(s.regressions for s in report.scores.values()):
        return {}
    platform = get_platform(context, suite.resource_key)
    try:
        rows = platform.report_row_scores(report.id) if report.baseline_id else {}
        baseline = platform.report_row_scores(report.baseline_id) if report.baseline_id else {}
        errors: dict[str, str] = {}
        iter_report_rows = getattr(platform, "iter_report_rows", None)
        if report.rows_errored and iter_report_rows is not None:
            for row in iter_report_rows(report.id):
                if not row.ok:
                    errors[row.row_id] = row.error or "; ".join(
                        f"{name}: {text}" for name, text in row.scorer_errors.items()
                    )
    except DagsterEvalsError as exc:
        context.log.warning(f"could not list the rows to review on {platform.platform}: {exc}")
        return {}
    return row_changes_metadata(report, rows, baseline, errors)


def with_observed_prompt(
    context: dg.AssetExecutionContext, suite: EvalSuite, platform: EvalPlatform, trigger: Trigger
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
