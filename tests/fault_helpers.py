"""Shared pieces of the fault-injection and crash-and-rerun tests: fakes on both platforms, their resources,
and readers of the fakes' own state (what the platform really holds)."""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from typing import Any

from dagster_evals.backends.braintrust.platform import BraintrustResource
from dagster_evals.backends.keywordsai.platform import KeywordsAIResource
from dagster_evals.testing import BraintrustFake, Fault, FaultInjector, KeywordsAIFake
from dagster_evals.testing.faults import receive_body

KEY = "fault-test-key-0123456789"
PLATFORMS = ("braintrust", "keywordsai")
# A scripted "fault" that lets the request through untouched: a slow response with no delay.
PASS = Fault("slow", delay_s=0.0)
# A request held unanswered until the client gives up and hangs up; it never takes effect.
HOLD = Fault("slow", delay_s=None)


def make_fake(platform: str) -> BraintrustFake | KeywordsAIFake:
    if platform == "braintrust":
        return BraintrustFake(api_key=KEY)
    return KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=None)


def make_resource(platform: str, url: str, **overrides: Any) -> BraintrustResource | KeywordsAIResource:
    """A resource on the fake with small backoffs, so retries cost milliseconds."""
    if platform == "braintrust":
        options: dict[str, Any] = {
            "api_key": KEY,
            "api_url": url,
            "app_url": url,
            "project": "faults",
            "backoff_base_s": 0.01,
            "request_concurrency": 1,
            "collect_git": False,
        }
        options.update(overrides)
        return BraintrustResource(**options)
    options = {
        "api_key": KEY,
        "base_url": url,
        "rate_limit_per_minute": None,
        "eval_poll_interval_s": 0.01,
        "backoff_base_s": 0.01,
    }
    options.update(overrides)
    return KeywordsAIResource(**options)


def fault_plan(fault: Fault, *, seed: int, length: int = 400, rate: float = 0.35) -> list[Fault]:
    """`length` scripted responses: the first one `fault`, then `fault` for a `rate` share drawn on `seed`,
    the rest let through."""
    rng = random.Random(seed)
    return [fault] + [fault if rng.random() < rate else PASS for _ in range(length - 1)]


def stored_rows(fake: BraintrustFake | KeywordsAIFake, dataset_name: str) -> list[dict[str, Any]]:
    """The rows the fake holds in the dataset called `dataset_name`, as {id, input, expected, metadata}.

    Read from the fake's own state, not through the client under test.
    """
    if isinstance(fake, BraintrustFake):
        with fake.lock:
            [dataset] = [
                o
                for o in fake.objects["dataset"].values()
                if o.data["name"] == dataset_name and not o.data.get("deleted_at")
            ]
            assert dataset.store is not None
            events = dataset.store.rows()
        return [
            {
                "id": e["id"],
                "input": e.get("input"),
                "expected": e.get("expected"),
                "metadata": e.get("metadata") or {},
            }
            for e in events
        ]
    [dataset_id] = [d["id"] for d in fake.datasets.values() if d["name"] == dataset_name]
    rows = []
    for log in fake.dataset_logs(dataset_id):
        metadata = dict(log.get("metadata") or {})
        row_id = metadata.pop("dagster_evals_row_id")
        metadata = {k: v for k, v in metadata.items() if not k.startswith("dagster_evals_")}
        rows.append(
            {
                "id": row_id,
                "input": log.get("input"),
                "expected": log.get("expected_output"),
                "metadata": metadata,
            }
        )
    return rows


def duplicates(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row_id for row_id, n in Counter(r["id"] for r in rows).items() if n > 1)


def assert_exactly(rows: list[dict[str, Any]], source: list[dict[str, Any]]) -> None:
    """The platform holds exactly the source rows: same ids, same contents, none twice, none missing."""
    assert duplicates(rows) == [], f"rows stored more than once: {duplicates(rows)}"
    stored = {r["id"]: r for r in rows}
    expected = {r["id"]: r for r in source}
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    assert not missing and not extra, f"missing rows {missing[:10]}, unexpected rows {extra[:10]}"
    for row_id, want in expected.items():
        got = stored[row_id]
        assert (got["input"], got["expected"], got["metadata"]) == (
            want["input"],
            want["expected"],
            want.get("metadata") or {},
        ), f"row {row_id!r} differs on the platform: {got} != {want}"


