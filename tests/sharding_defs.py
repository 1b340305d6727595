"""Definitions of one eval suite, configured by environment variables, for tests whose steps run in other
processes (the multiprocess executor re-imports this module in every step process).

- `SHARD_TEST_SOURCE`: the suite's JSONL source; `SHARD_TEST_SHARDS`: its shards (default 1);
- `SHARD_TEST_DB`: the local backend's database URL;
- `SHARD_TEST_CALLS`: a file the task appends one line to per call (`pid cwd row_id trial`);
- `SHARD_TEST_KILL_AT`: the task SIGKILLs its own step process on that call (counted in the calls file);
- `SHARD_TEST_CWD_ROOT`: each step process works in its own new directory under this one, and any value
  passed through the IO manager fails the step;
- `SHARD_TEST_BASELINE`: the report id the suite compares with (default: none);
- `SHARD_TEST_WRONG_EVERY`: one row in this many gets a wrong answer (default 7);
- `SHARD_TEST_CONCURRENCY`: the suite's max_concurrency (default 4).
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_evals import EvalSuite, LocalEvalResource, build_eval_suite_definitions

SUITE_NAME = "sharded"

SETTINGS_PREFIX = "SHARD_TEST_"
SHARED_SETTINGS = ("DAGSTER_EVALS_DATABASE_URL",)
_moved: set[int] = set()


def settings() -> dict[str, str]:
    """This process's settings, to hand to the step processes through the job's code pointer."""
    return {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX) or k in SHARED_SETTINGS}


def _adopt(given: dict[str, str]) -> None:
    """In a step process: take the settings the job was launched with (a process forked from a
    multiprocessing server holds the server's environment, not the launching test's), and move into a
    directory of its own when asked."""
    if multiprocessing.parent_process() is None:
        return  # the launching process: its environment is the settings
    for name in [k for k in os.environ if k.startswith(SETTINGS_PREFIX) or k in SHARED_SETTINGS]:
        del os.environ[name]
    os.environ.update(given)
    root = os.environ.get("SHARD_TEST_CWD_ROOT")
    if root and os.getpid() not in _moved:
        _moved.add(os.getpid())
        os.chdir(tempfile.mkdtemp(prefix=f"step-{os.getpid()}-", dir=root))


def counted_task(input: dict[str, Any], row_id: str, trial: int) -> str:
    """`a + b` (one row in `SHARD_TEST_WRONG_EVERY`, default 7, answers wrong), recording the call and killing itself on call K."""
    calls = os.environ.get("SHARD_TEST_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as out:
            # Shard steps call at the same time: the lock makes "append, then count the lines" one step,
            # so exactly the process that writes call K sees K (the lock dies with the killed process).
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(f"{os.getpid()} {os.getcwd()} {row_id} {trial}\n")
            out.flush()
            kill_at = int(os.environ.get("SHARD_TEST_KILL_AT") or 0)
            if kill_at and len(Path(calls).read_text(encoding="utf-8").splitlines()) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    total = input["a"] + input["b"]
    every = int(os.environ.get("SHARD_TEST_WRONG_EVERY") or 7)
    return str(total + 1 if input["a"] % every == 3 % every else total)


def length_ratio(input: Any, output: Any, expected: Any, metadata: dict[str, Any]) -> float:
    """A second scorer with fractional values, so means and diffs are not just 0/1 counts."""
    return min(len(str(output)), len(str(expected))) / max(len(str(output)), len(str(expected)), 1)


def suite(shards: int | None = None) -> EvalSuite:
    return EvalSuite(
        name=SUITE_NAME,
        source=Path(os.environ["SHARD_TEST_SOURCE"]),
        key_field="id",
        task=counted_task,
        scorers=["exact_match", length_ratio],
        thresholds={"exact_match": 0.5},
        max_regression=0.2,
        baseline=os.environ.get("SHARD_TEST_BASELINE") or None,
        max_concurrency=int(os.environ.get("SHARD_TEST_CONCURRENCY") or 4),
        shards=shards if shards is not None else int(os.environ.get("SHARD_TEST_SHARDS") or 1),
    )


class NoSharedFilesystem(dg.IOManager):
    """An IO manager that fails any step that would hand a value to another step through it."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        raise AssertionError(f"step {context.step_key} stored an output through the IO manager")

    def load_input(self, context: dg.InputContext) -> Any:
        raise AssertionError(f"step {context.step_key} loaded an input through the IO manager")


def definitions(shards: int | None = None) -> dg.Definitions:
    resources: dict[str, Any] = {"evals": LocalEvalResource(url=os.environ["SHARD_TEST_DB"])}
    if os.environ.get("SHARD_TEST_CWD_ROOT"):
        resources["io_manager"] = dg.IOManagerDefinition.hardcoded_io_manager(NoSharedFilesystem())
    return dg.Definitions.merge(
        build_eval_suite_definitions(suite(shards)), dg.Definitions(resources=resources)
    )


def eval_job(**given: str) -> dg.JobDefinition:
    """The suite's job (sync → snapshot → eval report), rebuilt in every step process from `given`."""
    _adopt(given)
    return definitions().resolve_job_def(suite().job_name)


def reconstructable_job() -> Any:
    """`eval_job` with this process's settings, for `dg.execute_job` with the multiprocess executor."""
    return dg.build_reconstructable_job(
        "tests.sharding_defs",
        "eval_job",
        reconstructable_kwargs=settings(),
        reconstructor_working_directory=os.getcwd(),
    )


defs = definitions() if os.environ.get("SHARD_TEST_SOURCE") else dg.Definitions()
