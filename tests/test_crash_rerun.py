"""A sync killed mid-way (SIGKILL of the `dagster` CLI process) and run again leaves exactly the source rows
— on the local backend and on both fake platforms, each fake served by its own process so it outlives the
killed client."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.conftest import REPO, write_jsonl
from tests.fault_helpers import KEY, assert_exactly

DAGSTER = str(Path(sys.executable).with_name("dagster"))
DATASET_KEY = dg.AssetKey(["evals", "crash", "dataset"])
# Sizes and pacing that make each sync take several seconds, so the kill lands mid-way.
ROWS = {"local": 600, "braintrust": 200, "keywordsai": 160}
DEFINITIONS = """
import dagster as dg
from dagster_evals import BraintrustResource, EvalSuite, KeywordsAIResource, LocalEvalResource
from dagster_evals import build_eval_suite_definitions


def task(input):
    return str(input["a"] + input["b"])


suite = EvalSuite(name="crash", source={source!r}, key_field="id", task=task, scorers=["exact_match"])
defs = dg.Definitions.merge(
    build_eval_suite_definitions(suite), dg.Definitions(resources={{"evals": {resource}}})
)
"""
RESOURCES = {
    # One row per transaction.
    "local": "LocalEvalResource(path={db!r}, batch_size=1)",
    # Five rows per request, paced on the client to 10 requests a second.
    "braintrust": (
        'BraintrustResource(api_key=dg.EnvVar("BRAINTRUST_API_KEY"), api_url={url!r}, app_url={url!r}, '
        'project="crash", insert_batch_size=5, request_concurrency=1, rate_limit_per_minute=600, '
        "collect_git=False)"
    ),
    # Five logs per request, paced below the fake's limit of 1200 requests a minute.
    "keywordsai": (
        'KeywordsAIResource(api_key=dg.EnvVar("KEYWORDSAI_API_KEY"), base_url={url!r}, batch_size=5, '
        "rate_limit_per_minute=400)"
    ),
}


def source_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"row-{i:05d}",
            "input": {"a": i, "b": 2, "text": f"question {i}"},
            "expected": str(i + 2),
            "metadata": {"n": i},
        }
        for i in range(n)
    ]


class Fake:
    """A fake platform served by `python -m dagster_evals.testing` in a process of its own."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        args = [sys.executable, "-m", "dagster_evals.testing", platform, "--api-key", KEY]
        if platform == "keywordsai":
            args += ["--rate-limit", "1200"]
        self.process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), f"the fake did not start: {self.url!r}"
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)

    def close(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rows(self) -> list[dict[str, Any]]:
        """Every row of dataset "crash", read through the platform's documented API."""
        if self.platform == "braintrust":
            found = self.http.get("/v1/dataset", params={"dataset_name": "crash", "project_name": "crash"})
            [dataset] = found.raise_for_status().json()["objects"]
            events: list[dict[str, Any]] = []
            cursor = None
            while True:
                body: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = (
                    self.http.post(f"/v1/dataset/{dataset['id']}/fetch", json=body).raise_for_status().json()
                )
                events += page["events"]
                cursor = page.get("cursor")
                if not page["events"] or not cursor:
                    break
            return [
                {"id": e["id"], "input": e["input"], "expected": e.get("expected"), "metadata": e["metadata"]}
                for e in events
            ]
        datasets = self.http.get("/api/datasets/list/", params={"page_size": 100}).raise_for_status().json()
        [dataset_id] = [d["id"] for d in datasets["results"] if d["name"] == "crash"]
        logs: list[dict[str, Any]] = []
        page_number = 1
        while True:
            page = self.http.get(
                f"/api/datasets/{dataset_id}/logs/list/", params={"page": page_number, "page_size": 100}
            )
            body = page.raise_for_status().json()
            logs += body["results"]
            if not body.get("next"):
                break
            page_number += 1
        rows = []
        for log in logs:
            metadata = dict(log["metadata"])
            row_id = metadata.pop("dagster_evals_row_id")
            metadata = {k: v for k, v in metadata.items() if not k.startswith("dagster_evals_")}
            rows.append(
                {
                    "id": row_id,
                    "input": log["input"],
                    "expected": log["expected_output"],
                    "metadata": metadata,
                }
            )
        return rows

    def count(self) -> int:
        if self.platform == "braintrust":
            return len(self.rows())
        datasets = self.http.get("/api/datasets/list/", params={"page_size": 100}).raise_for_status().json()
        [dataset] = [d for d in datasets["results"] if d["name"] == "crash"]
        return int(dataset.get("log_count") or 0)


def local_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db, timeout=10) as conn:
        found = conn.execute(
            "SELECT row_id, input, expected, metadata FROM dataset_rows WHERE version_removed IS NULL"
        ).fetchall()
    return [
        {
            "id": row_id,
            "input": json.loads(input_),
            "expected": None if expected is None else json.loads(expected),
            "metadata": json.loads(metadata),
        }
        for row_id, input_, expected, metadata in found
    ]


