"""The Keywords AI backend speaks the published API: each test pins one shape or behaviour of the real
service (reproduced by the fake) that the client must handle, and checks the outcome in the fake's own
state rather than through the client under test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagster_evals import EvalRequest, InputError, PlatformFunction
from dagster_evals.backends.keywordsai import KeywordsAIPlatform, KeywordsAIResource, metadata_filter
from dagster_evals.backends.keywordsai.rows import log_from_row
from dagster_evals.engine.models import DatasetRow, content_hash
from dagster_evals.engine.sync import sync_rows
from dagster_evals.testing import Fault, ServerThread
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.conftest import KEYWORDSAI_KEY as KEY
from tests.conftest import keywordsai_fake

CHARS = PlatformFunction(platform="keywordsai", name="char_count_eval")
EXACT = PlatformFunction(platform="keywordsai", name="exact_match_eval")


@pytest.fixture
def fake() -> KeywordsAIFake:
    return keywordsai_fake(delete_lag=3)


@pytest.fixture
def platform(server: ServerThread) -> Iterator[KeywordsAIPlatform]:
    p = KeywordsAIResource(
        api_key=KEY,
        base_url=server.url,
        rate_limit_per_minute=None,
        eval_poll_interval_s=0.01,
        settle_delay_s=0.0,
        backoff_base_s=0.01,
    ).get_platform()
    yield p
    p.close()


def row(i: int, expected: Any = None) -> DatasetRow:
    value = {"a": i} if expected is None else expected
    return DatasetRow(
        id=f"r{i}", input={"i": i}, expected=value, content_hash=content_hash({"i": i}, value, {}, [])
    )


def stored(fake: KeywordsAIFake, name: str) -> dict[str, Any]:
    """`{row id: [expected_output, ...]}` from the fake's own state, pending removals applied."""
    fake.settle()
    [dataset_id] = [d["id"] for d in fake.datasets.values() if d["name"] == name]
    out: dict[str, list[Any]] = {}
    for log in fake.dataset_logs(dataset_id):
        out.setdefault(log["metadata"]["dagster_evals_row_id"], []).append(log["expected_output"])
    return out


def test_datasets_are_listed_with_the_list_endpoint(platform, fake) -> None:
    platform.ensure_dataset("a")
    assert platform.find_dataset("a") is not None
    assert fake.requests["POST /api/datasets/list/"] >= 2
    assert not any(
        key.startswith("GET /api/datasets/ ") or key == "GET /api/datasets/" for key in fake.requests
    )


def test_background_removal_is_waited_out_before_the_count_check(platform, fake) -> None:
    dataset = platform.ensure_dataset("bg")
    rows = [row(i) for i in range(10)]
    sync_rows(platform, dataset, rows)
    changed = [row(i, "new") if i < 3 else r for i, r in enumerate(rows[:8])]

    result = sync_rows(platform, dataset, changed)  # 3 changed, 2 removed: removals land 3 requests later

    assert (result.updated, result.removed, result.rows_total) == (3, 2, 8)
    assert not fake.pending_deletes
    held = stored(fake, "bg")
    assert sorted(held) == [f"r{i}" for i in range(8)]
    assert all(len(v) == 1 for v in held.values())
    assert held["r0"] == ["new"] and held["r5"] == ['{"a":5}']


def test_structured_expected_survives_the_round_trip(platform, fake) -> None:
    dataset = platform.ensure_dataset("structured")
    source = [row(1, {"answer": [4, {"unit": None}], "ok": True}), row(2, "plain"), row(3, [1, 2])]
    sync_rows(platform, dataset, source)
    assert stored(fake, "structured")["r2"] == ["plain"]
    back = {r.id: r.expected for r in platform.iter_rows(dataset)}
    assert back == {"r1": {"answer": [4, {"unit": None}], "ok": True}, "r2": "plain", "r3": [1, 2]}
    assert sync_rows(platform, dataset, source).rows_sent == 0


