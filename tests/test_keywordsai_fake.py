"""The Keywords AI fake on its own, over real HTTP with plain httpx (no package client code): the seed
workflow's endpoints, validation against the vendored spec extract, background removal, the request-log
time window and filter syntax, both eval-run shapes, scores as an object, 429 with Retry-After, and the
fault that applies a write after the client gave up."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dagster_evals.testing import Fault, ServerThread
from dagster_evals.testing.keywordsai import KeywordsAIFake
from dagster_evals.testing.keywordsai.spec import response_fields, spec
from tests.conftest import KEYWORDSAI_KEY as KEY
from tests.conftest import keywordsai_fake

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> KeywordsAIFake:
    return keywordsai_fake(now=lambda: NOW)


@pytest.fixture
def http(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def new_dataset(http: httpx.Client, name: str = "d") -> str:
    response = http.post("/api/datasets/", json={"name": name, "is_empty": True})
    assert response.status_code == 201
    return response.json()["id"]


def fields_within(payload: dict[str, Any], *type_names: str) -> None:
    known = {field for name in type_names for field in response_fields(name)}
    extra = set(payload) - known
    assert not extra, f"{' / '.join(type_names)} has no field(s) {sorted(extra)}"


def test_seed_workflow_every_step_and_field(http: httpx.Client, fake: KeywordsAIFake) -> None:
    created = http.post(
        "/api/datasets/", json={"name": "Demo", "description": "tutorial", "is_empty": True}
    ).json()
    fields_within(created, "create_dataset_response", "list_datasets_response_results_item")
    dataset_id = created["id"]
    log = {
        "input": {"question": "What is 2+2?", "context": {"source": "docs_tutorial"}},
        "output": {"answer": "4", "explanation": "2 + 2 = 4."},
        "metadata": {"custom_identifier": "dataset-tutorial-log", "model": "gpt-4o-mini"},
        "metrics": {"cost": 0.0, "latency": 0.0},
    }
    added = http.post(f"/api/datasets/{dataset_id}/logs/", json=log)
    assert added.status_code == 201
    fields_within(added.json(), "create_dataset_log_response")
    listed = http.get(f"/api/datasets/{dataset_id}/logs/list/?page=1&page_size=10").json()
    assert listed["count"] == 1 and listed["results"][0]["input"] == log["input"]
    # expected_output is not among the list fields of the generated client; it is returned (unconfirmed).
    fields_within(
        listed["results"][0],
        "list_dataset_logs_response_count_results_item",
        "bulk_create_dataset_logs_request_logs_item",
    )
    started = http.post(
        f"/api/datasets/{dataset_id}/eval-reports/create", json={"evaluator_slugs": ["char_count_eval"]}
    )
    assert started.status_code == 200
    runs = http.get(f"/api/datasets/{dataset_id}/eval-reports/list/").json()
    assert runs["count"] == 1
    fields_within(runs["results"][0], "list_dataset_eval_runs_response_results_item")
    renamed = http.patch(f"/api/datasets/{dataset_id}/", json={"name": "Renamed", "description": "x"})
    assert renamed.json()["name"] == "Renamed"
    removed = http.request(
        "DELETE",
        f"/api/datasets/{dataset_id}/logs/delete/",
        json={"filters": {"metadata.custom_identifier": "dataset-tutorial-log"}},
    )
    assert removed.json() == {"message": "Logs are being removed from dataset in the background"}
    assert http.delete(f"/api/datasets/{dataset_id}/").status_code == 204
    assert http.get(f"/api/datasets/{dataset_id}/").status_code == 404


def test_requests_are_checked_against_the_vendored_spec(http: httpx.Client) -> None:
    assert spec()["source"]["repo"] == "respanai/respan-python-api"
    dataset_id = new_dataset(http)
    assert http.get("/api/datasets/").status_code == 405  # listing is /api/datasets/list/
    assert "unknown field" in http.post("/api/datasets/", json={"nam": "x"}).json()["detail"]
    bad_type = http.post("/api/datasets/", json={"name": "x", "is_empty": "yes"})
    assert bad_type.status_code == 400 and "is_empty: expected boolean" in bad_type.json()["detail"]
    order = http.post(f"/api/datasets/{dataset_id}/logs/list/?order_by=unique_id", json={})
    assert order.status_code == 400 and "order_by" in order.json()["detail"]
    assert http.post(f"/api/datasets/{dataset_id}/logs/list/?sort_by=-timestamp", json={}).status_code == 200
    bulk = http.post(
        f"/api/datasets/{dataset_id}/logs/bulk/", json={"logs": [{"input": 1}, {"inptu": 2}]}
    ).json()
    fields_within(bulk, "bulk_create_dataset_logs_response")
    assert (bulk["success_count"], bulk["error_count"]) == (1, 1)
    assert bulk["errors"][0]["index"] == 1 and "inptu" in bulk["errors"][0]["error"]
    import_missing = http.post(f"/api/datasets/{dataset_id}/logs/import/", json={"filters": {}})
    assert import_missing.status_code == 400
    assert "This field is required" in import_missing.json()["detail"]
    both = http.post(
        f"/api/datasets/{dataset_id}/eval-reports/create/",
        json={"evaluator_ids": ["x"], "evaluator_slugs": ["y"]},
    )
    assert both.status_code == 400


def test_log_removal_lands_in_the_background(http: httpx.Client, fake: KeywordsAIFake) -> None:
    fake.delete_lag = 3
    dataset_id = new_dataset(http)
    logs = [{"input": i, "metadata": {"k": "a" if i % 2 else "b"}} for i in range(6)]
    http.post(f"/api/datasets/{dataset_id}/logs/bulk/", json={"logs": logs})
    body = {"filters": {"metadata.k": {"operator": "eq", "value": "a"}}}
    http.request("DELETE", f"/api/datasets/{dataset_id}/logs/import/", json=body)  # the spec's path
    counts = [http.post(f"/api/datasets/{dataset_id}/logs/list/", json={}).json()["count"] for _ in range(3)]
    assert counts == [6, 6, 3]
    one = http.post(f"/api/datasets/{dataset_id}/logs/list/", json={}).json()["results"][0]["unique_id"]
    assert http.delete(f"/api/datasets/{dataset_id}/logs/{one}/").status_code == 204
    assert len(fake.dataset_logs(dataset_id)) == 2


def test_request_logs_default_to_the_last_hour_and_filter_metadata_with_the_documented_syntax(
    http: httpx.Client, fake: KeywordsAIFake
) -> None:
    stamp = lambda delta: (NOW - delta).isoformat()  # noqa: E731
    fake.add_request_logs(
        {
            "input": i,
            "metadata": {"env": "prod" if i % 2 else "dev"},
            "timestamp": stamp(timedelta(minutes=i * 10 + 5)),
        }
        for i in range(12)
    )
    assert http.post("/api/request-logs/list/", json={}).json()["count"] == 6  # 5..55 minutes ago
    window = {"start_time": stamp(timedelta(days=1)), "end_time": NOW.isoformat()}
    everything = http.post("/api/request-logs/list/", params=window, json={}).json()
    assert everything["count"] == 12
    prod = {"filters": {"metadata__env": {"operator": "", "value": ["prod"]}}}
    assert http.post("/api/request-logs/list/", params=window, json=prod).json()["count"] == 6
    dotted = {"filters": {"metadata.env": {"operator": "", "value": ["prod"]}}}
    assert http.post("/api/request-logs/list/", params=window, json=dotted).json()["count"] == 0
    assert http.post("/api/request-logs/list/", params={**window, "env": "dev"}, json={}).json()["count"] == 6


@pytest.mark.parametrize("shape", ["spec", "docs"])
def test_eval_runs_in_both_published_shapes_with_scores_as_an_object(
    http: httpx.Client, fake: KeywordsAIFake, shape: str
) -> None:
    fake.eval_report_shape = shape
    fake.eval_statuses = ["queued", "evaluating", "completed"]
    dataset_id = new_dataset(http)
    http.post(
        f"/api/datasets/{dataset_id}/logs/bulk/",
        json={
            "logs": [
                {"input": "a", "output": "four", "expected_output": "four"},
                {"input": "b", "output": "x"},
            ]
        },
    )
    created = http.post(
        f"/api/datasets/{dataset_id}/eval-reports/create", json={"evaluator_slugs": ["exact_match_eval"]}
    ).json()
    if shape == "spec":
        fields_within(created, "run_eval_on_dataset_response")
        assert created["created_tasks"][0]["status"] == "queued"
    else:
        assert set(created) == {"id", "dataset_id", "status", "evaluator_slugs", "created_at"}
    statuses = [
        http.get(f"/api/datasets/{dataset_id}/eval-reports/list/").json()["results"][0]["status"]
        for _ in range(3)
    ]
    assert statuses == ["evaluating", "completed", "completed"]
    logs = http.post(f"/api/datasets/{dataset_id}/logs/list/", json={}).json()["results"]
    scored = {log["input"]: log["scores"] for log in logs}
    evaluator_id = fake.evaluators["exact_match_eval"].id
    assert scored["a"][evaluator_id]["evaluator_slug"] == "exact_match_eval"
    assert scored["a"][evaluator_id]["score_value"] == 1.0
    assert scored["b"] == {}  # no expected output: not scored


def test_structured_expected_output_comes_back_as_a_python_repr(http: httpx.Client) -> None:
    dataset_id = new_dataset(http)
    http.post(
        f"/api/datasets/{dataset_id}/logs/bulk/",
        json={"logs": [{"input": 1, "expected_output": {"a": [1, True]}}]},
    )
    [log] = http.post(f"/api/datasets/{dataset_id}/logs/list/", json={}).json()["results"]
    assert log["expected_output"] == "{'a': [1, True]}"


def test_prompts_carry_id_and_current_version(http: httpx.Client, fake: KeywordsAIFake) -> None:
    prompt_id = fake.add_prompt("Bot", [{"messages": []}, {"messages": []}])
    [item] = http.get("/api/prompts/").json()["results"]
    fields_within(item, "list_prompts_response_results_item")
    assert item["id"] == prompt_id and item["current_version"]["version"] == 2
    assert http.post("/api/prompts/list/", json={}).json()["count"] == 1
    versions = http.get(f"/api/prompts/{prompt_id}/versions/").json()["results"]
    assert [v["version"] for v in versions] == [2, 1]
    fields_within(versions[0], "list_prompt_versions_response_results_item")


def test_rate_limit_answers_429_with_retry_after(server: ServerThread) -> None:
    ticks = itertools.count()
    limited = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=3, clock=lambda: float(next(ticks)))
    with (
        limited.serve() as running,
        httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {KEY}"}) as http,
    ):
        assert [http.get("/api/evaluators/").status_code for _ in range(3)] == [200, 200, 200]
        throttled = http.get("/api/evaluators/")
        assert throttled.status_code == 429
        assert float(throttled.headers["Retry-After"]) == pytest.approx(57.0)
        assert throttled.json()["retry_after"] == pytest.approx(57.0)
        assert http.post("/api/request-logs/list/", json={}).status_code == 200  # request logs are exempt
    assert limited.throttled == 1


def test_auth_and_unknown_paths(server: ServerThread) -> None:
    assert httpx.get(server.url + "/api/evaluators/").status_code == 401
    wrong = httpx.get(server.url + "/api/evaluators/", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "invalid" in wrong.json()["detail"]
    ok = {"Authorization": f"Bearer {KEY}"}
    assert httpx.post(server.url + "/api/datasets", json={"name": "x"}, headers=ok).status_code == 404


def test_late_write_lands_after_the_client_gave_up(http: httpx.Client, fake: KeywordsAIFake) -> None:
    dataset_id = new_dataset(http)
    fake.faults.schedule(Fault("late", late_by=2))
    with pytest.raises(httpx.HTTPError):
        http.post(f"/api/datasets/{dataset_id}/logs/bulk/", json={"logs": [{"input": 1}]}).json()
    assert fake.dataset_logs(dataset_id) == [] and fake.faults.late_pending == 1
    http.get(f"/api/datasets/{dataset_id}/")
    assert fake.dataset_logs(dataset_id) == []
    http.get(f"/api/datasets/{dataset_id}/")
    assert [log["input"] for log in fake.dataset_logs(dataset_id)] == [1]
    assert fake.faults.late_applied == 1
