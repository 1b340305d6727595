"""One eval report across N Dagster steps: plan → N shard steps → combine, under the report's asset key.

With `EvalSuite(shards=N)` (N > 1) the eval report asset is graph-backed:

- **plan** pins what the eval runs on (the snapshot its upstream materialization recorded, the prompt
  version) and stores it in the embedded database under the eval-run key;
- **shard i** (one step each, so the multiprocess, k8s, celery and docker executors run them apart) scores
  the rows whose stable shard number (SHA-256 of the row id, modulo N) is i, checkpointing every result;
- **combine** runs the eval on the backend as an unsharded step would: every (row, trial) is found in the
  checkpoints and replayed as stored, so the backend records all results and builds ONE report — scores,
  counts, diffs and checks equal to an unsharded run of the same rows — which it materializes with the
  asset checks.

Steps hand each other nothing through the IO manager (their edges are `Nothing`): state goes through the
suite's state database (`dagster_evals.eval_state`: the database named on its resource, PostgreSQL when
steps run on several machines), keyed by the root run id, the asset key and the partition, so re-executing
a failed run from failure reuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.engine.checkpoints import RowCheckpoints, digest
from dagster_evals.engine.errors import ConfigError, DagsterEvalsError
from dagster_evals.engine.limits import MAX_SHARDS
from dagster_evals.engine.models import DatasetRow, PlatformFunction, PromptVersion, Snapshot
from dagster_evals.engine.progress import track_results
from dagster_evals.engine.runner import DEFAULT_MAX_CONCURRENCY, run_eval_locally
from dagster_evals.engine.scorers import Scorer, resolve_local_scorers
from dagster_evals.engine.shard_key import shard_of
from dagster_evals.eval_state import checkpoint_store, missing_plan_hint

__all__ = ["rows_of_shard", "run_shard", "shard_of"]

if TYPE_CHECKING:
    from dagster_evals.suite import EvalSuite

StepContext = dg.AssetExecutionContext | dg.OpExecutionContext


def rows_of_shard(rows: Iterator[DatasetRow], index: int, shards: int) -> Iterator[DatasetRow]:
    """The rows of `rows` that shard `index` of `shards` scores (streamed).

    Example:
        >>> from dagster_evals.engine.models import DatasetRow
        >>> rows = [DatasetRow.build(input=i) for i in range(10)]
        >>> sum(len(list(rows_of_shard(iter(rows), i, 3))) for i in range(3))
        10
    """
    return (row for row in rows if shard_of(row.id, shards) == index)


def shard_rows(platform: Any, snapshot: Snapshot, index: int, shards: int) -> Iterator[DatasetRow]:
    """The snapshot's rows of shard `index`, streamed: selected by the database where the backend can
    (`iter_shard_rows`: the local backend on SQLite and PostgreSQL), else every row paged through and the
    other shards' skipped (Braintrust, Keywords AI)."""
    select = getattr(platform, "iter_shard_rows", None)
    if select is not None:
        return select(snapshot.dataset, version=snapshot.version, index=index, shards=shards)
    return rows_of_shard(platform.iter_rows(snapshot.dataset, version=snapshot.version), index, shards)


def eval_run_key(context: StepContext, suite: EvalSuite) -> str:
    """The key shared by every step (and every re-execution) of one eval of one partition.

    Dagster keeps `root_run_id` across re-executions, so a run re-executed from failure finds the plan and
    the checkpoints of the run it re-executes.
    """
    root = context.run.root_run_id or context.run_id
    partition = context.partition_key if context.has_partition_key else None
    return digest("eval-run", root, suite.eval_report_key.to_user_string(), partition)


def checkpoint_key(run_key: str, suite: EvalSuite, snapshot: Snapshot) -> str:
    """Where an eval run's row results are checkpointed: also keyed by what decides a row's result."""
    return digest(
        "checkpoints",
        run_key,
        snapshot.dataset.id,
        snapshot.version,
        snapshot.digest,
        suite.trial_count,
        suite.scorer_names,
        suite.code_version,
    )


def suite_checkpoints(
    context: StepContext, suite: EvalSuite, snapshot: Snapshot, *, prune: bool = False
) -> RowCheckpoints:
    """The checkpoints of this step's eval run (see `dagster_evals.engine.checkpoints`); with `prune`, first drop
    the checkpoints of eval runs past the retention period."""
    store = checkpoint_store(context, suite)
    if prune:
        store.prune()
    return store.checkpoints(checkpoint_key(eval_run_key(context, suite), suite, snapshot))


