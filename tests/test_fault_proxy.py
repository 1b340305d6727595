"""The fault-injecting proxy, then the write paths of Braintrust and Keywords AI through it.

The proxy sits between a resource and a fake server over real HTTP on 127.0.0.1. Its own tests observe each
fault mode on a server that counts what it applied. The matrix then drives dataset syncs and evals through
the proxy at 10/20/30 % faults per write path and checks the fakes' own storage after every reported
success: exactly the source rows, one experiment / eval report per eval, nothing lost, duplicated or stale.

The reduced matrix runs by default; the full one is `pytest -n 0 -m fault_matrix_full tests/test_fault_proxy.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dagster_evals.testing import FaultProxy, ServerThread


# -- the proxy itself -------------------------------------------------------------------------------------
class Counter:
    """An upstream that counts the writes it applied."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def write(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self.applied.append(body["id"])
            return JSONResponse({"applied": body["id"]}, headers={"x-upstream": "yes"})

        async def read(request: Request) -> JSONResponse:
            return JSONResponse({"applied": list(self.applied)})

        return Starlette(
            routes=[Route("/items", write, methods=["POST"]), Route("/items", read, methods=["GET"])]
        )


@pytest.fixture
def upstream() -> Iterator[tuple[Counter, ServerThread]]:
    counter = Counter()
    with ServerThread(counter.app()) as server:
        yield counter, server


def test_requests_without_a_fault_pass_through_unchanged(upstream: tuple[Counter, ServerThread]) -> None:
    counter, server = upstream
    with FaultProxy(server.url) as proxy, httpx.Client(base_url=proxy.url) as client:
        for i in range(3):
            answer = client.post("/items", json={"id": f"w{i}"})
            assert (answer.status_code, answer.json(), answer.headers["x-upstream"]) == (
                200,
                {"applied": f"w{i}"},
                "yes",
            )
        assert client.get("/items?x=1").json() == {"applied": ["w0", "w1", "w2"]}
    assert counter.applied == ["w0", "w1", "w2"]
    assert [r.fault for r in proxy.log] == [None] * 4


@pytest.mark.parametrize("status", ["500", "502", "503", "429"])
def test_an_error_status_is_answered_without_forwarding(
    upstream: tuple[Counter, ServerThread], status: str
) -> None:
    counter, server = upstream
    with FaultProxy(server.url, retry_after="7") as proxy, httpx.Client(base_url=proxy.url) as client:
        proxy.schedule(status)  # type: ignore[arg-type]
        answer = client.post("/items", json={"id": "w0"})
        assert answer.status_code == int(status)
        assert answer.headers.get("retry-after") == ("7" if status == "429" else None)
        assert counter.applied == []
        # The connection stays usable: the next request goes through on it.
        assert client.post("/items", json={"id": "w1"}).json() == {"applied": "w1"}
    assert counter.applied == ["w1"]


def test_a_dropped_request_never_reaches_the_server(upstream: tuple[Counter, ServerThread]) -> None:
    counter, server = upstream
    with FaultProxy(server.url) as proxy, httpx.Client(base_url=proxy.url) as client:
        proxy.schedule("drop")
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/items", json={"id": "w0"})
        assert client.post("/items", json={"id": "w1"}).status_code == 200
    assert counter.applied == ["w1"]


def test_a_lost_response_was_applied_by_the_server(upstream: tuple[Counter, ServerThread]) -> None:
    counter, server = upstream
    with FaultProxy(server.url) as proxy, httpx.Client(base_url=proxy.url) as client:
        proxy.schedule("lost_response")
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/items", json={"id": "w0"})
        assert counter.applied == ["w0"], "the server applied the request whose answer was lost"


def test_a_late_request_is_applied_only_after_its_client_gave_up(
    upstream: tuple[Counter, ServerThread],
) -> None:
    counter, server = upstream
    with FaultProxy(server.url) as proxy, httpx.Client(base_url=proxy.url, timeout=0.5) as client:
        proxy.schedule("late_apply")
        with pytest.raises(httpx.ReadTimeout):
            client.post("/items", json={"id": "w0"})
        # The proxy forwards only once it saw the client's connection close, so at the client's timeout the
        # server cannot have applied it yet.
        applied_when_the_client_gave_up = list(counter.applied)
        assert proxy.wait_settled(60)
    assert applied_when_the_client_gave_up == []
    assert counter.applied == ["w0"] and proxy.applied_late == 1


def test_faults_are_drawn_on_the_seed_and_only_for_matching_requests(
    upstream: tuple[Counter, ServerThread],
) -> None:
    _, server = upstream

    def served(seed: int) -> list[str | None]:
        faults = ("500", "503", "429")
        proxy = FaultProxy(server.url, rate=0.5, seed=seed, faults=faults)  # type: ignore[arg-type]
        with proxy, httpx.Client(base_url=proxy.url) as client:
            for i in range(30):
                client.get("/items")
                client.post("/items", json={"id": f"s{seed}-{i}"})
        assert all(r.fault is None for r in proxy.log if r.method == "GET"), "reads are never faulted"
        return [r.fault for r in proxy.log if r.method == "POST"]

    first, again, other = served(1), served(1), served(2)
    assert first == again, "the same seed serves the same faults"
    assert first != other
    assert 0 < sum(f is not None for f in first) < 30
    assert {f for f in first if f is not None} <= {"500", "503", "429"}
