from __future__ import annotations

from pathlib import Path

from dagster_evals import DatasetRow, LocalEvalResource, LocalPlatform
from dagster_evals.sync import sync_rows


def row(i: int, text: str = "x") -> DatasetRow:
    return DatasetRow.build(input=f"{text}{i}", expected=str(i), id=f"r{i}")


def test_every_write_is_a_version_and_old_versions_stay_readable(db_path: Path) -> None:
    platform = LocalPlatform(db_path, batch_size=100)
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


def test_unchanged_upsert_creates_no_version(db_path: Path) -> None:
    platform = LocalPlatform(db_path)
    ds = platform.ensure_dataset("same")
    rows = [row(i) for i in range(5)]
    first = sync_rows(platform, ds, rows)
    second = sync_rows(platform, ds, rows)
    assert (first.rows_sent, second.rows_sent) == (5, 0)
    assert second.version == first.version


def test_datasets_are_separate_per_project_and_name(db_path: Path) -> None:
    platform = LocalPlatform(db_path)
    a = platform.ensure_dataset("d", project="p1")
    assert platform.ensure_dataset("d", project="p1").id == a.id
    assert platform.ensure_dataset("d", project="p2").id != a.id


def test_prompt_versions_are_recorded_once_per_content_change(db_path: Path) -> None:
    platform = LocalEvalResource(path=str(db_path), project="bots").get_platform()
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


def test_platforms_in_two_processes_share_one_file(db_path: Path) -> None:
    one = LocalPlatform(db_path)
    two = LocalPlatform(db_path)
    ds = one.ensure_dataset("shared")
    one.upsert_rows(ds, [row(1)])
    assert two.count_rows(two.ensure_dataset("shared")) == 1