def local_count(db: Path) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute("SELECT COUNT(*) FROM dataset_rows WHERE version_removed IS NULL").fetchone()[0]


@pytest.fixture(params=["local", "braintrust", "keywordsai"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Fake | Path]]:
    if request.param == "local":
        yield "local", tmp_path / "evals.sqlite"
        return
    fake = Fake(request.param)
    try:
        yield request.param, fake
    finally:
        fake.close()


def test_sync_killed_mid_way_then_rerun_holds_exactly_the_source_rows(
    backend: tuple[str, Fake | Path], tmp_path: Path
) -> None:
    platform, target = backend
    rows = source_rows(ROWS[platform])
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    resource = RESOURCES[platform].format(db=str(target), url=target.url if isinstance(target, Fake) else "")
    defs_file = tmp_path / "crash_definitions.py"
    defs_file.write_text(DEFINITIONS.format(source=str(source), resource=resource))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "BRAINTRUST_API_KEY": KEY,
        "KEYWORDSAI_API_KEY": KEY,
    }
    command = [DAGSTER, "asset", "materialize", "--select", "evals/crash/dataset", "-f", str(defs_file)]

    def present() -> int:
        try:
            return target.count() if isinstance(target, Fake) else local_count(target)
        except (httpx.HTTPError, sqlite3.Error, ValueError):
            return 0  # the dataset or the database does not exist yet

    # Its own process group: the step may run in a child process, and a crash takes both down.
    sync = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    seen = 0
    try:
        while time.monotonic() < deadline and sync.poll() is None:
            seen = present()
            if len(rows) // 5 <= seen < len(rows):
                os.killpg(sync.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if sync.poll() is None:
            os.killpg(sync.pid, signal.SIGKILL)
        sync.wait()
    assert sync.returncode == -signal.SIGKILL and len(rows) // 5 <= seen < len(rows), (
        f"the sync was not caught mid-way (exit code {sync.returncode}, {seen}/{len(rows)} rows seen): "
        "it finished or failed before it could be killed; slow it down"
    )

    # Let anything already on the wire land, then read what the killed run left behind.
    partial = present()
    while True:
        time.sleep(0.3)
        now = present()
        if now == partial:
            break
        partial = now
    assert 0 < partial < len(rows), f"{partial}/{len(rows)} rows after the kill"
    left = target.rows() if isinstance(target, Fake) else local_rows(target)
    assert len({r["id"] for r in left}) == len(left) == partial, "the killed run left duplicate rows"

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    assert_exactly(target.rows() if isinstance(target, Fake) else local_rows(target), rows)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        event = instance.get_latest_materialization_event(DATASET_KEY)
        assert event is not None and event.asset_materialization is not None
        metadata = {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}
    assert metadata["rows_total"] == len(rows)
    assert (metadata["rows_added"], metadata["rows_unchanged"]) == (len(rows) - partial, partial)
    assert metadata["rows_sent"] == len(rows) - partial
