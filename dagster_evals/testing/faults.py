"""Fault injection for the fake servers: rate limits, server errors, dropped connections, slow and
truncated responses — scripted one by one or drawn at random on a fixed seed."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["429", "500", "502", "503", "reset", "truncate", "slow"]
ALL_KINDS: tuple[FaultKind, ...] = ("429", "500", "502", "503", "reset", "truncate", "slow")


class DroppedConnection(Exception):
    """Raised inside the server to break a response off mid-way."""


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    Args:
        kind: `429`, `500`/`502`/`503`, `reset` (connection dropped), `truncate` (JSON body cut short),
            or `slow` (the real response after `delay_s`).
        retry_after: Seconds for the `Retry-After` header of a 429 (None: no header).
        after: For `reset`/`truncate`, let the request take effect first and break only the response —
            the case that tests whether a client's retry is really idempotent.
        delay_s: Delay for `slow`. None: no answer at all until the client gives up and hangs up (over
            real HTTP), so the response is slower than any client timeout however fast or loaded the
            machine is; the request never takes effect (with `after=True` it takes effect first, and only
            the response is withheld).
    """

    kind: FaultKind
    retry_after: float | None = None
    after: bool = False
    delay_s: float | None = 0.0


# How long a `slow` fault with `delay_s=None` waits at most for the client to hang up.
HOLD_LIMIT_S = 300.0


class FaultInjector:
    """ASGI middleware that injects faults into a fake server's responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._scripted: deque[Fault] = deque()
        self._rate = 0.0
        self._kinds: tuple[FaultKind, ...] = ()
        self._rng = random.Random(0)
        self._retry_after: float | None = 0.05
        self._slow_s = 0.0
        self._paths: tuple[str, ...] = ()
        self.injected: Counter[str] = Counter()

    def schedule(self, *faults: Fault | FaultKind) -> None:
        """Serve these faults to the next matching requests, in order."""
        with self._lock:
            self._scripted.extend(f if isinstance(f, Fault) else Fault(f) for f in faults)

    def randomize(
        self,
        rate: float,
        *,
        seed: int = 0,
        kinds: Iterable[FaultKind] = ("429", "500", "502", "503", "reset", "truncate"),
        retry_after: float | None = 0.05,
        slow_s: float = 0.0,
        paths: Iterable[str] = (),
    ) -> None:
        """Inject a fault into a `rate` share of matching requests, drawn on `seed`.

        `paths`: only requests whose path contains one of these substrings (default: all).
        """
        with self._lock:
            self._rate = rate
            self._kinds = tuple(kinds)
            self._rng = random.Random(seed)
            self._retry_after = retry_after
            self._slow_s = slow_s
            self._paths = tuple(paths)

    def clear(self) -> None:
        with self._lock:
            self._scripted.clear()
            self._rate = 0.0

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            if self._paths and not any(p in path for p in self._paths):
                return None
            if self._scripted:
                return self._scripted.popleft()
            if self._rate and self._rng.random() < self._rate:
                kind = self._rng.choice(self._kinds)
                return Fault(
                    kind,
                    retry_after=self._retry_after if kind == "429" else None,
                    after=self._rng.random() < 0.5,
                    delay_s=self._slow_s,
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self._next_fault(scope.get("path", ""))
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.injected[fault.kind] += 1
        if fault.kind == "slow" and fault.delay_s is None:
            await _hold_until_client_leaves(self.app, scope, receive, applied=fault.after)
            return
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s or 0.0)
            await self.app(scope, receive, send)
            return
        if fault.kind in ("429", "500", "502", "503"):
            await _drain(receive)
            headers = [(b"content-type", b"application/json")]
            if fault.kind == "429" and fault.retry_after is not None:
                headers.append((b"retry-after", str(fault.retry_after).encode()))
            body = b'{"error": "injected fault: HTTP %s"}' % fault.kind.encode()
            await send({"type": "http.response.start", "status": int(fault.kind), "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        # reset / truncate: optionally let the request take effect, then break the response.
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        if fault.after:
            await self.app(scope, receive, capture)
        else:
            await _drain(receive)
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        if fault.kind == "truncate":
            cut = body[: max(1, len(body) // 2)] if body else b'{"events": ['
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(cut)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": cut})
            return
        full = body or b'{"dropped": true}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(full)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": full[: len(full) // 2], "more_body": True})
        raise DroppedConnection("injected fault: connection dropped mid-response")


async def _hold_until_client_leaves(app: ASGIApp, scope: Scope, receive: Receive, *, applied: bool) -> None:
    """Answer nothing until the client disconnects (or `HOLD_LIMIT_S` passes); with `applied`, let the
    request take effect first."""
    body: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client left before it finished sending
        body.append(message)
        if not message.get("more_body"):
            break
    if applied:
        replay = iter(body)

        async def replayed() -> Message:
            return next(replay, {"type": "http.disconnect"})

        async def discard(message: Message) -> None:
            return None

        await app(scope, replayed, discard)
    # Over real HTTP the next message is the disconnect, which comes when the client gives up.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(receive(), HOLD_LIMIT_S)


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