class EndpointFaults:
    """ASGI middleware in front of a fake that serves a fault to the first calls of chosen endpoints.

    `arm("POST", r"/v1/eval$", fault)` faults the next matching request; the fault itself is served by a
    `FaultInjector`, exactly as the fake's own faults are.
    """

    def __init__(self, app: Any) -> None:
        self.injector = FaultInjector(app)
        self.app = app
        self._armed: list[tuple[str, re.Pattern[str], Fault]] = []
        self.hits: list[str] = []
        self._lock = threading.Lock()

    def arm(self, method: str, path: str, fault: Fault) -> None:
        with self._lock:
            self._armed.append((method, re.compile(path), fault))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        fault = None
        if scope["type"] == "http":
            with self._lock:
                for i, (method, pattern, armed) in enumerate(self._armed):
                    if scope["method"] == method and pattern.search(scope["path"]):
                        fault = armed
                        del self._armed[i]
                        self.hits.append(f"{method} {scope['path']}")
                        break
        if fault is None:
            # Through the injector all the same, so writes it holds back land as requests arrive.
            await self.injector(scope, receive, send)
            return
        self.injector.schedule(fault)
        await self.injector(scope, receive, send)


class HoldRequests:
    """ASGI middleware in front of a fake that lets the first `passing` requests matching `method` and
    `path` through and holds every later one unanswered (never applied) until its client hangs up.

    `held` is set when the first request is held: from then on the fake's state cannot change through that
    endpoint, whatever the client does next.
    """

    def __init__(self, app: Any, method: str, path: str, passing: int) -> None:
        self.app = app
        self.injector = FaultInjector(app)
        self.method = method
        self.pattern = re.compile(path)
        self.passing = passing
        self.seen = 0
        self.held = threading.Event()
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        hold = False
        if scope["type"] == "http" and scope["method"] == self.method and self.pattern.search(scope["path"]):
            with self._lock:
                hold = self.seen >= self.passing
                self.seen += 1
        if not hold:
            await self.app(scope, receive, send)
            return
        self.held.set()
        self.injector.schedule(HOLD)
        await self.injector(scope, receive, send)


class LoseOneRow:
    """ASGI middleware in front of a fake that silently loses the first row of the next insert request:
    the fake never receives it, yet the answer acknowledges every row sent — a platform that drops data
    and says it did not. `lost` holds the id of the row it lost.
    """

    INSERTS = {
        "braintrust": (r"^/v1/dataset/[^/]+/insert$", "events"),
        "keywordsai": (r"/logs/bulk/$", "logs"),
    }

    def __init__(self, app: Any, platform: str) -> None:
        self.app = app
        self.platform = platform
        pattern, self.field = self.INSERTS[platform]
        self.pattern = re.compile(pattern)
        self.armed = True
        self.lost: str | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not (
            self.armed
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and self.pattern.search(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        self.armed = False
        body = json.loads(await receive_body(receive))
        dropped = body[self.field].pop(0)
        self.lost = (
            dropped["id"] if self.platform == "braintrust" else dropped["metadata"]["dagster_evals_row_id"]
        )
        forwarded = json.dumps(body).encode()
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": forwarded, "more_body": False}

        captured: list[Any] = []

        async def capture(message: Any) -> None:
            captured.append(message)

        scope = {
            **scope,
            "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            + [(b"content-length", str(len(forwarded)).encode())],
        }
        await self.app(scope, replay, capture)
        [start] = [m for m in captured if m["type"] == "http.response.start"]
        answer = json.loads(
            b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        )
        # Acknowledge the lost row as if it had been stored.
        if self.platform == "braintrust":
            answer["row_ids"] = [dropped["id"], *answer["row_ids"]]
        else:
            answer["success_count"] += 1
        out = json.dumps(answer).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})