@pytest.mark.parametrize("shape", ["spec", "docs"])
def test_eval_runs_parse_in_both_shapes_with_unknown_statuses_and_object_scores(
    platform, fake, shape
) -> None:
    fake.eval_report_shape = shape
    fake.eval_statuses = ["queued", "scoring", "evaluating", "completed"]
    dataset = platform.ensure_dataset("existing")
    fake.add_request_logs([])  # no-op: logs are written directly below
    [dataset_id] = [d["id"] for d in fake.datasets.values()]
    fake.logs[dataset_id] = {}
    for i, (out, exp) in enumerate([("four", "four"), ("x", "y"), ("abc", None)]):
        fake._store_log(dataset_id, {"input": i, "output": out, "expected_output": exp})
    snapshot = platform.snapshot(dataset)

    report = platform.run_eval(EvalRequest(name="e", snapshot=snapshot, task=None, scorers=[CHARS, EXACT]))

    assert report.status == "completed"
    assert report.scores["char_count_eval"].mean == pytest.approx((4 + 1 + 3) / 3)
    assert report.scores["exact_match_eval"].mean == pytest.approx(0.5)
    assert len(fake.reports[dataset_id]) == 1
    fetched = platform.get_eval_report(report.id)
    assert fetched.status == "completed"
    assert fetched.scores["char_count_eval"].mean == pytest.approx(8 / 3)


def test_sampling_production_logs_passes_a_window_and_metadata_filters(platform, fake) -> None:
    now = datetime.now(UTC)
    fake.add_request_logs(
        {"input": i, "output": "o", "metadata": {"env": "prod" if i % 2 else "dev"},
         "timestamp": (now - timedelta(hours=i)).isoformat()}
        for i in range(1, 9)
    )  # fmt: skip
    window = {"start_time": now - timedelta(days=1), "end_time": now}
    logs = list(platform.iter_request_logs(filters=metadata_filter("env", "prod"), **window))
    assert sorted(log.input for log in logs) == [1, 3, 5, 7]  # 3, 5 and 7 are older than one hour
    dataset = platform.create_dataset_from_logs("prod", filters=metadata_filter("env", ["prod"]), **window)
    assert platform.count_rows(dataset) == 4
    target = platform.ensure_dataset("imported")
    platform.import_request_logs(target, filters=metadata_filter("env", "dev"), **window)
    assert fake.requests["POST /api/datasets/{dataset_id}/logs/import/"] == 1
    assert platform.count_rows(target) == 4


def test_prompt_versions_come_from_id_and_current_version(platform, fake) -> None:
    first = fake.add_prompt("Bot", [{"messages": []}, {"messages": []}], slug="bot")
    fake.add_prompt("Empty", [], slug="empty")
    latest = platform.list_prompt_versions(latest_only=True)
    assert [(v.prompt_id, v.version) for v in latest] == [(first, "2")]
    assert platform.list_prompt_versions(newer_than={first: "2"}) == []
    assert [v.version for v in platform.list_prompt_versions(slug="bot")] == ["1", "2"]


def test_bulk_errors_are_reported_with_the_row_and_the_platform_message(platform, fake) -> None:
    dataset = platform.ensure_dataset("bad")
    good = log_from_row(row(1))
    rejected = good.model_copy(update={"metrics": {"cost": "free"}})  # the server wants numbers

    with pytest.raises(InputError) as raised:
        platform._insert(dataset.id, ["r1", "r2"], [good, rejected], lambda _: None)

    assert "rejected 1 of 2 rows" in str(raised.value)
    assert "row 'r2': logs[1].metrics.cost: expected a number" in str(raised.value)


def test_dataset_creation_is_retried_after_a_transient_fault_and_never_duplicated(platform, fake) -> None:
    fake.faults.schedule(Fault("503"))
    created = platform.ensure_dataset("retried")
    fake.faults.schedule(Fault("late", late_by=2))
    again = platform.ensure_dataset("late")
    assert created.name == "retried" and again.name == "late"
    assert sorted(d["name"] for d in fake.datasets.values()) == ["late", "retried"]
