"""Run every benchmark in its own process and write benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run_all.py [--quick] [--output benchmarks/RESULTS.md]

`--quick` runs every benchmark at a small size (a check that they all work, in about a minute); its
figures are not comparable with a full run. Each benchmark prints its own baseline, measured in the same
run, so every ratio in the file compares figures taken minutes apart on the same machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform as pyplatform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


@dataclass
class Bench:
    title: str
    script: str
    args: list[str]
    quick_args: list[str]
    meaning: str


BENCHES = [
    Bench(
        "Local runner throughput",
        "bench_local_runner.py",
        [],
        ["--rows", "300"],
        "The same I/O-bound task (20 ms per row) and Levenshtein scorer through the runner alone, through "
        "`LocalPlatform.run_eval` as in production (SQLite, row checkpoints, the report spill and usage "
        "metering on, every row result stored) and through `braintrust.Eval` locally (`no_send_logs=True`), "
        "median of 3 interleaved runs. Goals (issue #24): platform / runner >= 0.9 at concurrency 50 and "
        "200, platform / braintrust.Eval >= 1.0 at every concurrency; the benchmark prints whether each is met.",
    ),
    Bench(
        "Braintrust dataset sync vs the official SDK",
        "bench_braintrust_sync.py",
        ["--rows", "10000", "--skip-memory"],
        ["--rows", "1000", "--skip-memory"],
        "`ratio (ours / SDK)` divides the rows/s of `sync_rows` by those of the official SDK's "
        "`init_dataset(...).insert(...)` + `flush()` into the same fake (a child process, over loopback); "
        "above 1 means dagster-evals uploads faster. The re-sync of unchanged rows must send 0 rows.",
    ),
    Bench(
        "Braintrust dataset sync vs the official SDK, with memory",
        "bench_braintrust_sync.py",
        ["--rows", "100000"],
        ["--rows", "5000"],
        "The same comparison at 100k rows of ~1 kB, plus peak Python memory above the source rows "
        "during a sync (this benchmark passes the rows as an in-memory list). Rows are checked, diffed and "
        "sent chunk by chunk; the id → content-hash maps the diff needs live in a temporary SQLite file, so "
        "the peak should stay flat from 10k to N rows.",
    ),
    Bench(
        "Keywords AI paced sync vs the rate-limit floor",
        "bench_keywordsai_sync.py",
        [],
        ["--rows", "200"],
        "The fake enforces 60 requests per (scaled) minute; `x the floor` divides the wall time by "
        "requests / rate, the time those requests take at the limit's steady rate, so ~1.1x is the "
        "client's 90 % pacing headroom. Paced syncs should see 0 429s. The sliding window also lets a "
        "first burst of 60 through, which the unpaced run uses (below 1x) at the price of 429s and retries.",
    ),
    Bench(
        "Prompt-version sensor tick",
        "bench_sensor_tick.py",
        [],
        ["--prompts", "100", "--repeats", "2"],
        "`requests vs baseline` divides the requests of polling prompt by prompt (list, then one "
        "request per prompt) by those of one sensor tick, `seconds vs baseline` likewise for time; "
        "above 1 means the tick is cheaper. `at 60/min` is the least time a tick's requests take under "
        "Keywords AI's documented limit; `empty sensor` is Dagster's own cost of evaluating a sensor.",
    ),
    Bench(
        "Local backend: SQLite vs PostgreSQL",
        "bench_local_backends.py",
        [],
        ["--rows", "500"],
        "The same sync, snapshot, eval and re-sync on the embedded backend with SQLite and with a PostgreSQL "
        "server the benchmark starts itself (run as root, it uses the `postgres` user); `PG / SQLite` divides "
        "PostgreSQL's rows/s by SQLite's, so above 1 means PostgreSQL is faster for that phase.",
    ),
    Bench(
        "Dataset sync of a 1M-row JSONL source on every backend",
        "bench_sync_1m.py",
        [],
        ["--rows", "2000"],
        "A ~500 MB JSONL file synced to local SQLite, PostgreSQL and the Braintrust fake, each in a fresh "
        "child process: `peak RSS MB` is that process's maximum resident memory (target < 300 MB at 1M rows), "
        "`vs baseline` divides rows/s by reading, validating and hashing the same file with nothing stored. "
        "A sync reads the source twice (validate and diff, then send), so about 0.5x the baseline is the "
        "ceiling before any write. The re-sync of the unchanged file must send 0 rows.",
    ),
    Bench(
        "LLM-judge throughput against the fake OpenAI server",
        "bench_judge_throughput.py",
        [],
        ["--seconds", "1"],
        "With a fixed 200 ms answer latency a judge can score at most `max_concurrency / latency` rows/s; "
        "`steady %` is how close the runner, the governed judge client and autoevals' factuality judge get "
        "once the run is going (target: 95 %), `run %` the same over the whole call, its first wave (new "
        "connections and threads), last partial wave and loop start-up included. `CPU ms/call` is this "
        "process's CPU per judge call: the limit needs that much CPU time per second free for the benchmark.",
    ),
    Bench(
        "Sharded eval: CPU-bound scorer, 1 vs 2 shards",
        "bench_sharding.py",
        ["cpu", "--rows", "10000"],
        ["cpu", "--rows", "100"],
        "One eval report as real Dagster runs (multiprocess executor, local SQLite backend); `vs baseline` "
        "divides the unsharded eval's time by the sharded one's (target on 2 cores: at least 1.8x). "
        "`requests` counts task calls (each row exactly once), `peak MB` is the largest resident set of any "
        "step process. Times run from the first eval step's start to the combine step's end.",
    ),
    Bench(
        "Sharded eval: I/O-bound task, 100k rows, 4 shards",
        "bench_sharding.py",
        ["io", "--rows", "100000"],
        ["io", "--rows", "500"],
        "A task that waits 20 ms per row at `max_concurrency=50` per step, unsharded vs 4 shards; each shard "
        "reads the whole snapshot and keeps its rows, and the combine step records every result once.",
    ),
    Bench(
        "Resume after a kill",
        "bench_sharding.py",
        ["resume", "--rows", "10000"],
        ["resume", "--rows", "300"],
        "The eval step is SIGKILLed after 60 % of its rows and re-executed from failure; the re-execution "
        "calls the task only for rows not checkpointed (about 40 %, plus at most one unflushed batch). "
        "`vs baseline` divides an uninterrupted run's time by that of both attempts together.",
    ),
    Bench(
        "Loading the example code location",
        "bench_definitions_load.py",
        [],
        ["--runs", "2"],
        "Each command runs in fresh processes (median); `vs baseline` divides by a bare "
        '`python -c "import dagster"` (for the imports) or by `dagster definitions validate` on an empty '
        "`Definitions` (for the CLI), so `added s` is what dagster-evals and the example cost at start-up.",
    ),
]


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def source_state() -> str:
    """The commit measured, and the package files that differ from it."""
    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = [
        path
        for path in (line[3:] for line in git("status", "--porcelain").splitlines())
        if path.endswith(".py")
        and (path.startswith(("dagster_evals/", "example/")) or path == "definitions.py")
    ]
    if changed:
        return f"commit {commit}, with local changes to {', '.join(sorted(changed))}"
    return f"commit {commit}"


def run(bench: Bench, quick: bool) -> tuple[str, float, int]:
    args = bench.quick_args if quick else bench.args
    command = [sys.executable, str(HERE / bench.script), *args]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    elapsed = time.perf_counter() - started
    lines = [line.rstrip() for line in done.stdout.splitlines() if not line.startswith("machine:")]
    while lines and not lines[0]:
        lines.pop(0)
    text = "\n".join(lines).rstrip()
    if done.returncode != 0:
        text += f"\n\nFAILED (exit {done.returncode}):\n" + "\n".join(done.stderr.splitlines()[-30:])
    return text, elapsed, done.returncode


def command_text(bench: Bench, quick: bool) -> str:
    args = bench.quick_args if quick else bench.args
    return " ".join([".venv/bin/python", f"benchmarks/{bench.script}", *args])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a fast check")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--only", nargs="*", help="run only the benchmarks whose script names contain these")
    args = parser.parse_args(argv)

    benches = [b for b in BENCHES if not args.only or any(o in b.script for o in args.only)]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmark results" + (" (quick run: small sizes, not for comparison)" if args.quick else ""),
        "",
        f"Generated by `.venv/bin/python benchmarks/run_all.py{' --quick' if args.quick else ''}` on {now}.",
        "Every ratio compares figures measured in the same run, on this machine:",
        "",
        f"- CPUs (nproc): {os.cpu_count()}, {cpu_model()}",
        f"- Python {pyplatform.python_version()} ({pyplatform.system()} {pyplatform.machine()})",
        f"- Source: {source_state()}",
        "",
        "Re-run one benchmark with the command in its section.",
    ]
    load_start = os.getloadavg()[0]
    failures = 0
    for bench in benches:
        print(
            f"running {bench.script} {' '.join(bench.quick_args if args.quick else bench.args)}", flush=True
        )
        text, elapsed, code = run(bench, args.quick)
        failures += code != 0
        sizes = [a for a in (bench.quick_args if args.quick else bench.args) if a != "--skip-memory"]
        print(text + f"\n({elapsed:.0f} s)\n", flush=True)
        out += [
            "",
            f"## {bench.title}" + (f" ({' '.join(sizes)})" if sizes else ""),
            "",
            f"`{command_text(bench, args.quick)}` ({elapsed:.0f} s)",
            "",
            "```",
            text,
            "```",
            "",
            bench.meaning,
        ]
    load = f"- Load average (1 min) {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    out.insert(next(i for i, line in enumerate(out) if line.startswith("- Source:")) + 1, load)
    args.output.write_text("\n".join(out) + "\n")
    print(f"wrote {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
