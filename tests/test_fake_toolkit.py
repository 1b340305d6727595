"""The toolkit every fake is built on (`dagster_evals.testing.asgi`): path matching, the sliding-window
limit, id-cursor windows, and that each fake still answers in its own vendor's envelope for what the
toolkit handles on its behalf (unknown routes, scripted failures, bad credentials)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dagster_evals.testing import BraintrustFake, KeywordsAIFake, OpenAIFake
from dagster_evals.testing.asgi import FakeAPI, Route, Router, SlidingWindow, cursor_window


def noop(request: object, body: object, *arguments: str) -> None:
    return None


def test_exact_paths_keep_trailing_slashes_and_loose_paths_ignore_them() -> None:
    routes = [Route("GET", "/api/items/{id}/", noop), Route("POST", "/api/items/{id}/", noop)]
    exact, loose = Router(routes, exact=True), Router(routes, exact=False)

    found = exact.match("GET", "/api/items/7/")
    assert found is not None and found.route is routes[0] and found.arguments == ["7"]
    assert exact.match("GET", "/api/items/7") is None
    assert exact.match("GET", "/api/items//") is None, "an empty path argument is no match"
    not_allowed = exact.match("DELETE", "/api/items/7/")
    assert not_allowed is not None and not_allowed.route is None and not_allowed.allowed == ["GET", "POST"]

    relaxed = loose.match("POST", "/api/items/7")
    assert relaxed is not None and relaxed.route is routes[1] and relaxed.arguments == ["7"]


def test_sliding_window_admits_limit_requests_per_window() -> None:
    now = [0.0]
    window = SlidingWindow(2, 10.0, clock=lambda: now[0])
    assert window.admit() is None and window.admit() is None
    now[0] = 4.0
    assert window.admit() == pytest.approx(6.0), "the first request frees its slot at t=10"
    now[0] = 10.0
    assert window.admit() is None


def test_cursor_window_pages_after_and_before_and_rejects_both() -> None:
    items = ["a", "b", "c", "d", "e"]

    def window(after: str | None, before: str | None, limit: int | None) -> list[str]:
        return cursor_window(items, str, after, before, limit, reject=ValueError)

    assert window(None, None, 2) == ["a", "b"]
    assert window("b", None, 2) == ["c", "d"]
    assert window(None, "e", 2) == ["c", "d"], "before a cursor, the last `limit` items"
    assert window("zz", None, None) == []
    with pytest.raises(ValueError, match="only one of"):
        window("a", "e", None)


@pytest.fixture
def fakes() -> dict[str, FakeAPI]:
    return {
        "braintrust": BraintrustFake(api_key="k"),
        "keywordsai": KeywordsAIFake(api_keys=["k"], rate_limit_per_minute=None),
        "openai": OpenAIFake(api_key="k"),
    }


@pytest.fixture
def clients(fakes: dict[str, FakeAPI]) -> Iterator[dict[str, httpx.Client]]:
    """In-process clients of each fake, with the key it accepts."""
    opened = {
        name: httpx.Client(
            transport=fake.transport(), base_url="http://fake", headers={"Authorization": "Bearer k"}
        )
        for name, fake in fakes.items()
    }
    yield opened
    for client in opened.values():
        client.close()


def test_unknown_routes_answer_in_each_vendors_shape(clients: dict[str, httpx.Client]) -> None:
    braintrust = clients["braintrust"].get("/v1/nothing")
    assert (braintrust.status_code, braintrust.json()) == (404, {"error": "no route GET /v1/nothing"})
    keywords = clients["keywordsai"].get("/api/nothing/")
    assert (keywords.status_code, keywords.json()) == (404, {"detail": "Not found."})
    wrong_method = clients["keywordsai"].put("/api/datasets/list/")
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"detail": 'Method "PUT" not allowed.'})
    openai = clients["openai"].get("/v1/nothing")
    invalid_url = {"message": "Invalid URL (GET /v1/nothing)", "type": "invalid_request_error", "param": None}
    assert (openai.status_code, openai.json()) == (404, {"error": {**invalid_url, "code": None}})


def test_scripted_failures_and_bad_keys_answer_in_each_vendors_shape(
    fakes: dict[str, FakeAPI], clients: dict[str, httpx.Client]
) -> None:
    paths = {"braintrust": "/v1/project", "keywordsai": "/api/evaluators/", "openai": "/v1/models"}
    for name, client in clients.items():
        fakes[name].fail_next(status=429, retry_after=2.5)
        throttled = client.get(paths[name])
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2.5", name
        assert client.get(paths[name]).status_code == 200, f"{name}: only the next request fails"

    bad = {"Authorization": "Bearer wrong"}
    braintrust = clients["braintrust"].get("/v1/project", headers=bad).json()
    assert braintrust["error"].startswith("Invalid authorization token")
    keywords = clients["keywordsai"].get("/api/evaluators/", headers=bad).json()
    assert keywords["detail"].startswith("Your API key is invalid")
    openai = clients["openai"].get("/v1/models", headers=bad).json()
    assert openai["error"]["code"] == "invalid_api_key"
