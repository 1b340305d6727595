"""The HTTP client core against a real server on 127.0.0.1: Retry-After is capped on every path."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dagster_evals.engine.http import HttpClient, RetryPolicy
from dagster_evals.testing import ServerThread


def throttle_once_for_a_day() -> Starlette:
    """Answers the first request with a 429 asking to wait a day, every later one with 200."""
    calls = {"n": 0}

    async def endpoint(request: Request) -> JSONResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "86400"})
        return JSONResponse({"ok": calls["n"]})

    return Starlette(routes=[Route("/thing", endpoint, methods=["GET", "POST"])])


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread(throttle_once_for_a_day()) as running:
        yield running


@pytest.mark.parametrize("paced", [False, True], ids=["unpaced", "paced"])
def test_a_huge_retry_after_is_capped_with_and_without_pacing(server: ServerThread, paced: bool) -> None:
    client = HttpClient(
        platform="demo",
        base_url=server.url,
        api_key="sk-demo-key-123456",
        env_var="DEMO_API_KEY",
        retry=RetryPolicy(max_retry_after_s=0.05),
        rate_limit_per_minute=60_000 if paced else None,
    )
    answer: list[object] = []
    worker = threading.Thread(target=lambda: answer.append(client.get("/thing")), daemon=True)
    worker.start()
    # A day-long stall would keep the thread alive; with the cap it ends after ~0.05 s.
    worker.join(timeout=120)
    assert not worker.is_alive(), "the 429's Retry-After of a day was honoured uncapped"
    assert answer == [{"ok": 2}]
    assert client.rate_limited == 1
    # Nothing later is held back beyond the cap either.
    assert client.limiter._next - time.monotonic() <= 0.05 + client.limiter.interval
    client.close()