def validate_sharding(suite: EvalSuite) -> None:
    """`shards` is a whole number ≥ 1; more than one needs a Python task and checkpoints."""
    shards = suite.shards
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise ConfigError(
            f"suite {suite.name!r}: shards must be an integer from 1 to {MAX_SHARDS}, got {shards!r}"
        )
    if not isinstance(suite.resume, bool):
        raise ConfigError(f"suite {suite.name!r}: resume must be True or False, got {suite.resume!r}")
    if shards == 1:
        return
    if suite.task is None or isinstance(suite.task, PlatformFunction):
        raise ConfigError(
            f"suite {suite.name!r}: shards={shards} needs a Python task (the shards run it); a task that "
            "runs on the platform, or task=None, is one platform-side eval: use shards=1"
        )
    if not suite.resume:
        raise ConfigError(
            f"suite {suite.name!r}: shards={shards} needs resume=True (the shards hand their scored rows "
            "to the combine step as checkpoints)"
        )


def shard_scorers(platform_name: str, scorers: list[Any]) -> list[Scorer]:
    """The scorers a shard runs: the local ones (Keywords AI evaluators run on the platform when combined)."""
    if platform_name == "keywordsai":
        return resolve_local_scorers([s for s in scorers if not isinstance(s, PlatformFunction)])
    return resolve_local_scorers(scorers)


def save_plan(
    context: StepContext, suite: EvalSuite, snapshot: Snapshot, prompt: PromptVersion | None
) -> None:
    """Store what the eval of this run evaluates, for the shard and combine steps."""
    store = checkpoint_store(context, suite)
    store.prune()
    plan = {
        "snapshot": snapshot.model_dump(mode="json"),
        "prompt": prompt.model_dump(mode="json") if prompt is not None else None,
        "shards": suite.shards,
    }
    store.save_plan(eval_run_key(context, suite), plan)


def load_plan(context: StepContext, suite: EvalSuite) -> tuple[Snapshot, PromptVersion | None]:
    """The snapshot and prompt version the plan step of this run pinned."""
    store = checkpoint_store(context, suite)
    plan = store.load_plan(eval_run_key(context, suite))
    if plan is None:
        raise DagsterEvalsError(
            f"no eval plan for {suite.eval_report_key.to_user_string()} in run "
            f"{context.run.root_run_id or context.run_id}: its plan step did not store one in this step's "
            f"state database; {missing_plan_hint(context, suite, store)}"
        )
    prompt = plan.get("prompt")
    return Snapshot.model_validate(plan["snapshot"]), (
        PromptVersion.model_validate(prompt) if prompt is not None else None
    )


def run_shard(context: StepContext, suite: EvalSuite, index: int, platform: EvalPlatform) -> dict[str, int]:
    """Score the rows of shard `index` on `platform` (checkpointing each result); returns its counts."""
    snapshot, prompt = load_plan(context, suite)
    checkpoints = suite_checkpoints(context, suite, snapshot)
    rows = shard_rows(platform, snapshot, index, suite.shards)
    counts = {"results": 0, "errors": 0}

    def on_result(result: Any) -> None:
        counts["results"] += 1
        counts["errors"] += 0 if result.ok else 1

    stats = run_eval_locally(
        rows,
        suite.task,
        shard_scorers(platform.platform, list(suite.scorers)),
        track_results(on_result, total=None, what=f"shard {index + 1}/{suite.shards}", log=context.log.info),
        trial_count=suite.trial_count,
        # None is the default (10) here too, as in an unsharded eval; for `run_eval_locally` it is the limit.
        max_concurrency=suite.max_concurrency or DEFAULT_MAX_CONCURRENCY,
        row_timeout_s=suite.row_timeout_s,
        prompt=prompt,
        scorer_timeout_s=suite.scorer_timeout_s,
        isolation=suite.isolation,
        checkpoints=checkpoints,
    )
    scored = stats.pairs - stats.replayed
    context.log.info(
        f"shard {index + 1}/{suite.shards} of {suite.eval_report_key.to_user_string()}: {stats.pairs} row "
        f"trials ({scored} scored now, {stats.replayed} already checkpointed), {counts['errors']} errored"
    )
    return {"row_trials": stats.pairs, "scored": scored, "resumed": stats.replayed}
