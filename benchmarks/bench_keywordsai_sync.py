"""Sync rows into Keywords AI under the documented 60 requests/minute limit, against the fake server.

    .venv/bin/python benchmarks/bench_keywordsai_sync.py [--rows 1000] [--minute-s 1.0]

Time is scaled: the fake's minute lasts `--minute-s` real seconds (1 s by default, 60x faster than real
time) and enforces 60 requests per such minute; the client is configured for the same scaled rate
(60 per `--minute-s`). It prints the wall time next to the floor the limit imposes (requests / rate), the
429s received (target 0), the requests sent, and a re-sync of the unchanged rows (target: no row sent).
"""

from __future__ import annotations

import argparse
import os
import platform as pyplatform
import time

from machine import cpu_model

from dagster_evals.backends.keywordsai.platform import PACING_HEADROOM, KeywordsAIPlatform
from dagster_evals.engine.http import RetryPolicy
from dagster_evals.engine.models import DatasetRow
from dagster_evals.engine.sync import sync_rows
from dagster_evals.testing.keywordsai import KeywordsAIFake

LIMIT = 60
KEY = "bench-key"


def make_rows(n: int) -> list[DatasetRow]:
    return [
        DatasetRow.build(
            {"question": f"What is {i} + 2?", "context": {"source": "bench", "n": i}},
            expected=str(i + 2),
            metadata={"kind": "add", "difficulty": i % 3},
            id=f"row-{i:05d}",
        )
        for i in range(n)
    ]


def run_scenario(
    rows: list[DatasetRow],
    *,
    minute_s: float,
    batch_size: int,
    paced: bool,
    resync: bool,
    late_rate: float = 0.0,
) -> None:
    rate_per_s = LIMIT / minute_s
    fake = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=LIMIT, minute_s=minute_s)
    label = f"batch {batch_size}, " + ("paced" if paced else "NOT paced (429s expected)")
    if late_rate:
        # A share of the inserts is applied only after the client gave up on them: reconciliation cost.
        fake.faults.randomize(late_rate, seed=1, kinds=["late"], paths=["/logs/bulk/"], late_by=3)
        label += f", {late_rate:.0%} of inserts applied late"
    with fake.serve() as server:
        platform = KeywordsAIPlatform.connect(
            KEY,
            base_url=server.url,
            rate_limit_per_minute=LIMIT * 60 / minute_s if paced else None,
            batch_size=batch_size,
            settle_delay_s=0.1 * minute_s,
        )
        platform.http.retry = RetryPolicy(max_retries=50, backoff_base_s=0.05)
        dataset = platform.ensure_dataset("bench")
        sent_before = platform.http.requests_sent
        started = time.perf_counter()
        first = sync_rows(platform, dataset, rows)
        wall = time.perf_counter() - started
        sent = platform.http.requests_sent - sent_before
        floor = sent / rate_per_s
        print(f"\nsync of {len(rows)} rows — {label}:")
        print(f"  rows sent             {first.rows_sent}")
        print(f"  requests sent         {sent}")
        print(f"  429s received         {fake.throttled}")
        print(f"  wall time             {wall:.2f} s")
        print(f"  floor (requests/rate) {floor:.2f} s  -> {wall / floor:.2f}x the floor")
        burst_floor = max(0, sent - LIMIT) / rate_per_s
        print(f"  floor with the window's burst of {LIMIT} ((requests - {LIMIT})/rate) {burst_floor:.2f} s")
        print(f"  rows on the platform  {platform.count_rows(dataset)}")
        if late_rate:
            print(f"  inserts applied late  {fake.faults.late_applied}")
        if resync:
            throttled = fake.throttled
            sent_before = platform.http.requests_sent
            started = time.perf_counter()
            again = sync_rows(platform, dataset, rows)
            wall2 = time.perf_counter() - started
            sent2 = platform.http.requests_sent - sent_before
            print("  re-sync of the unchanged rows:")
            print(f"    rows sent           {again.rows_sent}")
            print(f"    requests sent       {sent2} (reads only: pages + count + version)")
            print(f"    wall time           {wall2:.2f} s (floor {sent2 / rate_per_s:.2f} s)")
            print(f"    429s received       {fake.throttled - throttled}")
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--minute-s", type=float, default=1.0, help="real seconds in the fake's minute")
    args = parser.parse_args()

    rows = make_rows(args.rows)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {pyplatform.python_version()}")
    print(
        f"fake limit: {LIMIT} requests per {args.minute_s:g} s (= {LIMIT}/min, time scaled {60 / args.minute_s:g}x); "
        f"client configured for {LIMIT}/min at the same scale, paced at {PACING_HEADROOM:.0%} of it"
    )
    # The default batch (100 rows a request), then 10-row batches so the sync needs well over a minute's
    # worth of requests, then the same without client pacing for comparison.
    run_scenario(rows, minute_s=args.minute_s, batch_size=100, paced=True, resync=True)
    run_scenario(rows, minute_s=args.minute_s, batch_size=10, paced=True, resync=True)
    run_scenario(rows, minute_s=args.minute_s, batch_size=10, paced=False, resync=False)
    run_scenario(rows, minute_s=args.minute_s, batch_size=100, paced=True, resync=False, late_rate=0.3)


if __name__ == "__main__":
    main()
