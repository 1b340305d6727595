"""A sync killed mid-way (SIGKILL of the `dagster` CLI process) and run again leaves exactly the source rows
— on the local backend and on both fake platforms.

The kill lands at a known point, whatever the machine's speed: on a platform the fake (served from this
process, so it outlives the killed client) holds the sync's next write request unanswered once a share of
the rows has landed; on the local backend a Dagster logger in the definitions stops the step at the progress
message of a given row count. The test kills the process only once the sync is provably stopped mid-way, as
the platform's own state shows."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from dagster_evals.testing import BraintrustFake, KeywordsAIFake, ServerThread
from tests.conftest import write_jsonl
from tests.fault_helpers import KEY, HoldRequests, assert_exactly, stored_rows

DAGSTER = str(Path(sys.executable).with_name("dagster"))
DATASET_KEY = dg.AssetKey(["evals", "crash", "dataset"])
ROWS = 50
BATCH = 5
# Batches that land before the sync is stopped: 20 of the 50 rows.
LANDED_BATCHES = 4
# Only bounds a hung sync; the kill itself waits for an event, never for time to pass.
STOP_WAIT_S = 240
DEFINITIONS = """
import logging
import os
import threading
from pathlib import Path

import dagster as dg
from dagster_evals import BraintrustResource, EvalSuite, KeywordsAIResource, LocalEvalResource
from dagster_evals import build_eval_suite_definitions


def task(input):
    return str(input["a"] + input["b"])


class StopAt(logging.Handler):
    \"\"\"Stops the step for good at the progress message naming `STOP_AT` written rows.\"\"\"

    def emit(self, record):
        stop_at = os.environ.get("STOP_AT")
        if stop_at and stop_at in record.getMessage():
            Path(os.environ["STOP_MARKER"]).write_text(record.getMessage())
            threading.Event().wait()


@dg.logger
def stop_mid_sync(init_context):
    log = logging.getLogger("stop_mid_sync")
    log.setLevel(logging.INFO)
    log.addHandler(StopAt())
    return log


suite = EvalSuite(name="crash", source={source!r}, key_field="id", task=task, scorers=["exact_match"])
defs = dg.Definitions.merge(
    build_eval_suite_definitions(suite),
    dg.Definitions(
        resources={{"evals": {resource}}},
        loggers={{"stop_mid_sync": stop_mid_sync}},
        # The step runs in the CLI's own process, so the SIGKILL of that process stops the sync itself.
        executor=dg.in_process_executor,
    ),
)
"""
RESOURCES = {
    "local": f"LocalEvalResource(path={{db!r}}, batch_size={BATCH})",
    "braintrust": (
        'BraintrustResource(api_key=dg.EnvVar("BRAINTRUST_API_KEY"), api_url={url!r}, app_url={url!r}, '
        f'project="crash", insert_batch_size={BATCH}, request_concurrency=1, collect_git=False)'
    ),
    "keywordsai": (
        'KeywordsAIResource(api_key=dg.EnvVar("KEYWORDSAI_API_KEY"), base_url={url!r}, '
        f"batch_size={BATCH}, rate_limit_per_minute=None)"
    ),
}
WRITES = {"braintrust": r"^/v1/dataset/[^/]+/insert$", "keywordsai": r"/logs/bulk/$"}


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


class Platform:
    """A fake platform served from this process, holding the sync's writes after `LANDED_BATCHES`."""

    def __init__(self, platform: str) -> None:
        self.fake: BraintrustFake | KeywordsAIFake = (
            BraintrustFake(api_key=KEY)
            if platform == "braintrust"
            else KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=None)
        )
        self.hold = HoldRequests(self.fake.app, "POST", WRITES[platform], passing=LANDED_BATCHES)
        self.server = ServerThread(self.hold).start()
        self.url = self.server.url

    def release(self) -> None:
        """Let every later write through (for the rerun)."""
        self.hold.passing = 10**9

    def rows(self) -> list[dict[str, Any]]:
        return stored_rows(self.fake, "crash")


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


def local_staged(db: Path) -> int:
    """Rows a local sync has staged so far: the local backend publishes a whole sync as one version."""
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute("SELECT COUNT(*) FROM staged_rows").fetchone()[0]


