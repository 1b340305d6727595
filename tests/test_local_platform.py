"""The embedded backend's datasets and prompts, each test on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagster_evals import DatasetRow, LocalEvalResource, LocalPlatform
from dagster_evals.engine.sync import sync_rows


def row(i: int, text: str = "x") -> DatasetRow:
    return DatasetRow.build(input=f"{text}{i}", expected=str(i), id=f"r{i}")


def test_every_write_is_a_version_and_old_versions_stay_readable(database_url: str) -> None:
    platform = LocalPlatform(database_url, batch_size=100)
    ds = platform.ensure_dataset("versions")
    assert platform.current_version(ds) == "0"
    platform.upsert_rows(ds, [row(i) for i in range(3)])
    v1 = platform.snapshot(ds)
    platform.upsert_rows(ds, [row(1, "changed")], replace={"r1"})
    platform.delete_rows(ds, ["r2"])
    v3 = platform.snapshot(ds)

    assert (v1.version, v1.row_count, v3.version, v3.row_count) == ("1", 3, "3", 2)
    assert [r.input for r in platform.iter_rows(ds, version=v1.version)] == ["x0", "x1", "x2"]
    assert [r.input for r in platform.iter_rows(ds, version=v3.version)] == ["x0", "changed1"]
    assert v1.digest != v3.digest
    assert platform.snapshot(ds).digest == v3.digest  # digest depends only on content

    platform.delete_all_rows(ds)
    assert platform.count_rows(ds) == 0
    assert platform.count_rows(ds, version=v3.version) == 2
    assert [v["version"] for v in platform.list_dataset_versions(ds)] == [1, 2, 3, 4]
    platform.close()


def test_one_upsert_call_is_one_version_whatever_the_batch_size(database_url: str) -> None:
    platform = LocalPlatform(database_url, batch_size=7)
    ds = platform.ensure_dataset("batched")
    transactions = platform.upsert_rows(ds, [row(i) for i in range(50)])
    assert transactions == 8 + 1  # 8 staged batches, 1 publish
    assert platform.list_dataset_versions(ds)[0]["rows_written"] == 50
    assert [v["version"] for v in platform.list_dataset_versions(ds)] == [1]
    platform.close()


def test_unchanged_upsert_creates_no_version(database_url: str) -> None:
    platform = LocalPlatform(database_url)
    ds = platform.ensure_dataset("same")
    rows = [row(i) for i in range(5)]
    first = sync_rows(platform, ds, rows)
    second = sync_rows(platform, ds, rows)
    assert (first.rows_sent, second.rows_sent) == (5, 0)
    assert second.version == first.version
    platform.upsert_rows(ds, rows)  # sent again anyway: nothing changes, no version
    assert platform.current_version(ds) == first.version == "1"
    platform.close()


def test_a_sync_adding_changing_and_removing_rows_is_one_version(database_url: str) -> None:
    platform = LocalPlatform(database_url, batch_size=3)
    ds = platform.ensure_dataset("one-version")
    sync_rows(platform, ds, [row(i) for i in range(10)])
    result = sync_rows(platform, ds, [row(i, "new" if i % 2 else "x") for i in range(4, 14)])
    assert (result.added, result.updated, result.removed, result.version) == (4, 3, 4, "2")
    versions = platform.list_dataset_versions(ds)
    assert [(v["version"], v["rows_written"], v["rows_removed"]) for v in versions] == [(1, 10, 0), (2, 7, 4)]
    assert {r.id: r.input for r in platform.iter_rows(ds, version="1")} == {
        f"r{i}": f"x{i}" for i in range(10)
    }
    platform.close()


def test_datasets_are_separate_per_project_and_name(database_url: str) -> None:
    platform = LocalPlatform(database_url)
    a = platform.ensure_dataset("d", project="p1")
    assert platform.ensure_dataset("d", project="p1").id == a.id
    assert platform.ensure_dataset("d", project="p2").id != a.id
    platform.close()


def test_prompt_versions_are_recorded_once_per_content_change(database_url: str) -> None:
    platform = LocalEvalResource(url=database_url, project="bots").get_platform()
    v1 = platform.push_prompt_version("support", {"system": "Be brief."})
    again = platform.push_prompt_version("support", {"system": "Be brief."})
    v2 = platform.push_prompt_version("support", {"system": "Be brief and kind."})
    platform.push_prompt_version("triage", {"system": "Route it."})

    assert again.version == v1.version == "1" and v2.version == "2"
    versions = platform.list_prompt_versions(slug="support")
    assert [(p.slug, p.version, p.content["system"]) for p in versions] == [
        ("support", "1", "Be brief."),
        ("support", "2", "Be brief and kind."),
    ]
    assert {p.slug for p in platform.list_prompt_versions()} == {"support", "triage"}
    assert platform.list_prompt_versions(project="other") == []
    platform.close()


def _write_in_child(url: str, ids: list[int], done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    platform = LocalPlatform(url)
    ds = platform.ensure_dataset("shared")
    platform.upsert_rows(ds, [row(i) for i in ids])
    done.put(platform.count_rows(ds))
    platform.close()


def test_platforms_in_two_processes_share_one_file(database_url: str) -> None:
    spawn = multiprocessing.get_context("fork")
    counts = spawn.Queue()
    child = spawn.Process(target=_write_in_child, args=(database_url, [1, 2], counts))
    child.start()
    child.join(120)
    assert child.exitcode == 0 and counts.get(timeout=5) == 2

    here = LocalPlatform(database_url)
    ds = here.ensure_dataset("shared")
    assert sorted(r.id for r in here.iter_rows(ds)) == ["r1", "r2"]  # written by the other process
    here.upsert_rows(ds, [row(3)])
    child = spawn.Process(target=_write_in_child, args=(database_url, [4], counts))
    child.start()
    child.join(120)
    assert child.exitcode == 0 and counts.get(timeout=5) == 4  # the child sees this process's row
    assert here.count_rows(ds) == 4
    here.close()


# The WAL switch used to wait out its whole 60-second deadline on an in-memory database (SQLite answers
# "memory" there, never "wal"); the timeout fails a return of that wait instead of letting it pass slowly.
@pytest.mark.timeout(30)
def test_an_in_memory_database_opens_at_once_and_holds_a_dataset() -> None:
    platform = LocalPlatform("sqlite://")
    ds = platform.ensure_dataset("in-memory")
    sync_rows(platform, ds, [row(i) for i in range(3)])
    assert platform.snapshot(ds).row_count == 3


def test_an_eval_reads_each_row_as_it_was_synced_and_the_task_sees_the_same_values(database_url: str) -> None:
    from dagster_evals import EvalRequest

    synced = [
        DatasetRow.build(input="plain", expected="PLAIN", id="a"),
        DatasetRow.build(input='quote " and \\ backslash, é', expected=None, id="b"),
        DatasetRow.build(input={"q": [1, 2.5, None]}, expected=["x"], metadata={"k": {"n": 1}}, id="c"),
        DatasetRow.build(input=7, expected=True, metadata={"topic": "math"}, tags=["t"], id="d"),
    ]
    platform = LocalPlatform(database_url)
    ds = platform.ensure_dataset("read-as-synced")
    platform.upsert_rows(ds, synced)
    snapshot = platform.snapshot(ds)
    seen: dict[str, tuple[object, object, object]] = {}

    def task(input: object, expected: object, metadata: dict[str, object], row_id: str) -> str:
        seen[row_id] = (input, expected, metadata)
        return "ok"

    run_rows = list(platform.iter_run_rows(ds, version=snapshot.version))
    report = platform.run_eval(
        EvalRequest(name="read", snapshot=snapshot, task=task, scorers=["exact_match"])
    )

    expected = {r.id: (r.input, r.expected, r.metadata) for r in synced}
    assert {r.id: (r.input, r.expected, r.metadata) for r in run_rows} == expected
    assert {r.id: (r.input, r.expected, r.metadata) for r in platform.iter_rows(ds)} == expected
    assert seen == expected
    stored = {r.row_id: (r.input, r.expected, r.metadata) for r in platform.iter_report_rows(report.id)}
    assert stored == expected
    platform.close()


def test_a_subclass_that_overrides_iter_rows_still_sees_every_row_its_evals_read(tmp_path: Path) -> None:
    from dagster_evals import EvalRequest

    class Watched(LocalPlatform):
        read: list[str] = []

        def iter_rows(self, dataset: Any, *, version: str | None = None) -> Iterator[DatasetRow]:
            for r in super().iter_rows(dataset, version=version):
                self.read.append(r.id)
                yield r

    platform = Watched(tmp_path / "watched.sqlite")
    ds = platform.ensure_dataset("watched")
    platform.upsert_rows(ds, [row(i) for i in range(5)])
    report = platform.run_eval(
        EvalRequest(name="w", snapshot=platform.snapshot(ds), task=str.upper, scorers=["exact_match"])
    )
    assert report.rows_scored == 5
    assert sorted(platform.read) == [f"r{i}" for i in range(5)]
    platform.close()
