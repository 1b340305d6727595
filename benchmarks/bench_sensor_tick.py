"""Cost of one prompt-version sensor tick with many prompts, on the local backend and the two fakes.

    .venv/bin/python benchmarks/bench_sensor_tick.py [--prompts 1000] [--versions 3] [--repeats 5]

Seeds `--prompts` prompts with `--versions` versions each through each platform's own write path (local:
`LocalPlatform.push_prompt_version`; Braintrust: `POST /v1/prompt` then `PATCH /v1/prompt/{id}` per new
version; Keywords AI: the fake's `add_prompt`/`add_prompt_version`, as the fake serves no prompt-writing
endpoint), then evaluates `build_prompt_version_sensor` through Dagster (`dg.build_sensor_context` with a
real instance and the platform's resource) following every prompt of the project, and following one slug:

- first tick (no cursor), steady-state tick (cursor up to date, nothing new), and the tick after 10 new
  versions (of 10 different prompts, one of them the followed slug);
- requests counted by the fake server (local: 0, SQLite), median seconds of `--repeats` evaluations (a tick
  depends only on its cursor and the platform's state, so each one is repeated from the same cursor).

The baseline, measured in the same run, polls prompt by prompt: list the prompts, then fetch each prompt's
versions with one request per prompt (Keywords AI: `GET /api/prompts/{id}/versions/`; Braintrust, whose
REST API lists no version history: `GET /v1/prompt/{id}`; local: one query per slug). Both fakes run in
this process (uvicorn on 127.0.0.1 in a thread, real HTTP); the Keywords AI fake runs with its rate limit
off and the client unpaced, so seconds show the work, and the `at 60/min` column shows the floor the
documented limit (60 requests per minute) puts on the same requests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform as pyplatform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg

from dagster_evals import (
    BraintrustResource,
    EvalPlatformResource,
    EvalSuite,
    KeywordsAIResource,
    LocalEvalResource,
    build_eval_suite_definitions,
    build_prompt_version_sensor,
)
from dagster_evals.backends.braintrust import api as bt_api
from dagster_evals.backends.braintrust.platform import BraintrustPlatform
from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform
from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.keywordsai import KeywordsAIFake

KEY = "bench-key"
PROJECT = "bench"
NEW_VERSIONS = 10
KEYWORDSAI_LIMIT_PER_S = 1.0  # documented: 60 requests per minute per organization

warnings.filterwarnings("ignore", category=dg.BetaWarning)
with contextlib.suppress(AttributeError):
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def slug(i: int) -> str:
    return f"prompt-{i:05d}"


def content(i: int, version: int) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": f"You are assistant {i}, revision {version}."}]}


@dataclass
class Backend:
    """One platform under test: its resource, a request counter, seeding and baseline hooks."""

    name: str
    resource: EvalPlatformResource
    requests: Callable[[], int]
    add_version: Callable[[int, int], None]
    baseline: Callable[[], int]  # returns the number of versions (or prompts) it read


# -- backends -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def local_backend(tmp: Path, prompts: int, versions: int) -> Iterator[Backend]:
    path = tmp / "local.sqlite"
    local = LocalPlatform(path, project=PROJECT)
    for i in range(prompts):
        for v in range(1, versions + 1):
            local.push_prompt_version(slug(i), content(i, v))

    def add_version(i: int, v: int) -> None:
        local.push_prompt_version(slug(i), content(i, v))

    def baseline() -> int:
        return sum(len(local.list_prompt_versions(slug=slug(i))) for i in range(prompts))

    try:
        yield Backend(
            "local (SQLite)",
            LocalEvalResource(path=str(path), project=PROJECT),
            lambda: 0,
            add_version,
            baseline,
        )
    finally:
        local.close()


@contextlib.contextmanager
def braintrust_backend(tmp: Path, prompts: int, versions: int) -> Iterator[Backend]:
    fake = BraintrustFake(api_key=KEY, record_bodies=False)
    with fake.serve() as server:
        bt = BraintrustPlatform(api_key=KEY, api_url=server.url, app_url=server.url, project=PROJECT)
        project = bt.project()
        ids: dict[int, str] = {}
        for i in range(prompts):
            created = bt.client.create_prompt(
                bt_api.CreatePrompt(
                    project_id=project.id, name=slug(i), slug=slug(i), prompt_data=content(i, 1)
                )
            )
            ids[i] = created.id
            for v in range(2, versions + 1):
                bt.client.patch_prompt(created.id, bt_api.PatchPrompt(prompt_data=content(i, v)))

        def add_version(i: int, v: int) -> None:
            bt.client.patch_prompt(ids[i], bt_api.PatchPrompt(prompt_data=content(i, v)))

        def baseline() -> int:
            listed = list(bt.client.iter_prompts(project_name=PROJECT))
            return len([bt.client.get_prompt(p.id) for p in listed])

        try:
            yield Backend(
                "Braintrust fake",
                BraintrustResource(
                    api_key=KEY, api_url=server.url, app_url=server.url, project=PROJECT, collect_git=False
                ),
                lambda: sum(fake.requests.values()),
                add_version,
                baseline,
            )
        finally:
            bt.close()


@contextlib.contextmanager
def keywordsai_backend(tmp: Path, prompts: int, versions: int) -> Iterator[Backend]:
    fake = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=None)
    ids = {
        i: fake.add_prompt(slug(i), [content(i, v) for v in range(1, versions + 1)], slug=slug(i))
        for i in range(prompts)
    }
    with fake.serve() as server:
        kw = KeywordsAIPlatform.connect(KEY, base_url=server.url, rate_limit_per_minute=None)

        def add_version(i: int, v: int) -> None:
            fake.add_prompt_version(ids[i], content(i, v))

        def baseline() -> int:
            listed = list(kw.client.iter_prompts())
            return sum(len(list(kw.client.iter_prompt_versions(p.prompt_id))) for p in listed)

        try:
            yield Backend(
                "Keywords AI fake",
                KeywordsAIResource(api_key=KEY, base_url=server.url, rate_limit_per_minute=None),
                lambda: sum(fake.requests.values()),
                add_version,
                baseline,
            )
        finally:
            kw.close()


# -- measuring ------------------------------------------------------------------------------------------
@dataclass
class Measured:
    requests: int
    seconds: float
    run_requests: int
    cursor: str | None


def tick(
    sensor: dg.SensorDefinition,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    backend: Backend,
    cursor: str | None,
    repeats: int,
) -> Measured:
    """Evaluate the sensor `repeats` times from the same cursor: requests of one tick, median seconds."""
    timings: list[float] = []
    requests = 0
    runs = 0
    out_cursor: str | None = None
    for _ in range(repeats):
        before = backend.requests()
        started = time.perf_counter()
        with dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"evals": backend.resource},
            definitions=defs,
            sensor_name=sensor.name,
        ) as context:
            result = sensor(context)
        timings.append(time.perf_counter() - started)
        requests = backend.requests() - before
        if isinstance(result, dg.SkipReason):
            runs, out_cursor = 0, context.cursor
        else:
            assert isinstance(result, dg.SensorResult)
            runs, out_cursor = len(result.run_requests or []), result.cursor
    return Measured(requests, statistics.median(timings), runs, out_cursor)


def baseline(backend: Backend, repeats: int) -> Measured:
    timings: list[float] = []
    requests = 0
    for _ in range(repeats):
        before = backend.requests()
        started = time.perf_counter()
        backend.baseline()
        timings.append(time.perf_counter() - started)
        requests = backend.requests() - before
    return Measured(requests, statistics.median(timings), 0, None)


def suite_and_defs(tmp: Path, resource: EvalPlatformResource, followed: str) -> tuple[Any, Any, Any]:
    source = tmp / "rows.jsonl"
    source.write_text('{"id": "a", "input": "q", "expected": "a"}\n')
    suite = EvalSuite(
        name="bench_prompts",
        source=source,
        key_field="id",
        task=lambda input: "a",
        scorers=["exact_match"],
        partitions_def=dg.DynamicPartitionsDefinition(name="bench_prompt_versions"),
    )
    every = build_prompt_version_sensor(suite, name="every_prompt")
    single = build_prompt_version_sensor(suite, prompt_slugs=[followed], name="one_prompt")

    @dg.sensor(name="empty_sensor", job_name=suite.job_name, required_resource_keys={"evals"})
    def empty(context: dg.SensorEvaluationContext, **resources: Any) -> dg.SkipReason:
        return dg.SkipReason("nothing to do")

    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(sensors=[every, single, empty], resources={"evals": resource}),
    )
    return every, single, empty, defs


def run_backend(make: Callable[..., Any], tmp: Path, prompts: int, versions: int, repeats: int) -> list[str]:
    followed = 0
    seed_started = time.perf_counter()
    with make(tmp, prompts, versions) as backend:
        seeded = time.perf_counter() - seed_started
        every, single, empty, defs = suite_and_defs(tmp, backend.resource, slug(followed))
        naive = baseline(backend, repeats)
        limited = backend.name.startswith("Keywords")
        lines = [f"{backend.name}: seeded {prompts} prompts x {versions} versions in {seeded:.1f} s"]
        with dg.instance_for_test() as instance:
            floor = tick(empty, defs, instance, backend, None, repeats)
            results: dict[str, list[tuple[str, Measured]]] = {}
            cursors: dict[str, str | None] = {}
            for label, sensor in (("all prompts", every), ("one slug", single)):
                first = tick(sensor, defs, instance, backend, None, repeats)
                steady = tick(sensor, defs, instance, backend, first.cursor, repeats)
                results[label] = [("first tick", first), ("steady state", steady)]
                cursors[label] = steady.cursor
            # Ten new versions of ten prompts spread over the project, the followed one among them.
            for k in range(NEW_VERSIONS):
                backend.add_version(followed + k * max(1, prompts // NEW_VERSIONS), versions + 1)
            for label, sensor in (("all prompts", every), ("one slug", single)):
                after = tick(sensor, defs, instance, backend, cursors[label], repeats)
                results[label].append((f"after {NEW_VERSIONS} new versions", after))
        for label, rows in results.items():
            for what, m in rows:
                lines.append(row(backend.name, label, what, m, naive, limited))
        lines.append(row(backend.name, "baseline", "poll each prompt", naive, naive, limited))
        lines.append(row(backend.name, "nothing", "empty sensor (Dagster)", floor, naive, limited))
    return lines


def row(backend: str, follows: str, what: str, m: Measured, naive: Measured, limited: bool) -> str:
    req_ratio = f"{naive.requests / m.requests:.0f}x" if m.requests else "-"
    sec_ratio = f"{naive.seconds / m.seconds:.1f}x"
    floor = f"{m.requests / KEYWORDSAI_LIMIT_PER_S:.0f} s" if limited else "-"
    runs = "-" if follows in ("baseline", "nothing") else str(m.run_requests)
    return (
        f"{backend:<17} | {follows:<11} | {what:<24} | {m.requests:>8} | {m.seconds:>8.3f} | {runs:>4} | "
        f"{req_ratio:>12} | {sec_ratio:>12} | {floor:>9}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=3, help="versions of each prompt when seeded")
    parser.add_argument("--repeats", type=int, default=5, help="evaluations per tick (median seconds)")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {pyplatform.python_version()}")
    print(
        f"{args.prompts} prompts x {args.versions} versions; seconds: median of {args.repeats}; "
        "ratios: baseline / tick\n"
    )
    header = (
        f"{'backend':<17} | {'follows':<11} | {'tick':<24} | {'requests':>8} | {'seconds':>8} | {'runs':>4} | "
        f"{'requests vs':>12} | {'seconds vs':>12} | {'at 60/min':>9}"
    )
    print(header)
    print(
        f"{'':<17} | {'':<11} | {'':<24} | {'':>8} | {'':>8} | {'':>4} | {'baseline':>12} | {'baseline':>12} | {'':>9}"
    )
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for make in (local_backend, braintrust_backend, keywordsai_backend):
            sub = Path(tmp) / make.__name__
            sub.mkdir()
            lines = run_backend(make, sub, args.prompts, args.versions, args.repeats)
            for line in lines[1:]:
                print(line, flush=True)
            print(f"  ({lines[0]})", flush=True)
    print(
        "\nruns = run requests the tick returned (first tick: the latest version of each followed prompt).\n"
        "baseline = list the prompts, then one request (local: one query) per prompt for its versions.\n"
        "empty sensor = a sensor that only returns a SkipReason, evaluated the same way: Dagster's share.\n"
        "at 60/min = requests / (1 per second): the least time the same requests take under Keywords AI's\n"
        "documented limit (the client paces at 90 % of it, so ~11 % more); Dagster times a sensor tick out\n"
        "after 60 s by default."
    )


if __name__ == "__main__":
    main()
