"""The graph-backed eval report asset of a sharded suite: plan → shard 1 … N → combine (see `sharding`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_evals.checks import check_specs
from dagster_evals.engine.models import Snapshot
from dagster_evals.engine.shard_key import shard_of
from dagster_evals.eval_state import eval_state, fail_abandoned_reports
from dagster_evals.eval_step import eval_report_result, get_platform, prepare_suite_eval
from dagster_evals.judges.binding import bind_judge, judge_resource_keys
from dagster_evals.sharding.shards import load_plan, run_shard, save_plan, shard_scorers, suite_checkpoints
from dagster_evals.step_failures import dagster_failures
from dagster_evals.translator import spec_kwargs, suite_asset_spec

if TYPE_CHECKING:
    from dagster_evals.suite import EvalSuite


def shard_step(index: int, shards: int) -> str:
    """The node name of shard `index` (0-based) in the report's graph: `shard_1_of_3`."""
    return f"shard_{index + 1}_of_{shards}"


def _op_kwargs(suite: EvalSuite) -> dict[str, Any]:
    return {
        "tags": dict(suite.op_tags) or None,
        "pool": suite.pool,
        "retry_policy": suite.retry_policy,
        "required_resource_keys": {suite.resource_key, *judge_resource_keys(suite)},
    }


def _plan_op(suite: EvalSuite, name: str, upstream: list[str]) -> dg.OpDefinition:
    @dg.op(
        name=f"{name}__plan",
        ins={input_name: dg.In(dg.Nothing) for input_name in upstream},
        description=f"Pins the snapshot and prompt version the {suite.shards} shards of {suite.name!r} score.",
        **_op_kwargs(suite),
    )
    @dagster_failures
    def _plan(context) -> None:  # unannotated: Dagster reads a context annotation at definition time
        platform = get_platform(context, suite.resource_key)
        shard_scorers(platform.platform, list(suite.scorers))  # a scorer the shards cannot run fails here
        prepared = prepare_suite_eval(context, suite, platform)
        request = prepared.request
        save_plan(context, suite, request.snapshot, request.prompt)
        context.log.info(
            f"eval of {suite.name!r} planned over {suite.shards} shards: snapshot version "
            f"{request.snapshot.version} ({request.snapshot.row_count} rows x {suite.trial_count} trials)"
        )

    return _plan


