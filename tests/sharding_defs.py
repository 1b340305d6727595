"""Definitions of one eval suite, configured by environment variables, for tests whose steps run in other
processes (the multiprocess executor re-imports this module in every step process).

- `SHARD_TEST_SOURCE`: the suite's JSONL source; `SHARD_TEST_SHARDS`: its shards (default 1);
- `SHARD_TEST_DB`: the local backend's database URL;
- `SHARD_TEST_CALLS`: a file the task appends one line to per call (`pid cwd row_id trial`);
- `SHARD_TEST_KILL_AT`: the task SIGKILLs its own step process on that call (counted in the calls file);
- `SHARD_TEST_CWD_ROOT`: each step process works in its own new directory under this one;
- `SHARD_TEST_BASELINE`: the report id the suite compares with (default: none);
- `SHARD_TEST_WRONG_EVERY`: one row in this many gets a wrong answer (default 7);
- `SHARD_TEST_CONCURRENCY`: the suite's max_concurrency (default 4).
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_evals import EvalSuite, LocalEvalResource, build_eval_suite_definitions

SUITE_NAME = "sharded"

if os.environ.get("SHARD_TEST_CWD_ROOT"):
    os.chdir(tempfile.mkdtemp(prefix=f"step-{os.getpid()}-", dir=os.environ["SHARD_TEST_CWD_ROOT"]))


def counted_task(input: dict[str, Any], row_id: str, trial: int) -> str:
    """`a + b` (one row in `SHARD_TEST_WRONG_EVERY`, default 7, answers wrong), recording the call and killing itself on call K."""
    calls = os.environ.get("SHARD_TEST_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()} {os.getcwd()} {row_id} {trial}\n")
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


def definitions(shards: int | None = None) -> dg.Definitions:
    return dg.Definitions.merge(
        build_eval_suite_definitions(suite(shards)),
        dg.Definitions(resources={"evals": LocalEvalResource(url=os.environ["SHARD_TEST_DB"])}),
    )


def eval_job() -> dg.JobDefinition:
    """The suite's job (sync → snapshot → eval report), for `dg.reconstructable`."""
    return definitions().resolve_job_def(suite().job_name)


defs = definitions() if os.environ.get("SHARD_TEST_SOURCE") else dg.Definitions()
