"""The Keywords AI client against the fake server over real HTTP: every endpoint family, the documented
shapes, validation, pagination, eval report statuses, the rate limit and fault handling."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from dagster_evals import AuthError, NotFoundError, PlatformError
from dagster_evals.backends.keywordsai.models import (
    CreateDatasetRequest,
    DatasetLogInput,
    ImportLogsRequest,
    KeywordsAIClient,
    where,
)
from dagster_evals.http import HttpClient, RetryPolicy
from dagster_evals.testing import Fault, ServerThread
from dagster_evals.testing.keywordsai import KeywordsAIFake

KEY = "kw-fake-key"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> KeywordsAIFake:
    return KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=None, eval_polls_to_complete=2)


@pytest.fixture
def server(fake: KeywordsAIFake) -> Iterator[ServerThread]:
    with fake.serve() as running:
        yield running


def make_client(url: str, key: str = KEY, transport: httpx.BaseTransport | None = None) -> KeywordsAIClient:
    http = HttpClient(
        platform="keywordsai",
        base_url=url,
        api_key=key,
        env_var="KEYWORDSAI_API_KEY",
        retry=RetryPolicy(max_retries=3, backoff_base_s=0.01),
        transport=transport,
    )
    return KeywordsAIClient(http)


@pytest.fixture
def client(server: ServerThread) -> Iterator[KeywordsAIClient]:
    c = make_client(server.url)
    yield c
    c.close()


def raw(server: ServerThread, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, server.url + path, headers={"Authorization": f"Bearer {KEY}"}, **kwargs)


def test_dataset_lifecycle_as_in_the_docs(client: KeywordsAIClient, fake: KeywordsAIFake) -> None:
    created = client.create_dataset(
        CreateDatasetRequest(
            name="Demo Dataset (via API)", description="Created from docs tutorial", is_empty=True
        )
    )
    assert (created.name, created.status, created.log_count) == ("Demo Dataset (via API)", "ready", 0)
    assert client.get_dataset(created.id).description == "Created from docs tutorial"

    renamed = client.update_dataset(created.id, name="Renamed dataset", description="Updated via API")
    assert (renamed.name, renamed.description) == ("Renamed dataset", "Updated via API")
    assert [d.name for d in client.iter_datasets()] == ["Renamed dataset"]

    client.delete_dataset(created.id)
    with pytest.raises(NotFoundError, match="Dataset not found"):
        client.get_dataset(created.id)
    assert fake.requests["DELETE /api/datasets/{dataset_id}/"] == 1


def test_dataset_logs_create_bulk_list_and_delete(client: KeywordsAIClient, server: ServerThread) -> None:
    dataset = client.create_dataset(CreateDatasetRequest(name="logs", is_empty=True))
    one = client.create_dataset_log(
        dataset.id,
        DatasetLogInput(
            input={"question": "What is 2+2?", "context": {"source": "docs_tutorial"}},
            output={"answer": "4", "explanation": "2 + 2 = 4."},
            metadata={"custom_identifier": "dataset-tutorial-log", "model": "gpt-4o-mini"},
            metrics={"cost": 0.0, "latency": 0.0},
        ),
    )
    assert one["log_data"]["custom_identifier"] == "dataset-tutorial-log"
    bulk = client.bulk_create_dataset_logs(
        dataset.id, [DatasetLogInput(input=i, output=str(i), metadata={"n": i}) for i in range(230)]
    )
    assert (bulk.success_count, bulk.error_count) == (230, 0)

    page = client.list_dataset_logs(dataset.id, page=1, page_size=500)
    assert page.count == 231 and len(page.results) == 100  # page size clamped to 100
    assert page.next is not None and page.next.startswith(server.url) and "page=2" in page.next
    assert page.previous is None
    assert len(list(client.iter_dataset_logs(dataset.id, page_size=40))) == 231
    assert raw(server, "GET", f"/api/datasets/{dataset.id}/logs/list/?page=99").json() == {
        "detail": "Invalid page."
    }

    # The docs' delete-by-filter example uses a bare value; operator filters work too.
    client.delete_dataset_logs(dataset.id, filters={"metadata.custom_identifier": "dataset-tutorial-log"})
    deleted = client.delete_dataset_logs(dataset.id, filters=where("metadata.n", "gte", 200))
    assert deleted["deleted_count"] == 30
    assert client.count_dataset_logs(dataset.id) == 200
    with pytest.raises(PlatformError, match="is_deleting_all_logs"):
        client.http.delete(f"/api/datasets/{dataset.id}/logs/delete/", json={"filters": {}})
    client.delete_dataset_logs(dataset.id, delete_all=True)
    assert client.count_dataset_logs(dataset.id) == 0


def test_invalid_requests_get_400_naming_the_field(client: KeywordsAIClient, server: ServerThread) -> None:
    cases = [
        ({"description": "no name", "is_empty": True}, "name: This field is required."),
        ({"name": "x", "is_empty": "yes"}, "is_empty: expected bool, got str"),
        ({"name": "x", "is_empty": True, "colour": "red"}, "unknown field(s): colour"),
        ({"name": "x"}, "start_time: This field is required unless is_empty is true."),
    ]
    for body, detail in cases:
        response = raw(server, "POST", "/api/datasets/", json=body)
        assert (response.status_code, response.json()) == (400, {"detail": detail})

    dataset = client.create_dataset(CreateDatasetRequest(name="v", is_empty=True))
    response = raw(server, "PATCH", f"/api/datasets/{dataset.id}/", json={"type": "llm"})
    assert response.status_code == 400 and "type" in response.json()["detail"]
    bulk = client.http.post(
        f"/api/datasets/{dataset.id}/logs/bulk/",
        json={
            "logs": [
                {"input": 1, "output": 1},
                {"output": "no input"},
                {"input": 1, "output": 1, "metrics": {"cost": "x"}},
            ]
        },
    )
    assert (bulk["success_count"], bulk["error_count"]) == (1, 2)
    assert [e["detail"] for e in bulk["errors"]] == [
        "logs[1].input: This field is required.",
        "logs[2].metrics.cost: expected a number, got str",
    ]
    with pytest.raises(PlatformError) as raised:
        client.http.post(f"/api/datasets/{dataset.id}/logs/", json={"input": 1, "output": 2, "extra": 3})
    assert raised.value.status == 400 and "extra" in str(raised.value)


def test_trailing_slashes_and_auth(server: ServerThread) -> None:
    assert raw(server, "GET", "/api/datasets").status_code == 404
    assert raw(server, "GET", "/api/datasets").json() == {"detail": "Not found."}
    assert raw(server, "PUT", "/api/datasets/").status_code == 405

    missing = httpx.get(server.url + "/api/datasets/")
    assert (missing.status_code, missing.json()["detail"]) == (
        401,
        "Authentication credentials were not provided.",
    )
    wrong = httpx.get(server.url + "/api/datasets/", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "API key is invalid" in wrong.json()["detail"]
    legacy = httpx.get(server.url + "/api/datasets/", headers={"Authorization": f"Api-Key {KEY}"})
    assert legacy.status_code == 200

    client = make_client(server.url, key="not-the-key")
    with pytest.raises(AuthError) as raised:
        client.list_datasets()
    assert "KEYWORDSAI_API_KEY" in str(raised.value) and "not-the-key" not in str(raised.value)


def test_eval_report_moves_through_statuses_and_scores_the_logs(
    client: KeywordsAIClient, fake: KeywordsAIFake
) -> None:
    dataset = client.create_dataset(CreateDatasetRequest(name="eval", is_empty=True))
    client.bulk_create_dataset_logs(
        dataset.id,
        [
            DatasetLogInput(input="a", output="four", expected_output="four"),
            DatasetLogInput(input="b", output="fiv", expected_output="five"),
            DatasetLogInput(input="c", output={"k": 1}),
        ],
    )
    created = client.create_eval_report(dataset.id, ["char_count_eval", "exact_match_eval"])
    assert created.status == "pending" and created.evaluator_slugs == ["char_count_eval", "exact_match_eval"]
    assert client.get_eval_report(dataset.id, created.id).status == "running"
    done = client.find_eval_report(dataset.id, created.id)
    assert done is not None and done.status == "completed"
    assert done.average("char_count_eval") == pytest.approx((4 + 3 + len('{"k":1}')) / 3)
    assert done.average("exact_match_eval") == pytest.approx(0.5)
    assert done.results["exact_match_eval"]["failed_logs"] == 1
    scores = {
        log.input: {s.evaluator_slug: s.as_float() for s in log.scores}
        for log in client.iter_dataset_logs(dataset.id)
    }
    assert scores["a"] == {"char_count_eval": 4.0, "exact_match_eval": 1.0}
    assert scores["c"] == {"char_count_eval": 7.0}

    with pytest.raises(PlatformError, match="evaluator\\(s\\) not found: nope"):
        client.create_eval_report(dataset.id, ["nope"])
    fake.fail_next_evals = 1
    failing = client.create_eval_report(dataset.id, ["char_count_eval"])
    client.find_eval_report(dataset.id, failing.id)
    assert client.find_eval_report(dataset.id, failing.id).status == "failed"
    assert [r.id for r in client.iter_eval_reports(dataset.id)] == [failing.id, created.id]


def test_datasets_from_request_logs_with_filters_window_and_sampling(
    client: KeywordsAIClient, fake: KeywordsAIFake
) -> None:
    now = datetime.now(UTC)
    old = (now - timedelta(days=3)).isoformat()
    fake.add_request_logs(
        {"input": f"q{i}", "output": f"a{i}", "model": "gpt-4o" if i < 40 else "claude"} for i in range(50)
    )
    fake.add_request_logs(
        {"input": "old", "output": "x", "model": "gpt-4o", "timestamp": old} for _ in range(5)
    )

    page = client.list_request_logs(filters=where("model", "in", ["gpt-4o"]), page_size=10)
    assert page.count == 45 and len(page.results) == 10
    assert len(list(client.iter_request_logs(filters={"model": "claude"}))) == 10

    window = {"start_time": now - timedelta(hours=1), "end_time": now + timedelta(hours=1)}
    sampled = client.create_dataset(
        CreateDatasetRequest(
            name="s", initial_log_filters=where("model", "eq", "gpt-4o"), sampling=25, **window
        )
    )
    assert sampled.log_count == 10  # 25% of the 40 recent gpt-4o logs
    empty = client.create_dataset(CreateDatasetRequest(name="t", is_empty=True))
    client.import_request_logs(
        empty.id, ImportLogsRequest(sampling_percentage=50, filters={"model": "claude"}, **window)
    )
    assert client.count_dataset_logs(empty.id) == 5
    assert fake.requests["POST /api/request-logs/list/"] == 2


def test_evaluators_and_prompts(client: KeywordsAIClient, fake: KeywordsAIFake) -> None:
    slugs = [e.evaluator_slug for e in client.iter_evaluators()]
    assert slugs == ["char_count_eval", "exact_match_eval"]
    assert [e.evaluator_slug for e in client.list_evaluators(search="exact").results] == ["exact_match_eval"]
    assert client.list_evaluators(type="llm").count == 0

    prompt_id = fake.add_prompt(
        "Bot", [{"messages": [{"role": "system", "content": "hi"}], "model": "gpt-4o"}]
    )
    fake.add_prompt_version(prompt_id, {"messages": []})
    [prompt] = client.iter_prompts()
    assert (prompt.prompt_id, prompt.commit_count) == (prompt_id, 2)
    versions = list(client.iter_prompt_versions(prompt_id, page_size=1))
    assert sorted(v.version for v in versions) == [1, 2]
    with pytest.raises(NotFoundError):
        client.list_prompt_versions("missing")


def test_rate_limit_is_a_sliding_window_with_retry_after(server: ServerThread) -> None:
    clock = Clock()
    fake = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=3, clock=clock)
    with fake.serve() as limited:
        for _ in range(3):
            assert raw(limited, "GET", "/api/evaluators/").status_code == 200
        clock.now += 20
        throttled = raw(limited, "GET", "/api/datasets/")
        assert throttled.status_code == 429
        assert throttled.json()["retry_after"] == pytest.approx(40.0)
        assert raw(limited, "POST", "/api/request-logs/list/", json={}).status_code == 200  # logs are exempt
        clock.now += 40
        assert raw(limited, "GET", "/api/datasets/").status_code == 200
        assert fake.throttled == 1


def test_faults_are_retried_for_reads(fake: KeywordsAIFake, client: KeywordsAIClient) -> None:
    fake.faults.schedule(Fault("500"), Fault("truncate"), Fault("429", retry_after=0.01))
    assert client.list_datasets().count == 0
    assert client.http.retries == 3
    assert fake.faults.injected == {"500": 1, "truncate": 1, "429": 1}


def test_create_is_retried_after_429_only(fake: KeywordsAIFake, client: KeywordsAIClient) -> None:
    fake.faults.schedule(Fault("429", retry_after=0.01))
    assert client.create_dataset(CreateDatasetRequest(name="a", is_empty=True)).name == "a"
    fake.faults.schedule(Fault("reset", after=True))
    with pytest.raises(PlatformError, match="not retried"):
        client.create_dataset(CreateDatasetRequest(name="b", is_empty=True))
    assert sorted(d["name"] for d in fake.datasets.values()) == ["a", "b"]


def test_in_process_transport(fake: KeywordsAIFake) -> None:
    client = make_client("http://keywordsai.test", transport=fake.transport())
    dataset = client.create_dataset(CreateDatasetRequest(name="in-process", is_empty=True))
    assert client.get_dataset(dataset.id).name == "in-process"
