"""The local backend's eval path on SQLite and PostgreSQL, side by side in one run.

For each engine: sync N rows into a fresh dataset (staged, published as one version), pin a snapshot, and
run an eval over it (a trivial task and `exact_match`, so the figure is the backend's own cost: reading
the pinned rows and storing every row result). Prints rows/s, the transactions and SQL statements each
phase took, peak traced memory, and each PostgreSQL figure as a ratio of SQLite's from the same run.
PostgreSQL is a throwaway server started here (the same helper as the tests: `tests/pg_server.py`).

    .venv/bin/python benchmarks/bench_local_backends.py [--rows 5000] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import machine_line
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_evals import DatasetRow, EvalRequest, LocalPlatform
from dagster_evals.engine.sync import sync_rows
from tests.pg_server import PostgresServer


def task(input: int) -> str:
    return str(input)


class Counter:
    """Transactions committed and SQL statements sent on an engine."""

    def __init__(self, platform: LocalPlatform) -> None:
        self.commits = 0
        self.statements = 0
        event.listen(platform.engine, "commit", self._commit)
        event.listen(platform.engine, "before_cursor_execute", self._statement)

    def _commit(self, *_: Any) -> None:
        self.commits += 1

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def take(self) -> tuple[int, int]:
        taken = (self.commits, self.statements)
        self.commits = self.statements = 0
        return taken


def measure(work: Callable[[], Any], trace: bool) -> tuple[float, int, Any]:
    """Seconds, peak traced bytes (when `trace`; tracing slows the work, so timed runs do not trace) and
    result of `work()`."""
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    return elapsed, peak, result


def bench(url: str, rows: list[DatasetRow], batch_size: int) -> dict[str, tuple[float, int, int, float]]:
    """phase -> (rows/s, transactions, statements, peak MiB): a timed pass, then a traced pass for memory."""
    timed = run_phases(url, rows, batch_size, "timed", trace=False)
    traced = run_phases(url, rows, batch_size, "traced", trace=True)
    return {phase: (*figures[:3], traced[phase][3]) for phase, figures in timed.items()}


def run_phases(
    url: str, rows: list[DatasetRow], batch_size: int, name: str, trace: bool
) -> dict[str, tuple[float, int, int, float]]:
    platform = LocalPlatform(url, batch_size=batch_size)
    counter = Counter(platform)
    ds = platform.ensure_dataset(name)
    counter.take()
    out: dict[str, tuple[float, int, int, float]] = {}

    seconds, peak, _ = measure(lambda: sync_rows(platform, ds, rows), trace)
    out["sync (new rows)"] = (len(rows) / seconds, *counter.take(), peak / 2**20)
    seconds, peak, snap = measure(lambda: platform.snapshot(ds), trace)
    out["snapshot"] = (len(rows) / seconds, *counter.take(), peak / 2**20)
    request = EvalRequest(name="bench", snapshot=snap, task=task, scorers=["exact_match"], max_concurrency=10)
    seconds, peak, report = measure(lambda: platform.run_eval(request), trace)
    assert report.rows_scored == len(rows)
    out["run_eval"] = (len(rows) / seconds, *counter.take(), peak / 2**20)
    changed = [
        DatasetRow.build(input=i + 1, expected=str(i), id=f"r{i}") if i % 10 == 0 else r
        for i, r in enumerate(rows)
    ]
    seconds, peak, _ = measure(lambda: sync_rows(platform, ds, changed), trace)
    out["re-sync (10% changed)"] = (len(rows) / seconds, *counter.take(), peak / 2**20)
    platform.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    rows = [DatasetRow.build(input=i, expected=str(i), id=f"r{i}") for i in range(args.rows)]
    print(f"machine: {machine_line()}")
    print(f"{args.rows} rows, batch size {args.batch_size}; task: str(input), scorer: exact_match\n")

    server = PostgresServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = bench(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", rows, args.batch_size)
        postgres = bench(server.create_database(), rows, args.batch_size)
    finally:
        server.stop()

    header = (
        f"{'phase':<22} | {'engine':<10} | {'rows/s':>8} | {'transactions':>12} | {'statements':>10} | "
        f"{'peak MiB':>8} | {'rows/s vs SQLite':>16}"
    )
    print(header)
    print("-" * len(header))
    for phase, base in sqlite.items():
        for engine, figures in (("SQLite", base), ("PostgreSQL", postgres[phase])):
            rate, commits, statements, peak = figures
            print(
                f"{phase:<22} | {engine:<10} | {rate:8.0f} | {commits:12d} | {statements:10d} | "
                f"{peak:8.2f} | {rate / base[0]:16.2f}"
            )
    print(
        "\nrows/s: source rows per second of wall time (snapshot: rows read and digested). transactions: commits;\n"
        "statements: SQL statements sent (each one round trip on PostgreSQL). peak MiB: tracemalloc peak of the\nsame phase in a second, traced pass (rows/s come from the untraced pass).\n"
        "PostgreSQL runs on 127.0.0.1 with fsync off (a throwaway test server); SQLite in WAL mode, synchronous=NORMAL."
    )


if __name__ == "__main__":
    main()
