"""Dataset sync to Braintrust: dagster-evals vs the official `braintrust` SDK, on the fake server over loopback.

    .venv/bin/python benchmarks/bench_braintrust_sync.py [--rows 100000] [--row-bytes 1000]

The fake runs in a child process (uvicorn on 127.0.0.1 via ServerThread), so client and server do not share
a GIL and the client's memory is measured alone. Prints:
- rows/s and requests for `sync_rows` (dagster-evals) and for `init_dataset(...).insert(...)` + `flush()`
  (the SDK, with BRAINTRUST_QUEUE_SIZE raised so it keeps every row) into two datasets of the same fake,
  and the ratio;
- a re-sync of the unchanged rows (rows sent must be 0);
- peak Python memory (tracemalloc) above the source rows during a sync of 10k and of N rows.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform as py_platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from filler import filler_text
from machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from dagster_evals.backends.braintrust.platform import BraintrustPlatform
from dagster_evals.engine.models import DatasetRow
from dagster_evals.engine.sync import sync_rows

KEY = "bench-key"


def serve(conn: Any) -> None:
    """Child process: run the fake until the parent closes the pipe."""
    from dagster_evals.testing.braintrust import BraintrustFake
    from dagster_evals.testing.server import ServerThread

    fake = BraintrustFake(api_key=KEY, record_bodies=False)
    with ServerThread(fake.app) as server:
        conn.send(server.url)
        with contextlib.suppress(EOFError):
            conn.recv()


def make_rows(n: int, row_bytes: int, start: int = 0) -> list[DatasetRow]:
    rows = []
    for i in range(start, start + n):
        text = filler_text(i, row_bytes)[: row_bytes - 120]
        rows.append(
            DatasetRow.build(
                {"question": f"#{i}: {text}"},
                f"answer {i}",
                metadata={"i": i, "source": "bench"},
                tags=["bench"],
                id=f"row-{i:07d}",
            )
        )
    return rows


def stats(url: str) -> dict[str, Any]:
    return httpx.get(url + "/_fake/stats", timeout=30).json()


def requests_between(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> int:
    keys = set(before["requests"]) | set(after["requests"])
    return sum(
        after["requests"].get(k, 0) - before["requests"].get(k, 0)
        for k in keys
        if k.split(" ", 1)[1].startswith(prefix)
    )


def events_between(before: dict[str, Any], after: dict[str, Any]) -> int:
    return after["events_written"].get("dataset", 0) - before["events_written"].get("dataset", 0)


def bench_ours(url: str, rows: list[DatasetRow], name: str) -> dict[str, Any]:
    bt = BraintrustPlatform(api_key=KEY, api_url=url, app_url=url, project="bench", collect_git=False)
    before = stats(url)
    started = time.perf_counter()
    ref = bt.ensure_dataset(name)
    result = sync_rows(bt, ref, rows)
    elapsed = time.perf_counter() - started
    after = stats(url)
    resync_started = time.perf_counter()
    again = sync_rows(bt, ref, rows)
    resync_elapsed = time.perf_counter() - resync_started
    final = stats(url)
    bt.close()
    return {
        "seconds": elapsed,
        "rows_per_s": len(rows) / elapsed,
        "requests": requests_between(before, after),
        "rows_sent": result.rows_sent,
        "events_received": events_between(before, after),
        "resync_seconds": resync_elapsed,
        "resync_rows_sent": again.rows_sent,
        "resync_events_received": events_between(after, final),
        "resync_requests": requests_between(after, final),
    }


def bench_sdk(url: str, rows: list[DatasetRow], name: str) -> dict[str, Any]:
    # The SDK's background queue silently drops the oldest rows beyond BRAINTRUST_QUEUE_SIZE (default
    # 25000) when rows are inserted faster than they are sent; size it to hold every row.
    os.environ.update(
        BRAINTRUST_API_KEY=KEY,
        BRAINTRUST_APP_URL=url,
        BRAINTRUST_SYNC_FLUSH="1",
        BRAINTRUST_QUEUE_SIZE=str(len(rows) + 1),
    )
    os.environ.pop("BRAINTRUST_API_URL", None)
    import braintrust

    before = stats(url)
    started = time.perf_counter()
    braintrust.login(app_url=url, api_key=KEY, force_login=True)
    dataset = braintrust.init_dataset(project="bench", name=name, app_url=url, api_key=KEY)
    for row in rows:
        dataset.insert(
            input=row.input, expected=row.expected, metadata=row.metadata, tags=row.tags, id=row.id
        )
    dataset.flush()
    elapsed = time.perf_counter() - started
    after = stats(url)
    return {
        "seconds": elapsed,
        "rows_per_s": len(rows) / elapsed,
        "requests": requests_between(before, after),
        "events_received": events_between(before, after),
    }


def peak_memory(url: str, n: int, row_bytes: int) -> tuple[float, float]:
    """(MiB held by the source rows, peak MiB above them during the sync) for an n-row sync."""
    tracemalloc.start()
    rows = make_rows(n, row_bytes, start=10_000_000)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    bt = BraintrustPlatform(api_key=KEY, api_url=url, app_url=url, project="bench-mem", collect_git=False)
    sync_rows(bt, bt.ensure_dataset(f"mem-{n}"), rows)
    peak = tracemalloc.get_traced_memory()[1]
    bt.close()
    tracemalloc.stop()
    return held / 2**20, (peak - held) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--row-bytes", type=int, default=1000)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(child,), daemon=True)
    proc.start()
    url = parent.recv()
    try:
        rows = make_rows(args.rows, args.row_bytes)
        size = len(rows[0].model_dump_json())
        print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {py_platform.python_version()}")
        print(f"rows: {len(rows)} x ~{size} bytes (JSON), fake at {url} (child process)")

        ours = bench_ours(url, rows, "ours")
        print(
            f"dagster-evals sync : {ours['rows_per_s']:>9,.0f} rows/s  {ours['seconds']:6.2f}s  "
            f"{ours['requests']} requests  rows sent {ours['rows_sent']} (server got {ours['events_received']})"
        )
        sdk = bench_sdk(url, rows, "sdk")
        print(
            f"braintrust SDK     : {sdk['rows_per_s']:>9,.0f} rows/s  {sdk['seconds']:6.2f}s  "
            f"{sdk['requests']} requests  (server got {sdk['events_received']})"
        )
        if sdk["events_received"] != len(rows):
            print(f"WARNING: the SDK delivered {sdk['events_received']} of {len(rows)} rows")
        print(f"ratio (ours / SDK) : {ours['rows_per_s'] / sdk['rows_per_s']:.2f}x  (goal >= 1)")
        print(
            f"re-sync unchanged  : rows sent {ours['resync_rows_sent']} (server got "
            f"{ours['resync_events_received']}), {ours['resync_requests']} requests, {ours['resync_seconds']:.2f}s"
        )
        if not args.skip_memory:
            for n in sorted({min(10_000, args.rows), args.rows}):
                held, extra = peak_memory(url, n, args.row_bytes)
                print(
                    f"memory, {n:>7} rows : source rows {held:7.1f} MiB, sync peak above them {extra:6.1f} MiB"
                )
    finally:
        parent.close()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


if __name__ == "__main__":
    main()