@pytest.fixture(params=["local", "braintrust", "keywordsai"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Platform | Path]]:
    if request.param == "local":
        yield "local", tmp_path / "evals.sqlite"
        return
    platform = Platform(request.param)
    try:
        yield request.param, platform
    finally:
        platform.server.stop()


def test_sync_killed_mid_way_then_rerun_holds_exactly_the_source_rows(
    backend: tuple[str, Platform | Path], tmp_path: Path
) -> None:
    platform, target = backend
    rows = source_rows(ROWS)
    landed = LANDED_BATCHES * BATCH
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    resource = RESOURCES[platform].format(db=str(target), url=getattr(target, "url", ""))
    defs_file = tmp_path / "crash_definitions.py"
    defs_file.write_text(DEFINITIONS.format(source=str(source), resource=resource))
    home = tmp_path / "dagster_home"
    home.mkdir()
    marker = tmp_path / "stopped"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "BRAINTRUST_API_KEY": KEY,
        "KEYWORDSAI_API_KEY": KEY,
        "STOP_MARKER": str(marker),
        # The local backend reports progress after each staged batch's transaction has committed; with
        # no interval between progress lines, each batch's count is logged.
        "STOP_AT": f" {landed}/{ROWS} rows" if platform == "local" else "",
        "DAGSTER_EVALS_PROGRESS_INTERVAL_S": "0",
    }
    command = [DAGSTER, "asset", "materialize", "--select", "evals/crash/dataset", "-f", str(defs_file)]

    def stored() -> list[dict[str, Any]]:
        return target.rows() if isinstance(target, Platform) else local_rows(target)

    def stopped() -> bool:
        return target.hold.held.is_set() if isinstance(target, Platform) else marker.exists()

    # Loggers of the definitions take part in a run only when its config names them.
    stop_config = ["--config-json", json.dumps({"loggers": {"stop_mid_sync": {}}})]
    log = tmp_path / "sync.log"
    # Its own process group: a crash takes down the CLI and anything it started.
    with log.open("w") as output:
        sync = subprocess.Popen(
            command + (stop_config if platform == "local" else []),
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    try:
        reached = _wait_until(stopped, sync)
        assert reached, (
            f"the sync never reached the stop point (exit code {sync.poll()}):\n" + (log.read_text()[-3000:])
        )
        # Provably mid-way: the platform holds exactly the rows written before the stop, and the process
        # is still alive, stuck before its next write. A local sync has staged them, unpublished.
        written = local_staged(target) if isinstance(target, Path) else len(stored())
        assert sync.poll() is None, "the sync ended although it was stopped mid-way"
        assert written == landed < ROWS, f"{written} rows written at the stop, expected {landed}"
    finally:
        if sync.poll() is None:
            os.killpg(sync.pid, signal.SIGKILL)
        sync.wait()
    assert sync.returncode == -signal.SIGKILL, log.read_text()[-3000:]

    # A killed local sync published nothing: the dataset is as it was (empty). The others keep what landed.
    kept = 0 if platform == "local" else landed
    left = stored()
    assert len({r["id"] for r in left}) == len(left) == kept, "the killed run left duplicate or extra rows"
    assert_exactly(left, rows[:kept])

    if isinstance(target, Platform):
        target.release()
    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    assert_exactly(stored(), rows)
    if isinstance(target, Path):  # the rerun removed the killed sync's staged rows: nothing is left behind
        assert local_staged(target) == 0
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        event = instance.get_latest_materialization_event(DATASET_KEY)
        assert event is not None and event.asset_materialization is not None
        metadata = {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}
    assert metadata["rows_total"] == ROWS
    assert (metadata["rows_added"], metadata["rows_unchanged"]) == (ROWS - kept, kept)
    assert metadata["rows_sent"] == ROWS - kept


def _wait_until(stopped: Callable[[], bool], sync: subprocess.Popen[bytes]) -> bool:
    """Wait until the sync reaches its stop point (True) or its process ends (False)."""
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if stopped():
            return True
        if sync.poll() is not None:
            return stopped()
        time.sleep(0.05)
    return False
