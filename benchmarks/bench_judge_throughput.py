"""LLM-judge throughput against the fake OpenAI server with a fixed answer latency.

A judge can score at most `max_concurrency / latency` rows per second; `% of limit` is how close the
runner + judge client (pacing, retries, usage accounting, autoevals' factuality prompt) get. The fake runs
in a child process (`python -m dagster_evals.testing openai`) so it does not share this process's GIL.

    .venv/bin/python benchmarks/bench_judge_throughput.py [--latency-ms 200] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine_line

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_evals import DatasetRow, JudgeSettings, judge, run_eval_locally

KEY = "bench-key"


def start_fake(latency_s: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_evals.testing",
            "openai",
            "--api-key",
            KEY,
            "--latency",
            str(latency_s),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("the fake OpenAI server did not start")
    return proc, url + "/v1"


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(base_url: str, concurrency: int, rows: int) -> tuple[float, int, int, float]:
    """rows/s, judge calls made, rows with a score, CPU ms of this process per judge call."""
    settings = JudgeSettings(base_url=base_url, api_key=KEY, max_concurrency=concurrency, cache=False)
    scorer = judge("factuality", endpoint=settings)
    data = [DatasetRow.build(input=f"What is 2 + {i}?", expected=str(2 + i)) for i in range(rows)]
    calls = [0]
    scored = [0]

    def on_result(result: Any) -> None:
        calls[0] += result.usage.get("scopes", {}).get("factuality", {}).get("calls", 0)
        scored[0] += result.scores.get("factuality") is not None

    cpu = time.process_time()
    started = time.perf_counter()
    run_eval_locally(data, lambda input: "4", [scorer], on_result, max_concurrency=concurrency)
    elapsed = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu) * 1000 / max(1, calls[0])
    return rows / elapsed, calls[0], scored[0], cpu_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=4.0, help="ideal duration of each measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 50])
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="bench-judge-"))
    proc, base_url = start_fake(latency)
    print(machine_line())
    print(f"judge: factuality (autoevals), fake answer latency {args.latency_ms:g} ms, cache off\n")
    header = (
        "concurrency | rows | limit rows/s | judge rows/s | % of limit | judge calls | rows scored | CPU ms/call"
        " | fake CPU ms/call"
    )
    print(header)
    print("-" * len(header))
    try:
        bench(base_url, 2, 4)  # warm-up: imports, first connections
        for concurrency in args.concurrency:
            limit = concurrency / latency
            rows = max(concurrency, round(limit * args.seconds))
            fake_before = process_cpu_s(proc.pid)
            rate, calls, scored, cpu_ms = bench(base_url, concurrency, rows)
            fake_after = process_cpu_s(proc.pid)
            fake_ms = (
                f"{(fake_after - fake_before) * 1000 / max(1, calls):>16.2f}"
                if fake_before is not None and fake_after is not None
                else f"{'n/a':>16}"
            )
            print(
                f"{concurrency:>11} | {rows:>4} | {limit:>12,.0f} | {rate:>12,.1f} | {rate / limit:>9.1%} | "
                f"{calls:>11} | {scored:>11} | {cpu_ms:>11.2f} | {fake_ms}"
            )
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"\nload average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; the limit is reached "
        "only when this process gets the CPU time of (judge rows/s x CPU ms/call) per second, and the fake "
        "server's process (judge rows/s x fake CPU ms/call)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
