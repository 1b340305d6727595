"""A 1M-row JSONL source (~500 MB) synced to every backend: rows/s, requests and peak RSS.

    .venv/bin/python benchmarks/bench_sync_1m.py [--rows 1000000] [--row-bytes 500]
        [--backends sqlite postgresql braintrust keywordsai]

The source is written once to a temporary directory. Every measurement runs in a fresh child process, so
its peak resident memory (`ru_maxrss`) is that of the work alone (the interpreter and imports included):

- baseline: read, validate and hash every row of the file (`JsonlSource.read()`), nothing stored;
- for each backend: sync the source into a new dataset, sync it again unchanged (must send 0 rows), pin a
  snapshot (count + digest).

`vs baseline` divides the first sync's rows/s by the baseline's. The target is a peak RSS under 300 MB on
every backend, whatever the row count. PostgreSQL is a throwaway server started here (`tests/pg_server.py`,
fsync off); the Braintrust and Keywords AI fakes run in their own processes, so their memory is not counted.

The Keywords AI fake enforces the documented 60 requests/minute by default; here it runs with its rate
limit off (`rate_limit_per_minute=None`, which the fake allows) and the client paces nothing, so the
figures are the client's own cost. The fake keeps every log in a dict and filters and sorts the whole
dataset on each list request (its pages are computed per request), so its time grows faster than
linearly with the row count: `--backends keywordsai` is practical up to about 100k rows on a small
machine (see RESULTS.md for what was measured).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from filler import filler_text
from machine import machine_line

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "bench-key"
BACKENDS = ("sqlite", "postgresql", "braintrust", "keywordsai")


def write_source(path: Path, rows: int, row_bytes: int) -> int:
    """Write `rows` JSONL rows of about `row_bytes` bytes each; returns the file size."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            words = filler_text(i, row_bytes)
            row = {
                "id": f"row-{i:07d}",
                "input": {"question": f"#{i}: {words}"[: max(row_bytes - 150, 10)]},
                "expected": f"answer {i}",
                "metadata": {"i": i, "source": "bench"},
                "tags": ["bench"],
            }
            handle.write(json.dumps(row) + "\n")
    return path.stat().st_size


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def serve_braintrust(conn: Any) -> None:
    """Child process: run the Braintrust fake until the parent closes the pipe."""
    from dagster_evals.testing.braintrust import BraintrustFake
    from dagster_evals.testing.server import ServerThread

    fake = BraintrustFake(api_key=KEY, record_bodies=False)
    with ServerThread(fake.app) as server:
        conn.send(server.url)
        with contextlib.suppress(EOFError):
            conn.recv()


def serve_keywordsai(conn: Any) -> None:
    """Child process: run the Keywords AI fake, rate limit off, until the parent closes the pipe."""
    from dagster_evals.testing.keywordsai import KeywordsAIFake

    fake = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=None)
    with fake.serve() as server:
        conn.send(server.url)
        with contextlib.suppress(EOFError):
            conn.recv()


def fake_requests(url: str) -> int:
    import httpx

    counts = httpx.get(url + "/_fake/stats", timeout=60).json()["requests"]
    return sum(n for route, n in counts.items() if route != "GET /_fake/stats")


