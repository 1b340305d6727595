"""Sharded and resumed evals through real Dagster runs (multiprocess executor, local SQLite backend).

    .venv/bin/python benchmarks/bench_sharding.py cpu [--rows 10000] [--cpu-ms 10]
    .venv/bin/python benchmarks/bench_sharding.py io [--rows 100000] [--latency-ms 20] [--shards 4]
    .venv/bin/python benchmarks/bench_sharding.py resume [--rows 10000] [--kill-at 0.6]

- `cpu`: a scorer that burns `--cpu-ms` of CPU per row; 1 shard (baseline) vs 2 shards.
- `io`: a task that waits `--latency-ms` per row (concurrency 50 per step); 1 shard (baseline) vs
  `--shards` shards.
- `resume`: an uninterrupted run (baseline) vs a run whose eval step is SIGKILLed after `--kill-at` of its
  rows and then re-executed from failure: task calls and wall time of the re-execution, and of both together.

Each configuration runs in a fresh child process (a new Dagster instance and database), so its peak memory
(the largest resident set of any of its step processes) is its own. Times are those of the eval report's
steps (plan, shards and combine; or the one eval step), from the first step's start to the last step's end,
taken from the run's Dagster events; dataset sync and snapshot are left out, the start-up of the plan, shard
and combine step processes is included (a fixed cost of a few seconds that larger evals amortize).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine_line

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUITE = "bench_shards"


# -- the suite (rebuilt in every step process from the settings in the job's code pointer) -------------
def burn_scorer(input: Any, output: Any, expected: Any, metadata: dict[str, Any]) -> float:
    """CPU-bound scorer: `BENCH_CPU_MS` of busy work, then exact match."""
    until = time.process_time() + float(os.environ.get("BENCH_CPU_MS", "5")) / 1000
    x = 0
    while time.process_time() < until:
        x += 1
    return 1.0 if str(output) == str(expected) else 0.0


def count_call() -> None:
    calls = os.environ.get("BENCH_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as out:
            out.write("1\n")


def echo_task(input: dict[str, Any]) -> str:
    count_call()
    kill_at = int(os.environ.get("BENCH_KILL_AT") or 0)
    if kill_at:
        _counted[0] += 1
        if _counted[0] >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return str(input["n"])


_counted = [0]


async def wait_task(input: dict[str, Any]) -> str:
    count_call()
    await asyncio.sleep(float(os.environ.get("BENCH_LATENCY_MS", "20")) / 1000)
    return str(input["n"])


def eval_job(**settings: str) -> Any:
    import dagster as dg

    from dagster_evals import EvalSuite, LocalResource, build_eval_suite_definitions

    os.environ.update(settings)
    workload = settings["BENCH_WORKLOAD"]
    task: Any = {"cpu": echo_task, "io": wait_task, "resume": echo_task}[workload]
    scorers: list[Any] = [burn_scorer] if workload == "cpu" else ["exact_match"]
    suite = EvalSuite(
        name=SUITE,
        source=Path(settings["BENCH_SOURCE"]),
        key_field="id",
        task=task,
        scorers=scorers,
        max_concurrency=int(settings["BENCH_CONCURRENCY"]),
        shards=int(settings["BENCH_SHARDS"]),
        row_timeout_s=600,
        baseline=None,
    )
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(resources={"evals": LocalResource(url=settings["BENCH_DB"])}),
    )
    return defs.resolve_job_def(suite.job_name)


# -- one configuration, in a child process ------------------------------------------------------------
def eval_seconds(instance: Any, run_id: str) -> float:
    import dagster as dg

    starts, ends = [], []
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry
        step = event.step_key or ""
        if "eval_report" not in step or event.dagster_event is None:
            continue
        kind = event.dagster_event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            starts.append(event.timestamp)
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            ends.append(event.timestamp)
    return max(ends) - min(starts)


def one(args: argparse.Namespace) -> dict[str, Any]:
    """Run one configuration; returns its figures as a dict (printed as JSON)."""
    import dagster as dg

    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    source = work / "rows.jsonl"
    with source.open("w") as out:
        for i in range(args.rows):
            out.write(json.dumps({"id": f"r{i}", "input": {"n": i}, "expected": str(i)}) + "\n")
    calls = work / "calls.txt"
    settings = {
        "BENCH_WORKLOAD": args.workload,
        "BENCH_SOURCE": str(source),
        "BENCH_DB": f"sqlite:///{work / 'evals.sqlite'}",
        "BENCH_SHARDS": str(args.shards),
        "BENCH_CONCURRENCY": str(args.concurrency),
        "BENCH_CPU_MS": str(args.cpu_ms),
        "BENCH_LATENCY_MS": str(args.latency_ms),
        "BENCH_CALLS": str(calls),
    }
    if args.kill_at:
        settings["BENCH_KILL_AT"] = str(int(args.rows * args.kill_at))
    os.environ.update(settings)
    run_config = {
        "execution": {
            "config": {
                # spawn (the default): every step process is a child of this one, so its peak memory counts
                "multiprocess": {"max_concurrent": max(2, args.shards)}
            }
        }
    }
    home = work / "dagster_home"
    home.mkdir()
    figures: dict[str, Any] = {"rows": args.rows, "shards": args.shards}
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        job = dg.build_reconstructable_job(
            "bench_sharding",
            "eval_job",
            reconstructable_kwargs=settings,
            reconstructor_working_directory=str(Path(__file__).parent),
        )
        with dg.execute_job(job, instance, run_config=run_config, raise_on_error=False) as result:
            first_id, first_ok = result.run_id, result.success
        figures["seconds"] = eval_seconds(instance, first_id)
        if args.kill_at:
            assert not first_ok, "the run was meant to be killed"
            first_calls = len(calls.read_text().splitlines())
            settings.pop("BENCH_KILL_AT")
            os.environ.pop("BENCH_KILL_AT")
            job = dg.build_reconstructable_job(
                "bench_sharding",
                "eval_job",
                reconstructable_kwargs=settings,
                reconstructor_working_directory=str(Path(__file__).parent),
            )
            options = dg.ReexecutionOptions.from_failure(first_id, instance)
            with dg.execute_job(job, instance, run_config=run_config, reexecution_options=options) as again:
                assert again.success
                resumed_id = again.run_id
            figures["killed_seconds"] = figures["seconds"]
            figures["resume_seconds"] = eval_seconds(instance, resumed_id)
            figures["seconds"] = figures["killed_seconds"] + figures["resume_seconds"]
            figures["resume_calls"] = len(calls.read_text().splitlines()) - first_calls
        else:
            assert first_ok, "the run failed"
    figures["task_calls"] = len(calls.read_text().splitlines()) if calls.exists() else args.rows
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return figures


def child(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, args.workload, "--one"]
    for name, value in {**vars(args), **overrides}.items():
        if name in ("workload", "one") or value is None:
            continue
        command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def line(name: str, figures: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    rate = figures["rows"] / figures["seconds"]
    ratio = f"{baseline['seconds'] / figures['seconds']:.2f}x" if baseline else "1.00x (baseline)"
    return (
        f"{name:<28} {figures['seconds']:>9.1f} {rate:>10.0f} {figures['task_calls']:>10} "
        f"{figures['peak_rss_mb']:>10.0f}  {ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workload", choices=["cpu", "io", "resume"])
    parser.add_argument("--rows", type=int)
    parser.add_argument("--shards", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--cpu-ms", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--kill-at", type=float)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    defaults = {"cpu": (10_000, 2, 4), "io": (100_000, 4, 50), "resume": (10_000, 1, 10)}[args.workload]
    args.rows = args.rows or defaults[0]
    args.concurrency = args.concurrency or defaults[2]
    if args.one:
        args.shards = args.shards or 1
        print(json.dumps(one(args)))
        return
    shards = args.shards or defaults[1]
    print(machine_line())
    header = (
        f"{'configuration':<28} {'eval s':>9} {'rows/s':>10} {'requests':>10} {'peak MB':>10}  vs baseline"
    )
    if args.workload == "resume":
        kill_at = args.kill_at or 0.6
        baseline = child(args, shards=1, kill_at=None)
        resumed = child(args, shards=1, kill_at=kill_at)
        print(f"{args.rows} rows, I/O task, SIGKILL at {kill_at:.0%} then re-execute from failure")
        print(header)
        print(line("uninterrupted (baseline)", baseline, None))
        print(line("killed + resumed", resumed, baseline))
        print(
            f"re-execution alone: {resumed['resume_seconds']:.1f} s, {resumed['resume_calls']} task calls "
            f"({resumed['resume_calls'] / args.rows:.0%} of the rows; "
            f"{resumed['resume_seconds'] / baseline['seconds']:.0%} of the uninterrupted time)"
        )
        return
    what = (
        f"CPU-bound scorer ({args.cpu_ms:g} ms CPU per row)"
        if args.workload == "cpu"
        else f"I/O-bound task ({args.latency_ms:g} ms per row)"
    )
    print(f"{args.rows} rows, {what}, max_concurrency={args.concurrency} per step")
    baseline = child(args, shards=1)
    sharded = child(args, shards=shards)
    print(header)
    print(line("1 shard (baseline)", baseline, None))
    print(line(f"{shards} shards", sharded, baseline))


if __name__ == "__main__":
    main()
