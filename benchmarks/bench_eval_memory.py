"""Eval report memory against dataset size: the eval report asset over 20k and 200k rows, local backend.

    .venv/bin/python benchmarks/bench_eval_memory.py [--sizes 20000 200000] [--concurrency 10]

For each size, in a fresh Dagster instance and SQLite eval database (temporary directory):

1. a **prepare** child process syncs the rows, pins the snapshot and runs a first eval (the baseline);
2. a **measured** child process materializes the eval report alone, through `dg.materialize`, against
   that baseline: a cheap deterministic task (one row in 10 answers differently from the baseline run,
   one in 1000 raises), two scorers (`exact_match` and a Python one), per-row checkpoints, the diff
   against the baseline row by row and the `rows_to_review` table.

Each child's peak resident memory (`ru_maxrss`, interpreter, Dagster and imports included) is its own.
`rows/s` is rows over the measured child's `dg.materialize` wall time. `RSS vs first size` divides a size's
peak RSS by the first (smallest) size's, measured in the same run: flat memory gives about 1.0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine_line

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUITE = "bench_memory"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the suite ------------------------------------------------------------------------------------
def rows() -> Any:
    for i in range(int(os.environ["BENCH_ROWS"])):
        yield {"id": f"row-{i:07d}", "input": {"q": f"question {i}", "i": i}, "expected": f"QUESTION {i}"}


def task(input: dict[str, Any]) -> str:
    i = int(input["i"])
    if os.environ.get("BENCH_VARIANT") == "changed":
        if i % 1000 == 7:
            raise ValueError(f"row {i} fails in this run")
        if i % 10 == 3:
            return f"other {i}"
    return str(input["q"]).upper()


def length_ratio(input: Any, output: Any, expected: Any, metadata: dict[str, Any]) -> float:
    """A cheap Python scorer: how close the output's length is to the expected one's."""
    a, b = len(str(output)), len(str(expected))
    return min(a, b) / max(a, b) if max(a, b) else 1.0


def definitions(db: str, concurrency: int) -> Any:
    from dagster_evals import EvalSuite, LocalResource, build_eval_suite_definitions

    suite = EvalSuite(
        name=SUITE,
        source=rows,
        key_field="id",
        task=task,
        scorers=["exact_match", length_ratio],
        max_concurrency=concurrency,
        max_errored_rows=10**9,
        baseline="previous",
    )
    defs = build_eval_suite_definitions(suite)
    return suite, list(defs.assets or []), {"evals": LocalResource(url=db)}


# -- child processes ------------------------------------------------------------------------------
def child(kind: str, home: str, concurrency: int) -> dict[str, Any]:
    import dagster as dg

    os.environ["DAGSTER_EVALS_PROGRESS_INTERVAL_S"] = "30"
    instance = dg.DagsterInstance.local_temp(tempdir=home)
    suite, assets, resources = definitions(f"sqlite:///{Path(home) / 'evals.sqlite'}", concurrency)
    selection = None if kind == "prepare" else [suite.eval_report_key]
    if kind == "measure":
        os.environ["BENCH_VARIANT"] = "changed"
    started = time.perf_counter()
    result = dg.materialize(
        assets, selection=selection, instance=instance, resources=resources, raise_on_error=True
    )
    seconds = time.perf_counter() - started
    metadata = result.asset_materializations_for_node(suite.eval_report_key.to_python_identifier())[
        -1
    ].metadata
    values = {k: getattr(v, "value", v) for k, v in metadata.items()}
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rows_scored": values.get("rows_scored"),
        "rows_errored": values.get("rows_errored"),
        "rows_regressed": values.get("rows_regressed", 0),
        "exact_match": values.get("score/exact_match"),
    }


def run_child(kind: str, home: Path, rows_count: int, concurrency: int) -> dict[str, Any]:
    env = {**os.environ, "BENCH_ROWS": str(rows_count), "DAGSTER_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(home), str(concurrency)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {kind} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="*", type=int, default=[20_000, 200_000])
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, home, concurrency = args.child
        print(json.dumps(child(kind, home, int(concurrency))))
        return

    print(f"machine: {machine_line()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    header = (
        f"{'rows':>8} | {'child':<8} | {'seconds':>8} | {'rows/s':>7} | {'peak RSS MB':>11} | "
        f"{'RSS vs first size':>17} | {'errored':>7} | {'regressed':>9}"
    )
    print(header)
    print("-" * len(header))
    first: float | None = None
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-eval-memory-") as tmp:
            home = Path(tmp)
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            for kind in ("prepare", "measure"):
                figures = run_child(kind, home, size, args.concurrency)
                ratio = ""
                if kind == "measure":
                    first = first or figures["peak_rss_mb"]
                    ratio = f"{figures['peak_rss_mb'] / first:.2f}"
                print(
                    f"{size:8,} | {kind:<8} | {figures['seconds']:8.1f} | "
                    f"{size / figures['seconds']:7,.0f} | {figures['peak_rss_mb']:11.0f} | {ratio:>17} | "
                    f"{figures['rows_errored']!s:>7} | {figures['rows_regressed']!s:>9}"
                )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "\nprepare: sync + snapshot + first eval (the baseline), one dg.materialize. measure: the eval report\n"
        "asset alone against that baseline (row-level diff, rows_to_review, checkpoints). seconds: wall time\n"
        "of dg.materialize in the child. peak RSS MB: the child's maximum resident memory. RSS vs first size:\n"
        "the measured child's peak RSS over the first size's (flat memory: about 1.0)."
    )


if __name__ == "__main__":
    main()
