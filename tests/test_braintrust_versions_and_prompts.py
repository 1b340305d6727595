"""Braintrust dataset versions and prompt lookups, checked against the fake's own state over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dagster_evals.backends.braintrust import BraintrustPlatform, api
from dagster_evals.engine.models import DatasetRef, DatasetRow, content_hash
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.server import ServerThread
from tests.conftest import braintrust_platform

KEY = "test-key"


@pytest.fixture
def fake() -> BraintrustFake:
    return BraintrustFake(api_key=KEY)


@pytest.fixture
def bt(fake: BraintrustFake) -> Iterator[BraintrustPlatform]:
    with ServerThread(fake.app) as server:
        platform = braintrust_platform(server.url, KEY)
        yield platform
        platform.close()


def rows(n: int) -> list[DatasetRow]:
    return [
        DatasetRow(
            id=f"r{i}", input={"i": i}, expected=str(i), content_hash=content_hash({"i": i}, str(i), {}, [])
        )
        for i in range(n)
    ]


def held(fake: BraintrustFake, dataset: DatasetRef, version: str | None = None) -> dict[str, dict[str, Any]]:
    store = fake.objects["dataset"][dataset.id].store
    assert store is not None
    return {r["id"]: r for r in store.rows(int(version) if version else None)}


def test_current_version_is_the_newest_write_even_when_it_is_not_first_in_the_page(fake, bt) -> None:
    dataset = bt.ensure_dataset("ds")
    bt.upsert_rows(dataset, rows(5))
    bt.upsert_rows(dataset, rows(10)[5:])
    updated = DatasetRow(id="r0", input={"i": 0}, expected="changed", content_hash="x")
    bt.upsert_rows(dataset, [updated])
    version = bt.current_version(dataset)
    assert version == max(r["_xact_id"] for r in held(fake, dataset).values()), "max _xact_id, as the SDK"
    assert {r.id: r.expected for r in bt.iter_rows(dataset, version=version)}["r0"] == "changed"


def test_deletes_move_the_version_and_never_recreate_a_row_deleted_concurrently(fake, bt) -> None:
    dataset = bt.ensure_dataset("ds")
    bt.upsert_rows(dataset, rows(3))
    bt.upsert_rows(dataset, rows(4)[3:])  # r3 is now first in fetch order
    before = bt.current_version(dataset)
    state = {"tombstoned": False, "deleted_by_other": set()}

    def another_client_deletes_what_we_just_read(route: str, args: list[str], body: Any) -> None:
        """Once our tombstone has landed, any row we read from the dataset is deleted by another client
        right after the read: the window in which a no-op "touch" merge would re-create it."""
        if args[:1] != [dataset.id]:
            return
        if route == "POST /v1/dataset/{id}/insert" and any(e.get("_object_delete") for e in body["events"]):
            state["tombstoned"] = True
        elif route == "POST /v1/dataset/{id}/fetch" and state["tombstoned"] and not state["deleted_by_other"]:
            store = fake.objects["dataset"][dataset.id].store
            first = store.view(None)[0][1]
            fake.write_as_another_client("dataset", dataset.id, [{"id": first, "_object_delete": True}])
            state["deleted_by_other"].add(first)

    fake.after_request = another_client_deletes_what_we_just_read
    bt.delete_rows(dataset, ["r1"])
    fake.after_request = None

    expected = {"r0", "r2", "r3"} - state["deleted_by_other"]
    assert set(held(fake, dataset)) == expected, "a row deleted by someone else is never re-created"
    after = bt.current_version(dataset)
    assert int(after) > int(before)
    assert {r.id for r in bt.iter_rows(dataset, version=after)} == expected
    assert {r.id for r in bt.iter_rows(dataset, version=before)} == {"r0", "r1", "r2", "r3"}
    bt.delete_all_rows(dataset)
    emptied = bt.current_version(dataset)
    assert held(fake, dataset) == {} and list(bt.iter_rows(dataset, version=emptied)) == []
    assert set(held(fake, dataset, after)) == expected, "the earlier version still reads as it was"


def test_prompt_version_of_an_unknown_slug_or_before_the_prompt_existed_is_none(bt) -> None:
    project = bt.project()
    assert bt.get_prompt_version("nope", "1000192656880881100") is None
    other = bt.client.create_prompt(api.CreatePrompt(project_id=project.id, name="Other", slug="other"))
    prompt = bt.client.create_prompt(api.CreatePrompt(project_id=project.id, name="Greeter", slug="greeter"))
    assert bt.get_prompt_version("greeter", other.xact_id) is None, "no version at or before that one"
    found = bt.get_prompt_version("greeter", prompt.xact_id)
    assert found is not None and found.slug == "greeter" and found.version == prompt.xact_id
