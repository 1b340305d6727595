"""Dataset syncs in bounded memory: sources read, diffed and sent in chunks, digests sorted on disk.

Contents and versions are checked against the database's or the fake's own state (SQL on the SQLite file,
the fake's store), never through the client under test; memory is measured with tracemalloc, not timed.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dagster_evals import DatasetRow, InputError, LocalPlatform
from dagster_evals.backends.base import rows_digest
from dagster_evals.engine.row_index import pairs_digest
from dagster_evals.engine.sources import IterableSource, JsonlSource, load_rows
from dagster_evals.engine.sync import scan_source, sync_rows
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.server import ServerThread
from tests.fault_helpers import stored_rows

FORK = multiprocessing.get_context("fork")


def write_source(path: Path, n: int, *, text: str = "v1", start: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(start, start + n):
            handle.write(json.dumps({"id": f"r{i:06d}", "input": {"q": i}, "expected": f"{text}-{i}"}) + "\n")
    return path


def old_digest(pairs: list[tuple[str, str]]) -> str:
    """The digest as it has always been recorded: sha256 over the sorted `id:hash` lines, all in memory."""
    digest = hashlib.sha256()
    for row_id, row_hash in sorted(pairs):
        digest.update(f"{row_id}:{row_hash}\n".encode())
    return digest.hexdigest()


def db_state(url: str, dataset_id: str) -> dict[str, Any]:
    """The local backend's tables as the database holds them (plain SQL, not the client under test): the
    dataset's row versions, its version log, its published version, and every staged row."""
    engine = sa.create_engine(url)
    params = {"d": dataset_id}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT row_id, version_added, version_removed, content_hash, input, expected, metadata, tags "
                "FROM dataset_rows WHERE dataset_id = :d ORDER BY row_id, version_added"
            ),
            params,
        ).all()
        versions = conn.execute(
            sa.text(
                "SELECT version, rows_written, rows_removed FROM dataset_versions WHERE dataset_id = :d "
                "ORDER BY version"
            ),
            params,
        ).all()
        current = conn.execute(sa.text("SELECT version FROM datasets WHERE id = :d"), params).scalar_one()
        staged = conn.execute(sa.text("SELECT count(*) FROM staged_rows")).scalar_one()
    engine.dispose()
    return {
        "rows": [tuple(r) for r in rows],
        "versions": [tuple(v) for v in versions],
        "current": current,
        "staged": staged,
    }


# -- the digest ---------------------------------------------------------------------------------------
def test_digest_sorted_on_disk_equals_the_recorded_digest_whatever_the_order() -> None:
    ids = [f"r{i}" for i in range(3000)] + ["é", "z", "\U0001f600", "A", "a b", "a\tb", "ß", "𝔘"]
    pairs = [(row_id, hashlib.sha256(row_id.encode()).hexdigest()) for row_id in ids]
    random.Random(3).shuffle(pairs)
    expected = old_digest(pairs)
    assert pairs_digest(pairs) == (len(pairs), expected)  # sorted in memory
    assert pairs_digest(pairs, in_memory=100) == (len(pairs), expected)  # 31 spills, sorted by SQLite
    assert pairs_digest(reversed(pairs), in_memory=7) == (len(pairs), expected)
    assert pairs_digest([], in_memory=1) == (0, hashlib.sha256().hexdigest())


def test_digest_memory_stays_flat_past_the_in_memory_bound() -> None:
    def pairs(n: int) -> Iterator[tuple[str, str]]:
        for i in range(n):
            yield f"row-{(i * 7919) % n:07d}", f"{i:064x}"

    peaks = []
    for n in (5_000, 50_000):
        tracemalloc.start()
        pairs_digest(pairs(n), in_memory=1_000)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.5 + 256 * 1024, peaks  # 10x the pairs, about the same peak


# -- local backend ------------------------------------------------------------------------------------
def test_sync_memory_is_bounded_by_the_chunk_not_the_source(tmp_path: Path) -> None:
    peaks = []
    for n in (600, 6_000):
        source = write_source(tmp_path / f"rows-{n}.jsonl", n)
        platform = LocalPlatform(f"sqlite:///{tmp_path / f'mem-{n}.sqlite'}", batch_size=100)
        dataset = platform.ensure_dataset("mem")
        tracemalloc.start()
        result = sync_rows(platform, dataset, JsonlSource(source, key_field="id"), chunk_rows=100)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert (result.rows_total, result.added) == (n, n)
        assert platform.count_rows(dataset) == n
        platform.close()
    # Holding the rows would take ~10x the small sync's peak (~1 kB a row); streaming takes about the same.
    assert peaks[1] < peaks[0] * 1.5 + 512 * 1024, [f"{p / 2**20:.1f} MiB" for p in peaks]


