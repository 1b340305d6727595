"""One eval report across N Dagster steps: plan → shard 1 … N → combine (`EvalSuite(shards=N)`).

- `dagster_evals.sharding.shards`: which rows a shard scores, the plan the steps share, running one shard;
- `dagster_evals.sharding.asset`: the graph-backed eval report asset built from those steps.

`dagster_evals.sharding` was a module before 0.2.0; its names are still importable from here, and the former
`dagster_evals.sharded_asset` imports as `dagster_evals.sharding.asset` with a DeprecationWarning.
"""

from dagster_evals.sharding.shards import (
    checkpoint_key,
    eval_run_key,
    load_plan,
    rows_of_shard,
    run_shard,
    save_plan,
    shard_of,
    shard_rows,
    shard_scorers,
    suite_checkpoints,
    validate_sharding,
)

__all__ = [
    "checkpoint_key",
    "eval_run_key",
    "load_plan",
    "rows_of_shard",
    "run_shard",
    "save_plan",
    "shard_of",
    "shard_rows",
    "shard_scorers",
    "suite_checkpoints",
    "validate_sharding",
]