# -- child processes ------------------------------------------------------------------------------
def child_baseline(source: str) -> dict[str, Any]:
    from dagster_evals.engine.sources import JsonlSource

    started = time.perf_counter()
    rows = sum(1 for _ in JsonlSource(source, key_field="id").read())
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def child_sync(backend: str, source: str, target: str) -> dict[str, Any]:
    from dagster_evals.engine.sources import JsonlSource
    from dagster_evals.engine.sync import sync_rows

    if backend == "braintrust":
        from dagster_evals.backends.braintrust.platform import BraintrustPlatform

        platform: Any = BraintrustPlatform(
            api_key=KEY, api_url=target, app_url=target, project="bench", collect_git=False
        )
    elif backend == "keywordsai":
        from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform

        platform = KeywordsAIPlatform.connect(KEY, base_url=target, rate_limit_per_minute=None)
    else:
        from dagster_evals import LocalPlatform

        platform = LocalPlatform(target)

    def requests() -> int:
        if backend == "keywordsai":
            return int(platform.http.requests_sent)
        return fake_requests(target) if backend == "braintrust" else 0

    phases: dict[str, Any] = {}
    dataset = platform.ensure_dataset("bench-1m")
    for phase in ("sync", "re-sync"):
        before = requests()
        started = time.perf_counter()
        result = sync_rows(platform, dataset, JsonlSource(source, key_field="id"))
        seconds = time.perf_counter() - started
        sent = requests() - before if backend in ("braintrust", "keywordsai") else result.requests_sent
        phases[phase] = {
            "seconds": seconds,
            "rows": result.rows_total,
            "rows_sent": result.rows_sent,
            "requests": sent,
        }
    before = requests()
    started = time.perf_counter()
    snapshot = platform.snapshot(dataset)
    phases["snapshot"] = {
        "seconds": time.perf_counter() - started,
        "rows": snapshot.row_count,
        "rows_sent": 0,
        "requests": requests() - before,
        "digest": snapshot.digest[:12],
    }
    platform.close()
    return {"phases": phases, "peak_rss_mb": peak_rss_mb()}


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the parent -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--row-bytes", type=int, default=500)
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        result = child_baseline(*rest) if kind == "baseline" else child_sync(kind, *rest)
        print(json.dumps(result))
        return

    print(f"machine: {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="bench-sync-1m-") as tmp:
        source = Path(tmp) / "rows.jsonl"
        size = write_source(source, args.rows, args.row_bytes)
        print(
            f"source: {args.rows:,} rows, {size / 2**20:,.0f} MiB of JSONL ({size / args.rows:.0f} bytes a row)"
        )

        baseline = run_child("baseline", str(source))
        base_rate = baseline["rows"] / baseline["seconds"]
        header = (
            f"{'backend':<11} | {'phase':<8} | {'rows/s':>9} | {'seconds':>8} | {'rows sent':>9} | "
            f"{'requests':>8} | {'peak RSS MB':>11} | {'vs baseline':>11}"
        )
        print(header)
        print("-" * len(header))
        print(
            f"{'baseline':<11} | {'read':<8} | {base_rate:9,.0f} | {baseline['seconds']:8.1f} | {0:9} | "
            f"{0:8} | {baseline['peak_rss_mb']:11.0f} | {1.0:11.2f}"
        )
        for backend in args.backends:
            with target_for(backend, Path(tmp)) as target:
                measured = run_child(backend, str(source), target)
            peak = f"{measured['peak_rss_mb']:.0f}"
            for phase, figures in measured["phases"].items():
                rate = figures["rows"] / figures["seconds"] if figures["seconds"] else 0.0
                print(
                    f"{backend:<11} | {phase:<8} | {rate:9,.0f} | {figures['seconds']:8.1f} | "
                    f"{figures['rows_sent']:9,} | {figures['requests']:8,} | "
                    f"{peak if phase == 'sync' else '':>11} | "
                    f"{rate / base_rate:11.2f}"
                )
        print(
            "\nrows/s: source rows per second of wall time (snapshot: rows pinned and digested). requests: HTTP\n"
            "requests the fake received (Braintrust), the client sent (Keywords AI) or transactions committed\n"
            "(local backend). peak RSS MB:\n"
            "the child process's maximum resident memory over all three phases (interpreter and imports\n"
            "included; target < 300). vs baseline: rows/s divided by reading, validating and hashing the\n"
            "file alone."
        )


@contextlib.contextmanager
def target_for(backend: str, tmp: Path) -> Any:
    """The URL a child syncs to: a SQLite file, a database on a fresh PostgreSQL server, or the fake."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.sqlite'}"
    elif backend == "postgresql":
        from tests.pg_server import PostgresServer

        server = PostgresServer()
        try:
            server.start()
            yield server.create_database()
        finally:
            server.stop()
    else:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        serve = serve_braintrust if backend == "braintrust" else serve_keywordsai
        proc = ctx.Process(target=serve, args=(child,), daemon=True)
        proc.start()
        try:
            yield parent.recv()
        finally:
            parent.close()
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()


if __name__ == "__main__":
    main()
