"""LLM-judge throughput against the fake OpenAI server with a fixed answer latency.

A judge can score at most `max_concurrency / latency` rows per second; `% of limit` is how close the
runner + judge client (pacing, retries, usage accounting, autoevals' factuality prompt) get. The fake runs
in a child process (`python -m dagster_evals.testing openai`) so it does not share this process's GIL.

Two rates are printed. `steady` is the throughput once the run is going: the least-squares slope of
results over time across the middle 60 % of the results, while every slot is busy. `run` is rows / wall
time of the whole `run_eval_locally` call, so it also carries the run's fixed costs: the first wave
(every slot opens its connection and thread at once), the last wave (once the rows run out, slots sit
idle until the slowest row ends: half a latency per slot on average once the rows have drifted apart),
and starting and closing the event loop. `--seconds` sets the length of each measurement; the longer it
is, the less those fixed costs weigh on `run`.

    .venv/bin/python benchmarks/bench_judge_throughput.py [--latency-ms 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Measured:
    rate: float  # rows / wall time of the whole run
    steady_rate: float  # rows/s with every slot busy (see the module docstring)
    first_wave_ms: float  # run start -> the `concurrency`-th result
    closing_ms: float  # the last result -> `run_eval_locally` returned
    calls: int
    scored: int
    cpu_ms: float  # CPU of this process per judge call


def bench(base_url: str, concurrency: int, rows: int) -> Measured:
    settings = JudgeSettings(base_url=base_url, api_key=KEY, max_concurrency=concurrency, cache=False)
    scorer = judge("factuality", endpoint=settings)
    data = [DatasetRow.build(input=f"What is 2 + {i}?", expected=str(2 + i)) for i in range(rows)]
    calls = [0]
    scored = [0]
    finished: list[float] = []

    def on_result(result: Any) -> None:
        finished.append(time.perf_counter())
        calls[0] += result.usage.get("scopes", {}).get("factuality", {}).get("calls", 0)
        scored[0] += result.scores.get("factuality") is not None

    cpu = time.process_time()
    started = time.perf_counter()
    run_eval_locally(data, lambda input: "4", [scorer], on_result, max_concurrency=concurrency)
    ended = time.perf_counter()
    cpu_ms = (time.process_time() - cpu) * 1000 / max(1, calls[0])
    first = finished[concurrency - 1]  # the first wave is in
    rate = rows / (ended - started)
    # The steady rate: the least-squares slope of "results so far" over time across the middle 60 % of the
    # results, all slots busy (after the first wave, before the last row starts). A slope over many
    # cycles is not skewed by where a window's ends fall within a burst of answers.
    low, high = max(concurrency, rows // 5), min(rows - concurrency, rows - rows // 5)
    steady = rate
    if high - low >= 10:
        steady = statistics.linear_regression(finished[low:high], range(low, high)).slope
    return Measured(
        rate=rate,
        steady_rate=steady,
        first_wave_ms=(first - started) * 1000,
        closing_ms=(ended - finished[-1]) * 1000,
        calls=calls[0],
        scored=scored[0],
        cpu_ms=cpu_ms,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="ideal duration of each measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 50])
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="bench-judge-"))
    proc, base_url = start_fake(latency)
    print(machine_line())
    print(f"judge: factuality (autoevals), fake answer latency {args.latency_ms:g} ms, cache off\n")
    header = (
        "concurrency | rows | limit rows/s | run rows/s | run % | steady rows/s | steady % | first wave ms"
        " | closing ms | judge calls | rows scored | CPU ms/call | fake CPU ms/call"
    )
    print(header)
    print("-" * len(header))
    try:
        bench(base_url, 2, 4)  # warm-up: imports, first connections
        for concurrency in args.concurrency:
            limit = concurrency / latency
            rows = max(concurrency, round(limit * args.seconds))
            fake_before = process_cpu_s(proc.pid)
            m = bench(base_url, concurrency, rows)
            fake_after = process_cpu_s(proc.pid)
            fake_ms = (
                f"{(fake_after - fake_before) * 1000 / max(1, m.calls):>16.2f}"
                if fake_before is not None and fake_after is not None
                else f"{'n/a':>16}"
            )
            print(
                f"{concurrency:>11} | {rows:>4} | {limit:>12,.0f} | {m.rate:>10,.1f} | {m.rate / limit:>5.1%} | "
                f"{m.steady_rate:>13,.1f} | {m.steady_rate / limit:>8.1%} | {m.first_wave_ms:>13.0f} | "
                f"{m.closing_ms:>10.0f} | {m.calls:>11} | {m.scored:>11} | {m.cpu_ms:>11.2f} | {fake_ms}"
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
