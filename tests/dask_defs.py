"""Definitions for the dagster-dask tests: the sharding suite of `tests.sharding_defs`, a release marker
guarded by `require_passing_gates` and an unguarded one, run on the executor named by a setting.

Settings (environment variables, handed to every step process through the job's code pointer, as in
`tests.sharding_defs`):

- everything `tests.sharding_defs` reads (`SHARD_TEST_SOURCE`, `SHARD_TEST_SHARDS`, `SHARD_TEST_DB`,
  `SHARD_TEST_CALLS`, `SHARD_TEST_KILL_AT`, `SHARD_TEST_WRONG_EVERY`, `SHARD_TEST_CONCURRENCY`, ...);
- `SHARD_TEST_EXECUTOR`: `dask` (default), `multiprocess` or `in_process`;
- `SHARD_TEST_DELAY_S`: seconds every task call sleeps (so checkpoints are flushed while a shard runs);
- `SHARD_TEST_RELEASE_FAILS`: `release_approved` fails after its gate passed (a failure of the release
  itself, for re-executing it from failure);
- `SHARD_TEST_KILLS_AT`: comma-separated call numbers at which the task SIGKILLs its own process (for a
  step that dies again after Dask retries it; unlike `SHARD_TEST_KILL_AT`, meant for one step at a time).
"""

import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dask import dask_executor

from dagster_evals import LocalResource, build_eval_suite_definitions, require_passing_gates
from tests import sharding_defs

JOB_NAME = "dask_release_job"
REPORT = dg.AssetKey(["evals", sharding_defs.SUITE_NAME, "eval_report"])


def slow_counted_task(input: dict[str, Any], row_id: str, trial: int) -> str:
    """`sharding_defs.counted_task`, after `SHARD_TEST_DELAY_S` seconds; dies at the `SHARD_TEST_KILLS_AT`
    calls."""
    delay = float(os.environ.get("SHARD_TEST_DELAY_S") or 0)
    if delay:
        time.sleep(delay)
    answer = sharding_defs.counted_task(input, row_id, trial)
    kills = {int(n) for n in (os.environ.get("SHARD_TEST_KILLS_AT") or "").split(",") if n}
    calls = os.environ.get("SHARD_TEST_CALLS")
    if kills and calls and len(Path(calls).read_text(encoding="utf-8").splitlines()) in kills:
        os.kill(os.getpid(), signal.SIGKILL)
    return answer


@dg.asset(deps=[REPORT], description="Guarded: refuses unless the report's blocking checks passed.")
def release_approved(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    approval = require_passing_gates(context, REPORT)
    if os.environ.get("SHARD_TEST_RELEASE_FAILS"):
        raise RuntimeError("the release step failed after its gate passed")
    return dg.MaterializeResult(metadata={"approved": True, **approval.metadata})


@dg.asset(deps=[REPORT], description="Unguarded: relies on `blocking=True` alone.")
def unguarded_release() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"approved": True})


def definitions() -> dg.Definitions:
    suite = dataclasses.replace(sharding_defs.suite(), task=slow_counted_task)
    executor = {"multiprocess": dg.multiprocess_executor, "in_process": dg.in_process_executor}.get(
        os.environ.get("SHARD_TEST_EXECUTOR") or "dask", dask_executor
    )
    job = dg.define_asset_job(
        JOB_NAME, selection=dg.AssetSelection.assets(release_approved, unguarded_release).upstream()
    )
    return dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(
            assets=[release_approved, unguarded_release],
            jobs=[job],
            executor=executor,
            resources={
                "evals": LocalResource(url=os.environ["SHARD_TEST_DB"]),
                # Dask workers share no disk with the run: any value handed through it fails the step.
                "io_manager": dg.IOManagerDefinition.hardcoded_io_manager(sharding_defs.NoSharedFilesystem()),
            },
        ),
    )


def release_job(**given: str) -> dg.JobDefinition:
    """The release job, rebuilt in every step process (and on every Dask worker) from `given`."""
    sharding_defs._adopt(given)
    return definitions().resolve_job_def(JOB_NAME)


def reconstructable_release_job() -> Any:
    """`release_job` with this process's settings, for `dg.execute_job`."""
    return dg.build_reconstructable_job(
        "tests.dask_defs",
        "release_job",
        reconstructable_kwargs=sharding_defs.settings(),
        reconstructor_working_directory=os.getcwd(),
    )
