"""Two syncs of different sources into one dataset at once, in two real processes (SQLite file and
PostgreSQL): publishing is a compare-and-swap, so the sync that was outrun diffs again against the
winner's version instead of publishing its stale diff on top of it. No version ever holds the union."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path
from typing import Any

import pytest

from dagster_evals import DatasetRow, LocalPlatform
from dagster_evals.engine.errors import SyncConflictError
from dagster_evals.engine.sources import JsonlSource
from dagster_evals.engine.sync import sync_rows
from tests.conftest import write_jsonl

FORK = multiprocessing.get_context("fork")  # a real process; forked so it starts in milliseconds
SIZES = {"small": 1_000, "large": 2_000}


def source_file(tmp_path: Path, name: str, size: int) -> Path:
    rows = [{"id": f"{name}-{i:05d}", "input": f"{name} question {i}"} for i in range(size)]
    return write_jsonl(tmp_path / f"{name}.jsonl", rows)


def _sync_after_both_diffed(url: str, path: str, barrier: Any, results: Any) -> None:
    """Sync `path`, pausing once both processes have diffed against the same version."""
    platform = LocalPlatform(url, batch_size=500)
    dataset = platform.ensure_dataset("contested")
    first = {"send": True}

    def progress(message: str) -> None:
        if message.startswith("sending ") and first["send"]:
            first["send"] = False
            barrier.wait(60)  # both diffs are computed against the version current before either sends
        elif "another sync published version" in message:
            results.put(("rebased", path))

    try:
        result = sync_rows(platform, dataset, JsonlSource(path, key_field="id"), progress=progress)
        results.put(("synced", path, result.version, result.rows_total))
    except Exception as exc:  # reported to the test, which fails on it
        results.put(("failed", path, f"{type(exc).__name__}: {exc}"))
    finally:
        platform.close()


def test_two_syncs_of_different_sources_never_publish_the_union(database_url: str, tmp_path: Path) -> None:
    platform = LocalPlatform(database_url)
    dataset = platform.ensure_dataset("contested")
    sync_rows(platform, dataset, [DatasetRow.build(input="seed", id="seed")])  # version 1
    paths = {name: str(source_file(tmp_path, name, size)) for name, size in SIZES.items()}

    barrier, results = FORK.Barrier(2), FORK.Queue()
    workers = [
        FORK.Process(target=_sync_after_both_diffed, args=(database_url, path, barrier, results))
        for path in paths.values()
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [w.exitcode for w in workers] == [0, 0]
    events = [results.get(timeout=5) for _ in range(3)]
    assert not [e for e in events if e[0] == "failed"], events
    rebased = [e[1] for e in events if e[0] == "rebased"]
    synced = {e[1]: (e[2], e[3]) for e in events if e[0] == "synced"}
    assert len(rebased) == 1 and set(synced) == set(paths.values())

    # The winner published version 2; the outrun sync diffed again and published version 3 over it.
    winner = next(p for p in paths.values() if p not in rebased)
    assert synced[winner][0] == "2" and synced[rebased[0]][0] == "3"
    counts = {
        v["version"]: platform.count_rows(dataset, version=str(v["version"]))
        for v in platform.list_dataset_versions(dataset)
    }
    sizes = {1: 1, 2: synced[winner][1], 3: synced[rebased[0]][1]}
    assert counts == sizes  # every version holds exactly one source: never 3,000 rows
    loser_ids = {r.id for r in platform.iter_rows(dataset)}
    prefix = Path(rebased[0]).stem
    assert len(loser_ids) == synced[rebased[0]][1] and all(i.startswith(prefix) for i in loser_ids)
    platform.close()


def test_a_stage_diffed_against_a_replaced_version_publishes_nothing(database_url: str) -> None:
    """The compare-and-swap itself: a stage based on version 1 cannot publish once version 2 exists, and
    the dataset stays exactly at version 2 (what a sync outrun on every attempt leaves)."""
    platform = LocalPlatform(database_url)
    dataset = platform.ensure_dataset("cas")
    sync_rows(platform, dataset, [DatasetRow.build(input="one", id="a")])
    stale = platform.staged_sync(dataset, base_version="1")
    stale.upsert_rows([DatasetRow.build(input="stale", id="b")])
    sync_rows(platform, dataset, [DatasetRow.build(input="two", id="a")])  # version 2 by another sync
    with pytest.raises(SyncConflictError, match=r"another sync published version 2 .* against version 1"):
        stale.publish()
    stale.discard()
    assert platform.current_version(dataset) == "2"
    assert [(r.id, r.input) for r in platform.iter_rows(dataset)] == [("a", "two")]
    platform.close()


# -- platforms that write a sync straight through -----------------------------------------------------------
def test_on_braintrust_two_syncs_at_once_fail_their_count_check_saying_why(tmp_path: Path) -> None:
    """Braintrust has no conditional write, so the race cannot be prevented there; the sync that sees the
    mixed rows fails its count check and says that another sync of the dataset may have run at once."""
    import threading

    from dagster_evals import BraintrustResource
    from dagster_evals.engine.errors import CountMismatchError
    from dagster_evals.testing.braintrust import BraintrustFake

    fake = BraintrustFake(api_key="bt-conflict-key")
    with fake.serve() as server:
        opts = {"api_key": "bt-conflict-key", "api_url": server.url, "project": "p", "backoff_base_s": 0.01}
        seed = BraintrustResource(**opts).get_platform()
        sync_rows(seed, seed.ensure_dataset("contested"), [DatasetRow.build(input="seed", id="seed")])
        barrier = threading.Barrier(2, timeout=60)
        errors: list[str] = []

        def sync(name: str, size: int) -> None:
            platform = BraintrustResource(**opts).get_platform()
            first = {"send": True}

            def progress(message: str) -> None:
                if message.startswith("sending ") and first["send"]:
                    first["send"] = False
                    barrier.wait()

            path = source_file(tmp_path, name, size)
            try:
                dataset = platform.ensure_dataset("contested")
                sync_rows(platform, dataset, JsonlSource(path, key_field="id"), progress=progress)
            except CountMismatchError as exc:
                errors.append(str(exc))
            finally:
                platform.close()

        threads = [threading.Thread(target=sync, args=item) for item in (("small", 30), ("large", 60))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        seed.close()
    assert errors, "at least the sync that finished last sees the other's rows"
    assert all(re.search(r"holds \d+ rows after the sync, but the source has (30|60) ", e) for e in errors)
    assert all("braintrust writes a sync straight through" in e and "pool=" in e for e in errors), errors
