"""Factories for the assets of an eval suite: dataset → dataset snapshot → eval report (with checks).

    suite = EvalSuite(name="support_bot", source="data/support_bot.jsonl", task=answer,
                      scorers=["levenshtein", "exact_match"], thresholds={"levenshtein": 0.7})
    defs = build_eval_suite_definitions(suite)

Every asset asks the resource under `suite.resource_key` (any `EvalPlatformResource`: local, Braintrust,
Keywords AI) for its platform, so the same suite runs on all three. `EvalSuite` is declared in
`dagster_evals.suite`, the eval step in `dagster_evals.eval_step`; both stay importable from here.
"""

import dataclasses
import itertools
from typing import Any, TypedDict

import dagster as dg

from dagster_evals.baselines import (
    BASELINE_DEFAULT,
    BASELINE_LAST_PASSING,
    BASELINE_LOOKBACK,
    BASELINE_MODES,
    BASELINE_PREVIOUS,
    BASELINE_PREVIOUS_PARTITION,
)
from dagster_evals.checks import check_specs
from dagster_evals.engine.sources import as_source
from dagster_evals.engine.sync import scan_source, sync_rows
from dagster_evals.eval_state import eval_state
from dagster_evals.eval_step import (
    PreparedEval,
    SuiteEvalRun,
    eval_report_result,
    get_platform,
    prepare_suite_eval,
    require_partition_key,
    run_suite_eval,
)
from dagster_evals.judges.binding import bind_judge, judge_resource_keys
from dagster_evals.lineage import lineage_assets, with_observed_prompt
from dagster_evals.metadata import PREVIEW_ROWS, snapshot_metadata, sync_metadata
from dagster_evals.pinning import Upstream, load_pinned_snapshot, pin_dataset_version
from dagster_evals.sharding.asset import build_sharded_eval_report_asset
from dagster_evals.step_failures import dagster_failures
from dagster_evals.suite import EvalSuite, SourceLike, validate_dagster_fields
from dagster_evals.translator import DagsterEvalsTranslator, spec_kwargs, suite_asset_spec

__all__ = [
    "BASELINE_DEFAULT",
    "BASELINE_LAST_PASSING",
    "BASELINE_LOOKBACK",
    "BASELINE_MODES",
    "BASELINE_PREVIOUS",
    "BASELINE_PREVIOUS_PARTITION",
    "EvalSuite",
    "PreparedEval",
    "SourceLike",
    "SuiteEvalRun",
    "build_dataset_asset",
    "build_eval_report_asset",
    "build_eval_suite_assets",
    "build_eval_suite_definitions",
    "build_eval_suite_job",
    "build_snapshot_asset",
    "eval_report_result",
    "get_platform",
    "lineage_assets",
    "load_pinned_snapshot",
    "prepare_suite_eval",
    "require_partition_key",
    "run_suite_eval",
    "validate_dagster_fields",
    "with_observed_prompt",
]


def snapshot_upstream_metadata(upstream: Upstream) -> dict[str, Any]:
    """Which upstream materialization a step read, for its own metadata."""
    return {"pinned_from": upstream.source, "pinned_from_run_id": upstream.run_id}


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


def build_eval_report_asset(suite: EvalSuite) -> dg.AssetsDefinition:
    """Asset that runs the eval on the pinned snapshot and gates it with threshold/regression/completeness checks."""
    if suite.shards > 1:
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
