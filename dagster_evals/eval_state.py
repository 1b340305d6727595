"""Which database an eval step keeps its state in, and whether every step of the run can reach it.

An eval's state — the plan of a sharded eval, row checkpoints, the judge cache — lives in the database that
the suite's resource names (`EvalPlatformResource.state_database()`: `LocalEvalResource.url`, or
`state_database_url` on `BraintrustResource` / `KeywordsAIResource`; unset, `$DAGSTER_EVALS_DATABASE_URL`,
else `$DAGSTER_HOME/dagster_evals.sqlite`).

A SQLite file serves the processes of one host. When the run's steps may run on other hosts — an executor
other than Dagster's in-process and multiprocess ones (dask, celery, k8s, docker…), or a run launcher that
starts each run in its own container (so a re-execution lands on another machine) — a SQLite state database
is refused with one error naming the setting, instead of every pod keeping its own file: shards would find
no plan and a re-execution no checkpoints. With `resume=False` on an unsharded suite no state is needed;
the judge cache is then off for the step (with a warning) rather than written to a per-pod file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_evals.engine.checkpoints import CheckpointStore, store_for
from dagster_evals.engine.embedded_db import bind_state_database, redacted_url, sqlite_file
from dagster_evals.engine.errors import ConfigError

if TYPE_CHECKING:
    from dagster_evals.suite import EvalSuite

StepContext = dg.AssetExecutionContext | dg.OpExecutionContext

# Executors whose steps all run on the host that launched the run (the default executor is one of these).
SINGLE_HOST_EXECUTORS = frozenset(
    {"in_process", "multiprocess", "multi_or_in_process_executor", "execute_in_process_executor"}
)
# Run launchers that start runs on the host of the daemon or webserver (not in a container of their own).
SINGLE_HOST_LAUNCHERS = frozenset({"DefaultRunLauncher", "SyncInMemoryRunLauncher"})


def state_resource(context: StepContext, suite: EvalSuite) -> Any:
    """The resource under the suite's `resource_key` (any `EvalPlatformResource`)."""
    from dagster_evals.backends.base import EvalPlatformResource

    resource = getattr(context.resources, suite.resource_key, None)
    if not isinstance(resource, EvalPlatformResource):
        raise ConfigError(
            f"resource {suite.resource_key!r} must be a LocalResource, BraintrustResource or "
            f"KeywordsAIResource, got {type(resource).__name__}"
        )
    return resource


def state_url(context: StepContext, suite: EvalSuite) -> str:
    """The URL of the suite's state database in this step."""
    return state_resource(context, suite).state_database()


def spread_across_hosts(context: StepContext) -> str | None:
    """Why this run's steps may run on more than one host (the executor or run launcher), or None."""
    executor = getattr(getattr(context.job_def, "executor_def", None), "name", None)
    if executor is not None and executor not in SINGLE_HOST_EXECUTORS:
        return f"the {executor!r} executor may run its steps on other hosts"
    try:
        launcher = type(context.instance.run_launcher).__name__
    except Exception:  # a launcher that cannot be loaded here is not one of ours to judge
        return None
    if launcher not in SINGLE_HOST_LAUNCHERS:
        return f"the {launcher} run launcher starts runs (and their re-executions) in containers of their own"
    return None


def unreachable_state(context: StepContext, suite: EvalSuite, url: str) -> str | None:
    """The error when the state database is a SQLite file that other steps of the run cannot see, or None."""
    path = sqlite_file(url)
    if path is None:
        return None
    why = spread_across_hosts(context)
    if why is None:
        return None
    return (
        f"suite {suite.name!r}: its eval state (plans, row checkpoints, judge cache) is the SQLite file "
        f"{path}, which only this host sees, but {why}: set {state_resource(context, suite).state_setting()} "
        "to a PostgreSQL URL that every step reaches (postgresql+psycopg://user:password@host:5432/db)"
    )


def checkpoint_store(context: StepContext, suite: EvalSuite) -> CheckpointStore:
    """The store of the suite's plans and checkpoints: its state database, once checked reachable."""
    url = state_url(context, suite)
    problem = unreachable_state(context, suite, url)
    if problem is not None:
        if suite.shards == 1:
            problem += ", or set resume=False on the suite"
        raise ConfigError(problem)
    return store_for(url)


def missing_plan_hint(context: StepContext, suite: EvalSuite, store: CheckpointStore) -> str:
    """Why a step may not find the plan its plan step stored: which setting names the database."""
    path = sqlite_file(store.url)
    setting = state_resource(context, suite).state_setting()
    if path is not None:
        return (
            f"this step's state database is the SQLite file {path}, which a plan step on another host or "
            f"container cannot have written to: set {setting} to a PostgreSQL URL that every step reaches"
        )
    return f"every step of a sharded eval must use the same state database ({setting}; here {store!r})"


@contextlib.contextmanager
def eval_state(context: StepContext, suite: EvalSuite) -> Iterator[None]:
    """While an eval step runs: the judge cache (and stores opened without a URL) use the suite's state
    database; where other hosts could not see it, the judge cache is off for the step, with a warning."""
    url = state_url(context, suite)
    problem = unreachable_state(context, suite, url)
    if problem is None:
        with bind_state_database(url):
            yield
        return
    context.log.warning(f"judge cache off for this step: {problem}")
    with bind_state_database(url, cache=False):
        yield


def describe(url: str) -> str:
    """The state database for logs (password hidden)."""
    return redacted_url(url)


def fail_abandoned_reports(context: StepContext, platform: Any, dataset_id: str) -> None:
    """Before an eval of a dataset: mark failed the backend's reports of it left `running` by a crashed
    eval — its process is gone, or its Dagster run has ended (read from the instance) — and log each.

    Only backends that keep reports themselves (the local backend) have such reports."""
    sweep = getattr(platform, "fail_abandoned_reports", None)
    if sweep is None:
        return

    def run_ended(run_id: str) -> str | None:
        if run_id == context.run_id:
            return None
        run = context.instance.get_run_by_id(run_id)
        if run is None or not run.is_finished:
            return None
        return f"its Dagster run {run_id} ended ({run.status.value}) before the report was complete"

    for report_id, why in sweep(dataset_id, run_ended=run_ended):
        context.log.warning(
            f"eval report {report_id} was left running by a crashed eval; marked failed ({why})"
        )