def test_a_chunked_sync_leaves_exactly_what_a_one_shot_sync_leaves(tmp_path: Path, database_url: str) -> None:
    first = write_source(tmp_path / "v1.jsonl", 250)
    lines = first.read_text().splitlines()
    changed = [json.dumps({"id": f"r{i:06d}", "input": {"q": i}, "expected": "new"}) for i in range(40, 60)]
    second = tmp_path / "v2.jsonl"  # rows 0-39 kept, 40-59 changed, 60-199 kept, 200-249 gone, 50 new
    extra = [json.dumps({"id": f"n{i:03d}", "input": i}) for i in range(50)]
    second.write_text("\n".join(lines[:40] + changed + lines[60:200] + extra) + "\n")

    states, results = [], []
    platform = LocalPlatform(database_url, batch_size=3)
    for chunk_rows, name in ((7, "chunked"), (100_000, "one-shot")):
        dataset = platform.ensure_dataset(name)
        runs = [
            sync_rows(platform, dataset, JsonlSource(path, key_field="id"), chunk_rows=chunk_rows)
            for path in (first, second, second)
        ]
        results.append([r.model_dump(exclude={"dataset", "requests_sent"}) for r in runs])
        snapshot = platform.snapshot(dataset)
        states.append(
            (db_state(database_url, dataset.id), snapshot.version, snapshot.row_count, snapshot.digest)
        )
    platform.close()

    assert states[0] == states[1]
    state, version, count, digest = states[0]
    assert state["versions"] == [(1, 250, 0), (2, 70, 50)] and state["current"] == 2 and state["staged"] == 0
    assert (version, count) == ("2", 250)
    live = [(r[0], r[3]) for r in state["rows"] if r[2] is None]
    expected = [(row.id, row.content_hash) for row in load_rows(JsonlSource(second, key_field="id"))]
    assert sorted(live) == sorted(expected)
    assert digest == old_digest(expected)
    assert results[0] == results[1]
    assert [(r["added"], r["updated"], r["removed"], r["unchanged"]) for r in results[0]] == [
        (250, 0, 0, 0),
        (50, 20, 50, 180),
        (0, 0, 0, 250),
    ]


def test_duplicates_across_chunks_fail_like_load_rows_before_any_write(tmp_path: Path) -> None:
    source = write_source(tmp_path / "dups.jsonl", 30)
    with source.open("a") as handle:
        handle.write(json.dumps({"id": "r000003", "input": "again"}) + "\n")
        handle.write(json.dumps({"id": "r000003", "input": "and again"}) + "\n")
        handle.write(json.dumps({"id": "r000029", "input": "late"}) + "\n")
    with pytest.raises(InputError) as whole:
        load_rows(JsonlSource(source, key_field="id"))
    db = tmp_path / "evals.sqlite"
    platform = LocalPlatform(f"sqlite:///{db}")
    dataset = platform.ensure_dataset("qa")
    with pytest.raises(InputError) as chunked:
        sync_rows(platform, dataset, JsonlSource(source, key_field="id"), chunk_rows=4)
    assert str(chunked.value) == str(whole.value)
    assert f"'r000003': {source}:4, {source}:31, {source}:32" in str(chunked.value)
    state = db_state(f"sqlite:///{db}", dataset.id)
    assert state["current"] == 0 and state["rows"] == []

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="the source has no rows"):
        scan_source(JsonlSource(empty))
    platform.close()


def test_a_source_that_changes_between_its_two_reads_fails_and_publishes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "evals.sqlite"
    platform = LocalPlatform(f"sqlite:///{db}")
    dataset = platform.ensure_dataset("qa")
    sync_rows(platform, dataset, [DatasetRow.build(input=i, id=f"r{i}") for i in range(10)])
    before = db_state(f"sqlite:///{db}", dataset.id)
    reads = {"n": 0}

    def rows() -> list[dict[str, Any]]:
        reads["n"] += 1
        return [
            {"id": f"r{i}", "input": i * (10 if reads["n"] > 1 and i == 5 else 1) + 100} for i in range(10)
        ]

    with pytest.raises(
        InputError, match=r"the source changed while it was being synced \(at \S+rows row 6\)"
    ):
        sync_rows(platform, dataset, IterableSource(rows, key_field="id"), chunk_rows=3)
    assert db_state(f"sqlite:///{db}", dataset.id) == before  # nothing published, the stage dropped
    platform.close()


