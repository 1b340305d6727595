"""Many processes on one database (SQLite file or PostgreSQL): fresh opens, concurrent syncs, and syncs that
are published as one version, so a snapshot taken during a sync holds exactly the old or the new rows.

Every interleaving is driven by events between real processes, never by sleeps."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest

from dagster_evals import DatasetRow, LocalPlatform
from dagster_evals.engine.sync import sync_rows

SPAWN = multiprocessing.get_context("fork")  # a real process; forked so it starts in milliseconds
WORKERS = 4


def rows(n: int, text: str) -> list[DatasetRow]:
    return [DatasetRow.build(input=f"{text}-{i}", expected=text, id=f"r{i:05d}") for i in range(n)]


def run_all(target: Any, args_per_worker: list[tuple[Any, ...]]) -> None:
    workers = [SPAWN.Process(target=target, args=args) for args in args_per_worker]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [w.exitcode for w in workers] == [0] * len(workers)


def _open_fresh(url: str, worker: int, barrier: Any, results: Any) -> None:
    barrier.wait(60)  # every process opens the fresh database at the same moment
    platform = LocalPlatform(url)
    ds = platform.ensure_dataset("shared")
    platform.upsert_rows(ds, [DatasetRow.build(input=worker, id=f"w{worker}")])
    version = platform.push_prompt_version("bot", {"system": "same for everyone"})
    results.put((worker, ds.id, version.version))
    platform.close()


@pytest.mark.parametrize("round_", range(3))
def test_processes_opening_a_fresh_database_at_once_all_succeed(database_url: str, round_: int) -> None:
    barrier, results = SPAWN.Barrier(WORKERS), SPAWN.Queue()
    run_all(_open_fresh, [(database_url, w, barrier, results) for w in range(WORKERS)])
    seen = [results.get(timeout=5) for _ in range(WORKERS)]
    assert len({dataset_id for _, dataset_id, _ in seen}) == 1  # one dataset, not one per process
    assert {version for _, _, version in seen} == {"1"}  # one prompt version
    platform = LocalPlatform(database_url)
    ds = platform.ensure_dataset("shared")
    assert sorted(r.id for r in platform.iter_rows(ds)) == [f"w{w}" for w in range(WORKERS)]
    assert len(platform.list_dataset_versions(ds)) == WORKERS
    platform.close()


def _sync_same_source(url: str, barrier: Any) -> None:
    platform = LocalPlatform(url, batch_size=50)
    ds = platform.ensure_dataset("same-source")
    barrier.wait(60)
    sync_rows(platform, ds, rows(400, "v1"))
    platform.close()


def test_concurrent_syncs_of_one_source_publish_it_once(database_url: str) -> None:
    LocalPlatform(database_url).close()  # migrated before the race: this test is about the syncs
    barrier = SPAWN.Barrier(WORKERS)
    run_all(_sync_same_source, [(database_url, barrier) for _ in range(WORKERS)])
    platform = LocalPlatform(database_url)
    ds = platform.ensure_dataset("same-source")
    assert [(r.id, r.input) for r in platform.iter_rows(ds)] == [(r.id, r.input) for r in rows(400, "v1")]
    versions = platform.list_dataset_versions(ds)
    assert [(v["version"], v["rows_written"]) for v in versions] == [(1, 400)]
    platform.close()


def _slow_sync(url: str, staged: Any, checked: Any) -> None:
    """Sync v1 → v2 (every row changes) in many batches; after each batch, hand over to the snapshotter."""
    # A progress line for every staged batch (not one every few seconds), so the sync can pause on each.
    os.environ["DAGSTER_EVALS_PROGRESS_INTERVAL_S"] = "0"
    platform = LocalPlatform(url, batch_size=100)
    ds = platform.ensure_dataset("big")
    batches = {"n": 0}

    def pause_after_each_batch(message: str) -> None:
        if message.startswith("sync big: ") and "/2000 rows" in message:
            batches["n"] += 1
            staged.set()
            assert checked.wait(60), "the snapshotter never answered"
            checked.clear()

    sync_rows(platform, ds, rows(2000, "v2"), progress=pause_after_each_batch)
    platform.close()


def test_a_snapshot_during_a_sync_pins_exactly_the_old_or_the_new_rows(database_url: str) -> None:
    platform = LocalPlatform(database_url)
    ds = platform.ensure_dataset("big")
    sync_rows(platform, ds, rows(2000, "v1"))
    old = {r.id: r.input for r in rows(2000, "v1")}
    new = {r.id: r.input for r in rows(2000, "v2")}

    staged, checked = SPAWN.Event(), SPAWN.Event()
    syncer = SPAWN.Process(target=_slow_sync, args=(database_url, staged, checked))
    syncer.start()
    pinned = []
    for _ in range(20):  # 2,000 rows in batches of 100: the syncer stops 20 times mid-sync
        assert staged.wait(120), "the sync never reached its next batch"
        staged.clear()
        snap = platform.snapshot(ds)
        held = {r.id: r.input for r in platform.iter_rows(ds, version=snap.version)}
        pinned.append((snap.version, snap.row_count, held == old))
        checked.set()
    syncer.join(120)
    assert syncer.exitcode == 0
    assert pinned == [("1", 2000, True)] * 20  # mid-sync, only the old version is visible

    after = platform.snapshot(ds)
    assert (after.version, after.row_count) == ("2", 2000)
    assert {r.id: r.input for r in platform.iter_rows(ds, version=after.version)} == new
    assert {r.id: r.input for r in platform.iter_rows(ds, version="1")} == old
    platform.close()


def _publish_when_told(url: str, go: Any) -> None:
    platform = LocalPlatform(url, batch_size=500)
    ds = platform.ensure_dataset("race")
    stage = platform.staged_sync(ds)
    stage.upsert_rows(rows(3000, "v2"), replace={r.id for r in rows(3000, "v2")})
    assert go.wait(60)
    stage.publish()
    platform.close()


def _snapshot_repeatedly(url: str, go: Any, results: Any) -> None:
    platform = LocalPlatform(url)
    ds = platform.ensure_dataset("race")
    go.set()  # the publish starts now; snapshot until it is visible
    seen = []
    while True:
        snap = platform.snapshot(ds)
        inputs = {r.input.split("-")[0] for r in platform.iter_rows(ds, version=snap.version)}
        seen.append((snap.version, snap.row_count, sorted(inputs)))
        if snap.version == "2":
            break
    results.put(seen)
    platform.close()


def test_snapshots_racing_a_publish_never_see_it_half_done(database_url: str) -> None:
    platform = LocalPlatform(database_url)
    ds = platform.ensure_dataset("race")
    sync_rows(platform, ds, rows(3000, "v1"))
    go, results = SPAWN.Event(), SPAWN.Queue()
    publisher = SPAWN.Process(target=_publish_when_told, args=(database_url, go))
    snapshotter = SPAWN.Process(target=_snapshot_repeatedly, args=(database_url, go, results))
    publisher.start()
    snapshotter.start()
    seen = results.get(timeout=180)
    publisher.join(120)
    snapshotter.join(120)
    assert (publisher.exitcode, snapshotter.exitcode) == (0, 0)
    assert all(entry in (("1", 3000, ["v1"]), ("2", 3000, ["v2"])) for entry in seen), seen[:3]
    assert seen[-1] == ("2", 3000, ["v2"])
    platform.close()
