"""Local eval throughput: the runner alone, `LocalPlatform.run_eval` as in production, and `braintrust.Eval`.

Every path runs the same I/O-bound task (an async sleep of `--latency-ms`, 20 ms by default) and the same
Levenshtein scorer (autoevals) over `--rows` rows (2,000), at concurrency 10, 50 and 200:

- runner: `run_eval_locally`, results counted and dropped;
- platform: `LocalPlatform.run_eval` on a SQLite file, with everything a production eval has on: row
  checkpoints in the same database (resume), the report's on-disk spill and usage metering; it stores
  every row result and the report;
- braintrust.Eval: the official SDK evaluating locally with `no_send_logs=True`.

Each figure is the median of `--repeats` (3) runs, interleaved (runner, platform, braintrust.Eval, runner,
...) so that a burst of load elsewhere on the machine hits every path alike. The goals of issue #24 are
printed under the table with whether each is met.

    .venv/bin/python benchmarks/bench_local_runner.py [--rows 2000] [--latency-ms 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_evals import DatasetRow, EvalRequest, LocalPlatform, run_eval_locally
from dagster_evals.engine.checkpoints import CheckpointStore
from dagster_evals.engine.scorers import resolve_local_scorers

CONCURRENCIES = (10, 50, 200)
SCORER = "levenshtein"
# (what, concurrencies it applies to, lowest ratio)
GOALS = (
    ("platform / runner", (50, 200), 0.9),
    ("platform / braintrust.Eval", CONCURRENCIES, 1.0),
)


def make_task(latency: float) -> Callable[[str], Coroutine[Any, Any, str]]:
    async def task(input: str) -> str:
        await asyncio.sleep(latency)
        return input.upper()

    return task


def make_rows(count: int) -> list[DatasetRow]:
    return [
        DatasetRow.build(input=f"row {i} text", expected=f"ROW {i} TEXT", id=f"r{i:06d}")
        for i in range(count)
    ]


def bench_runner(rows: list[DatasetRow], latency: float, concurrency: int) -> float:
    """rows/s of `run_eval_locally` alone."""
    count = [0]

    def on_result(_: Any) -> None:
        count[0] += 1

    scorers = resolve_local_scorers([SCORER])
    started = time.perf_counter()
    run_eval_locally(rows, make_task(latency), scorers, on_result, max_concurrency=concurrency)
    elapsed = time.perf_counter() - started
    assert count[0] == len(rows), count
    return len(rows) / elapsed


def bench_platform(rows: list[DatasetRow], latency: float, concurrency: int) -> float:
    """rows/s of `LocalPlatform.run_eval` on SQLite with checkpoints, spill and metering on."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        local = LocalPlatform(path)
        dataset = local.ensure_dataset("bench")
        local.upsert_rows(dataset, rows)
        snapshot = local.snapshot(dataset)
        store = CheckpointStore(f"sqlite:///{path}")  # the one database, as a production eval uses it
        checkpoints = store.checkpoints(uuid.uuid4().hex)
        request = EvalRequest(
            name="bench",
            snapshot=snapshot,
            task=make_task(latency),
            scorers=[SCORER],
            max_concurrency=concurrency,
            checkpoints=checkpoints,
        )
        started = time.perf_counter()
        report = local.run_eval(request)
        elapsed = time.perf_counter() - started
        stored = store.count(checkpoints.key)
        store.close()
        local.close()
    assert report.rows_scored == len(rows), report.rows_scored
    assert stored == len(rows), stored
    return len(rows) / elapsed


def bench_braintrust(rows: list[DatasetRow], latency: float, concurrency: int) -> float | None:
    """rows/s of `braintrust.Eval` (None when the SDK is not installed: `pip install -e ".[bench]"`)."""
    try:
        import braintrust
        from autoevals import Levenshtein
    except ImportError:
        return None
    os.environ.setdefault("BRAINTRUST_API_KEY", "___TEST_API_KEY__")  # never used: no_send_logs
    data = [{"input": row.input, "expected": row.expected} for row in rows]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        braintrust.Eval(
            "dagster-evals-bench",
            data=data,
            task=make_task(latency),
            scores=[Levenshtein],
            max_concurrency=concurrency,
            no_send_logs=True,
        )
    return len(rows) / (time.perf_counter() - started)


def measure(
    rows: list[DatasetRow], latency: float, concurrency: int, repeats: int
) -> tuple[float, float, float | None]:
    """Median rows/s of the runner, the platform and braintrust.Eval over `repeats` interleaved runs."""
    runner, platform, braintrust = [], [], []
    for _ in range(repeats):
        runner.append(bench_runner(rows, latency, concurrency))
        platform.append(bench_platform(rows, latency, concurrency))
        braintrust.append(bench_braintrust(rows, latency, concurrency))
    bt = [v for v in braintrust if v is not None]
    return statistics.median(runner), statistics.median(platform), statistics.median(bt) if bt else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    rows = make_rows(args.rows)
    print(f"machine: {machine_line()}")
    print(
        f"{args.rows} rows, task latency {args.latency_ms:.0f} ms, scorer {SCORER}, "
        f"median of {args.repeats} interleaved runs\n"
    )
    header = (
        f"{'concurrency':>11} | {'runner rows/s':>13} | {'platform rows/s':>15} | {'braintrust.Eval':>15} | "
        f"{'platform / runner':>17} | {'platform / braintrust.Eval':>26}"
    )
    print(header)
    print("-" * len(header))
    ratios: dict[str, dict[int, float | None]] = {goal[0]: {} for goal in GOALS}
    for concurrency in CONCURRENCIES:
        runner, platform, bt = measure(rows, latency, concurrency, args.repeats)
        ratios["platform / runner"][concurrency] = platform / runner
        ratios["platform / braintrust.Eval"][concurrency] = platform / bt if bt else None
        bt_text = f"{bt:15,.0f}" if bt else f"{'n/a':>15}"
        vs_bt = f"{platform / bt:26.2f}" if bt else f"{'n/a':>26}"
        print(
            f"{concurrency:>11} | {runner:13,.0f} | {platform:15,.0f} | {bt_text} | "
            f"{platform / runner:17.2f} | {vs_bt}"
        )
    print(
        "\nplatform = LocalPlatform.run_eval on SQLite with row checkpoints (resume), the report spill and usage\n"
        "metering on, storing every row result; braintrust.Eval runs with no_send_logs=True. requests sent: 0.\n"
    )
    print("goals:")
    for what, concurrencies, lowest in GOALS:
        for concurrency in concurrencies:
            ratio = ratios[what][concurrency]
            verdict = (
                "n/a (braintrust not installed)"
                if ratio is None
                else ("met" if ratio >= lowest else "NOT met")
            )
            shown = "n/a" if ratio is None else f"{ratio:.3f}"
            print(f"  {what} >= {lowest:.1f} at concurrency {concurrency:>3}: {shown:>5}  {verdict}")


if __name__ == "__main__":
    main()
