"""Local runner throughput on an I/O-bound task (sleeps 20 ms per row).

Reports rows/s against the limit the concurrency imposes (max_concurrency / latency) and against
`braintrust.Eval` running the same task and scorer locally with `no_send_logs=True`, measured in the same run.

    .venv/bin/python benchmarks/bench_local_runner.py [--rows 2000] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_evals import DatasetRow, EvalRequest, LocalPlatform, run_eval_locally
from dagster_evals.engine.scorers import resolve_local_scorers


def exact(output: str, expected: str) -> float:
    return 1.0 if output == expected else 0.0


def bench_runner(
    rows: list[DatasetRow], latency: float, concurrency: int, scorer: Any, trace_memory: bool = False
) -> tuple[float, int]:
    """rows/s (and, with `trace_memory`, peak traced bytes in a separate, slower pass)."""

    async def task(input: int) -> str:
        await asyncio.sleep(latency)
        return str(input)

    count = [0]

    def on_result(_: Any) -> None:
        count[0] += 1

    if trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    run_eval_locally(rows, task, resolve_local_scorers([scorer]), on_result, max_concurrency=concurrency)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
    if trace_memory:
        tracemalloc.stop()
    assert count[0] == len(rows)
    return len(rows) / elapsed, peak


def bench_sync_task(rows: list[DatasetRow], latency: float, concurrency: int) -> float:
    def task(input: int) -> str:
        time.sleep(latency)
        return str(input)

    done: list[Any] = []
    started = time.perf_counter()
    run_eval_locally(
        rows, task, resolve_local_scorers(["exact_match"]), done.append, max_concurrency=concurrency
    )
    return len(rows) / (time.perf_counter() - started)


def bench_platform(rows: list[DatasetRow], latency: float, concurrency: int) -> float:
    async def task(input: int) -> str:
        await asyncio.sleep(latency)
        return str(input)

    with tempfile.TemporaryDirectory() as tmp:
        local = LocalPlatform(Path(tmp) / "bench.sqlite")
        ds = local.ensure_dataset("bench")
        local.upsert_rows(ds, rows)
        snap = local.snapshot(ds)
        started = time.perf_counter()
        report = local.run_eval(
            EvalRequest(
                name="bench", snapshot=snap, task=task, scorers=["exact_match"], max_concurrency=concurrency
            )
        )
        elapsed = time.perf_counter() - started
        local.close()
    assert report.rows_scored == len(rows)
    return len(rows) / elapsed


def bench_braintrust(n: int, latency: float, concurrency: int) -> float | None:
    try:
        import braintrust
    except ImportError:
        return None
    os.environ.setdefault("BRAINTRUST_API_KEY", "___TEST_API_KEY__")

    async def task(input: int) -> str:
        await asyncio.sleep(latency)
        return str(input)

    from autoevals import ExactMatch

    data = [{"input": i, "expected": str(i)} for i in range(n)]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        braintrust.Eval(
            "dagster-evals-bench",
            data=data,
            task=task,
            scores=[ExactMatch],
            max_concurrency=concurrency,
            no_send_logs=True,
        )
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    rows = [DatasetRow.build(input=i, expected=str(i), id=f"r{i}") for i in range(args.rows)]
    print(f"machine: {machine_line()}")
    print(f"{args.rows} rows, task latency {args.latency_ms:.0f} ms\n")
    header = (
        f"{'concurrency':>11} | {'limit rows/s':>12} | {'runner rows/s':>13} | {'% of limit':>10} | "
        f"{'sync-fn scorer':>14} | {'sync-task rows/s':>16} | {'run_eval+SQLite':>15} | {'braintrust.Eval':>15} | {'ratio vs bt':>11} | "
        f"{'peak traced MiB':>15}"
    )
    print(header)
    print("-" * len(header))
    for concurrency in (10, 50):
        limit = concurrency / latency
        runner, _ = bench_runner(rows, latency, concurrency, "exact_match")
        _, peak = bench_runner(rows, latency, concurrency, "exact_match", trace_memory=True)
        plain_scorer, _ = bench_runner(rows, latency, concurrency, exact)
        sync_task = bench_sync_task(rows, latency, concurrency)
        full = bench_platform(rows, latency, concurrency)
        bt = bench_braintrust(args.rows, latency, concurrency)
        bt_text = f"{bt:15.0f}" if bt else f"{'n/a':>15}"
        ratio = f"{runner / bt:11.2f}" if bt else f"{'n/a':>11}"
        print(
            f"{concurrency:>11} | {limit:12.0f} | {runner:13.0f} | {runner / limit:10.1%} | {plain_scorer:14.0f} | {sync_task:16.0f} | "
            f"{full:15.0f} | {bt_text} | {ratio} | {peak / 2**20:15.2f}"
        )
    print(
        "\nscorer: autoevals ExactMatch for every column but 'sync-fn scorer' (a plain sync function, run in the\n"
        "thread pool); 'sync-task' uses a sync task (time.sleep); 'run_eval+SQLite' is LocalPlatform.run_eval,\n"
        "storing every row result. requests sent: 0 (everything local). ratio vs bt = runner / braintrust.Eval."
    )


if __name__ == "__main__":
    main()