def _sync_until_killed(url: str, source: str, staged: Any) -> None:
    platform = LocalPlatform(url, batch_size=50)
    dataset = platform.ensure_dataset("qa")

    def on_progress(message: str) -> None:
        if "/1000 rows" in message and not staged.is_set():
            staged.set()
            signal.pause()  # the parent kills this process here, half-way through the sync

    os.environ["DAGSTER_EVALS_PROGRESS_INTERVAL_S"] = "0"
    sync_rows(platform, dataset, JsonlSource(source, key_field="id"), chunk_rows=100, progress=on_progress)


def test_a_sync_killed_half_way_leaves_the_previous_version_and_the_next_sync_completes(
    tmp_path: Path, database_url: str
) -> None:
    url = database_url
    platform = LocalPlatform(url)
    dataset = platform.ensure_dataset("qa")
    v1 = write_source(tmp_path / "v1.jsonl", 1000)
    v2 = write_source(tmp_path / "v2.jsonl", 1000, text="v2")
    sync_rows(platform, dataset, JsonlSource(v1, key_field="id"))
    before = db_state(url, dataset.id)
    pinned = platform.snapshot(dataset)

    staged = FORK.Event()
    child = FORK.Process(target=_sync_until_killed, args=(url, str(v2), staged))
    child.start()
    assert staged.wait(120), "the sync never staged its first chunk"
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL

    after_kill = db_state(url, dataset.id)
    assert after_kill["staged"] > 0  # the killed sync had staged rows…
    assert {k: after_kill[k] for k in ("rows", "versions", "current")} == {
        k: before[k] for k in ("rows", "versions", "current")
    }  # …and none of them is visible
    again = platform.snapshot(dataset)
    assert (again.version, again.row_count, again.digest) == (pinned.version, 1000, pinned.digest)

    result = sync_rows(platform, dataset, JsonlSource(v2, key_field="id"), chunk_rows=100)
    assert (result.version, result.updated) == ("2", 1000)
    final = db_state(url, dataset.id)
    assert final["versions"] == [(1, 1000, 0), (2, 1000, 0)]
    live = {r[0]: json.loads(r[5]) for r in final["rows"] if r[2] is None}
    assert live == {f"r{i:06d}": f"v2-{i}" for i in range(1000)}
    platform.close()


# -- Braintrust (the fake's own store) -------------------------------------------------------------------
def test_chunked_sync_to_braintrust_leaves_the_same_rows_as_one_shot(tmp_path: Path) -> None:
    from dagster_evals.backends.braintrust.platform import BraintrustPlatform

    source = write_source(tmp_path / "rows.jsonl", 120)
    fake = BraintrustFake(api_key="k")
    with ServerThread(fake.app) as server:
        bt = BraintrustPlatform(
            api_key="k",
            api_url=server.url,
            app_url=server.url,
            project="p",
            collect_git=False,
            insert_batch_size=8,
        )
        held, digests = [], []
        for name, chunk_rows in (("chunked", 11), ("one-shot", 10_000)):
            dataset = bt.ensure_dataset(name)
            sync_rows(bt, dataset, JsonlSource(source, key_field="id"), chunk_rows=chunk_rows)
            again = sync_rows(bt, dataset, JsonlSource(source, key_field="id"), chunk_rows=chunk_rows)
            assert again.rows_sent == 0
            held.append(sorted(stored_rows(fake, name), key=lambda r: r["id"]))
            digests.append(bt.snapshot(dataset).digest)
        bt.close()
    assert held[0] == held[1] and len(held[0]) == 120
    expected = load_rows(JsonlSource(source, key_field="id"))
    assert [(r["id"], r["expected"]) for r in held[0]] == [(r.id, r.expected) for r in expected]
    assert digests[0] == digests[1] == old_digest([(r.id, r.content_hash) for r in expected])
    assert rows_digest(iter(expected)) == (120, digests[0])


def test_one_scanned_source_syncs_several_datasets(tmp_path: Path) -> None:
    source = write_source(tmp_path / "rows.jsonl", 20)
    db = tmp_path / "evals.sqlite"
    platform = LocalPlatform(f"sqlite:///{db}")
    first, second = platform.ensure_dataset("first"), platform.ensure_dataset("second")
    sync_rows(platform, second, [DatasetRow.build(input="old", id="r000000")])
    with scan_source(JsonlSource(source, key_field="id"), check=platform.check_rows) as scanned:
        results = [sync_rows(platform, dataset, scanned) for dataset in (first, second, first)]
    assert [(r.added, r.updated, r.rows_sent) for r in results] == [(20, 0, 20), (19, 1, 20), (0, 0, 0)]
    for dataset in (first, second):
        live = sorted((r[0], r[3]) for r in db_state(f"sqlite:///{db}", dataset.id)["rows"] if r[2] is None)
        assert live == sorted((r.id, r.content_hash) for r in load_rows(JsonlSource(source, key_field="id")))
    platform.close()