def _shard_op(suite: EvalSuite, name: str, index: int) -> dg.OpDefinition:
    @dg.op(
        name=f"{name}__{shard_step(index, suite.shards)}",
        ins={"plan": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        description=f"Scores shard {index + 1}/{suite.shards} of {suite.name!r}, checkpointing each row.",
        **_op_kwargs(suite),
    )
    @dagster_failures
    def _shard(context) -> None:
        with bind_judge(context, suite.judge_resource_key), eval_state(context, suite):
            run_shard(context, suite, index, get_platform(context, suite.resource_key))

    return _shard


def _combine_op(suite: EvalSuite, name: str, check_outputs: dict[str, dg.AssetCheckSpec]) -> dg.OpDefinition:
    @dg.op(
        name=f"{name}__combine",
        ins={"shards": dg.In(dg.Nothing)},
        out={
            "result": dg.Out(dg.Nothing),
            **{output: dg.Out(dg.Nothing, is_required=False) for output in check_outputs},
        },
        description=f"Builds the one eval report of {suite.name!r} from its shards and runs its checks.",
        **_op_kwargs(suite),
    )
    @dagster_failures
    def _combine(context) -> Iterator[Any]:
        platform = get_platform(context, suite.resource_key)
        snapshot, prompt = load_plan(context, suite)
        prepared = prepare_suite_eval(context, suite, platform)
        if prepared.request.snapshot.digest != snapshot.digest:
            context.log.warning(
                f"the snapshot materialization now names version {prepared.request.snapshot.version}; this "
                f"run's shards scored version {snapshot.version}, which the report is built from"
            )
        checkpoints = suite_checkpoints(context, suite, snapshot)
        request = prepared.request.model_copy(
            update={"snapshot": snapshot, "prompt": prompt, "checkpoints": checkpoints}
        )
        fail_abandoned_reports(context, platform, snapshot.dataset.id)
        with bind_judge(context, suite.judge_resource_key), eval_state(context, suite):
            report = platform.run_eval(request, progress=context.log.info)
        rescored = checkpoints.recorded
        if rescored:
            context.log.warning(
                f"{rescored} row trials were not checkpointed by the shards and were scored now"
            )
        shards = shard_details(context, suite, platform, snapshot)
        result = eval_report_result(context, suite, platform, prepared.finished(report), extra_details=shards)
        yield dg.Output(None, "result", metadata=dict(result.metadata or {}))
        yield from result.check_results or ()

    return _combine


def shard_details(context: Any, suite: EvalSuite, platform: Any, snapshot: Snapshot) -> dict[str, Any]:
    """The `shards` part of the report's `details`: how many shards, and each one's rows and step time.

    A shard's time is its step's in this run, else in the run this one re-executes (a shard that finished
    there was not run again); None when neither ran it.
    """
    rows = [0] * suite.shards
    for row_id, _ in platform.iter_row_hashes(snapshot.dataset, version=snapshot.version):
        rows[shard_of(row_id, suite.shards)] += 1
    prefix = suite.eval_report_key.to_python_identifier()
    keys = [f"{prefix}.{shard_step(i, suite.shards)}" for i in range(suite.shards)]
    seconds: dict[str, float] = {}
    for run_id in dict.fromkeys(filter(None, [context.run_id, context.dagster_run.root_run_id])):
        for stats in context.instance.get_run_step_stats(run_id, step_keys=keys):
            if stats.step_key not in seconds and stats.start_time and stats.end_time:
                seconds[stats.step_key] = round(stats.end_time - stats.start_time, 3)
    return {
        "shards": {
            "count": suite.shards,
            "per_shard": [
                {"shard": f"{i + 1}/{suite.shards}", "rows": rows[i], "step_s": seconds.get(key)}
                for i, key in enumerate(keys)
            ],
        }
    }


def build_sharded_eval_report_asset(suite: EvalSuite) -> dg.AssetsDefinition:
    """The eval report asset of `suite` as plan → `suite.shards` shard steps → combine (one report)."""
    spec = suite_asset_spec(suite, "eval_report")
    kwargs = spec_kwargs(spec)
    key = suite.eval_report_key
    name = key.to_python_identifier()
    specs = check_specs(
        key, dict(suite.thresholds), suite.regression_limits, suite.blocking, suite.partitions_def
    )
    check_outputs = {f"{name}_{s.name}": s for s in specs}
    upstream = {f"upstream_{i}": dep.asset_key for i, dep in enumerate(spec.deps)}
    plan = _plan_op(suite, name, list(upstream))
    shards = [_shard_op(suite, name, i) for i in range(suite.shards)]
    combine = _combine_op(suite, name, check_outputs)

    def compose(**inputs: Any) -> dict[str, Any]:
        # Short node names under the asset's graph: step keys `<asset>.plan`, `<asset>.shard_1_of_N`,
        # `<asset>.combine` (the op definitions keep unique names: several suites share one job).
        planned = plan.alias("plan")(**inputs)
        done = [shard.alias(shard_step(i, suite.shards))(plan=planned) for i, shard in enumerate(shards)]
        outputs = combine.alias("combine")(shards=done)
        return {"result": outputs.result, **{output: getattr(outputs, output) for output in check_outputs}}

    return dg.graph_multi_asset(
        name=name,
        outs={
            "result": dg.AssetOut(
                key=key,
                description=kwargs["description"],
                group_name=kwargs["group_name"],
                kinds=kwargs["kinds"],
                owners=kwargs["owners"],
                tags=kwargs["tags"],
                code_version=kwargs["code_version"],
                automation_condition=kwargs["automation_condition"],
                metadata=kwargs["metadata"],
                dagster_type=dg.Nothing,
            )
        },
        ins={
            input_name: dg.AssetIn(key=asset_key, dagster_type=dg.Nothing)
            for input_name, asset_key in upstream.items()
        },
        check_specs=specs,
        partitions_def=suite.partitions_def,
        group_name=kwargs["group_name"],  # an AssetOut's group is not applied by graph_multi_asset
    )(compose)
