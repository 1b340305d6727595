"""Fault injection for the fake servers: rate limits, server errors, dropped connections, slow and
truncated responses, and writes the server applies only after the client gave up — scripted one by one or
drawn at random on a fixed seed."""

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

FaultKind = Literal["429", "500", "502", "503", "reset", "truncate", "slow", "late"]
ALL_KINDS: tuple[FaultKind, ...] = ("429", "500", "502", "503", "reset", "truncate", "slow", "late")


class DroppedConnection(Exception):
    """Raised inside the server to break a response off mid-way."""


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    Args:
        kind: `429`, `500`/`502`/`503`, `reset` (connection dropped), `truncate` (JSON body cut short),
            `slow` (the real response after `delay_s`), or `late`: the connection drops with no response
            (what a client sees when its timeout fires) and the server applies the request only after
            `late_by` further requests have reached it — a write that lands after the client gave up.
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
    late_by: int = 2


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
        self._late_by = 2
        self.injected: Counter[str] = Counter()
        # Requests held back by `late` faults: [requests still to wait, scope, body].
        self._late: list[list[Any]] = []
        self.late_applied = 0

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
        late_by: int = 2,
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
            self._late_by = late_by

    def clear(self) -> None:
        """Drop the scheduled faults and stop random ones."""
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
                    late_by=self._late_by,
                )
        return None

    @property
    def late_pending(self) -> int:
        """Requests held back by `late` faults and not applied yet."""
        with self._lock:
            return len(self._late)

    async def _replay(self, scope: Scope, body: bytes) -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, receive, _discard)
        with self._lock:
            self.late_applied += 1

    async def _apply_due(self) -> None:
        with self._lock:
            for item in self._late:
                item[0] -= 1
            due = [item for item in self._late if item[0] <= 0]
            self._late = [item for item in self._late if item[0] > 0]
        for _, scope, body in due:
            await self._replay(scope, body)

    def apply_late(self) -> None:
        """Apply every held-back request now (from a test thread)."""
        with self._lock:
            held, self._late = self._late, []
        for _, scope, body in held:
            asyncio.run(self._replay(scope, body))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._apply_due()
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
        if fault.kind == "late":
            body = await receive_body(receive)
            with self._lock:
                self._late.append([max(1, fault.late_by), dict(scope), body])
            await _break_response(send, b"")
            return
        if fault.kind in ("429", "500", "502", "503"):
            await _drain(receive)
            extra = []
            if fault.kind == "429" and fault.retry_after is not None:
                extra.append((b"retry-after", str(fault.retry_after).encode()))
            body = b'{"error": "injected fault: HTTP %s"}' % fault.kind.encode()
            await _start_json(send, int(fault.kind), extra=extra)
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
            await _start_json(send, 200, length=len(cut))
            await send({"type": "http.response.body", "body": cut})
            return
        await _break_response(send, body)


async def _start_json(
    send: Send, status: int, *, length: int | None = None, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Start a JSON response (with `content-length` when `length` is given, then the `extra` headers)."""
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    headers.extend(extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _break_response(send: Send, body: bytes) -> None:
    """Start a response and break the connection half-way through its body."""
    full = body or b'{"dropped": true}'
    await _start_json(send, 200, length=len(full))
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

        await app(scope, replayed, _discard)
    # Over real HTTP the next message is the disconnect, which comes when the client gives up.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(receive(), HOLD_LIMIT_S)


async def receive_body(receive: Receive) -> bytes:
    """The whole body of the request being received (what arrived of it, if the client left)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks)


async def _drain(receive: Receive) -> None:
    await receive_body(receive)


async def _discard(message: Message) -> None:
    return None
