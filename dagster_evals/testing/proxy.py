"""A fault-injecting HTTP reverse proxy on 127.0.0.1, to put between a client and a (fake) server.

The proxy speaks HTTP/1.1 on real sockets (parsed with h11) and forwards each request to the upstream
server with httpx. Per request it may inject, at a configurable rate on a fixed seed (or from a script):

- `drop`: close the client's connection before forwarding; the server never sees the request.
- `500` / `502` / `503`: answer with that status without forwarding.
- `429`: answer 429 with a `Retry-After` header without forwarding.
- `lost_response`: forward, wait for the server's answer (the request took effect), then close the client's
  connection without answering.
- `late_apply`: hold the request until the client has given up on it (its connection closed, e.g. by its
  own timeout; detected on the socket, not guessed from a delay), then forward it: the server applies a
  request the client believes failed.

Every request is recorded in `proxy.log` with the fault it met (None when it was passed through); with
`late_apply`, `proxy.applied_late` counts requests that reached the server after their client had left, and
`wait_settled()` waits until every held request has been forwarded.

Example:
    .. code-block:: python

        from dagster_evals.testing import BraintrustFake, FaultProxy, ServerThread

        fake = BraintrustFake(api_key="k")
        with ServerThread(fake.app) as server, FaultProxy(server.url, rate=0.2, seed=7) as proxy:
            ...  # point the client at proxy.url
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import h11
import httpx

ProxyFault = Literal["drop", "500", "502", "503", "429", "lost_response", "late_apply"]
ALL_PROXY_FAULTS: tuple[ProxyFault, ...] = ("drop", "500", "502", "503", "429", "lost_response", "late_apply")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Headers that belong to one connection, never forwarded.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"content-length"}
)


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy saw, and the fault it met (None: passed through untouched)."""

    method: str
    path: str
    fault: ProxyFault | None


class FaultProxy:
    """Reverse proxy to `upstream` injecting faults into a `rate` share of matching requests.

    Args:
        upstream: Base URL of the server to forward to (e.g. a `ServerThread`'s `url`).
        rate: Share of matching requests that meet a fault, drawn on `seed`.
        seed: Seed of the draws (which requests, and which fault of `faults`).
        faults: The fault kinds to draw from.
        methods: Only requests with these methods may meet a fault (default: the writes).
        path_pattern: And only those whose path matches this regular expression.
        retry_after: The `Retry-After` header value of injected 429s.
        max_hold_s: Longest a `late_apply` request waits for its client to leave before it is forwarded
            and answered normally (a safety net for clients without a timeout).
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        faults: Iterable[ProxyFault] = ALL_PROXY_FAULTS,
        methods: Iterable[str] = WRITE_METHODS,
        path_pattern: str = "",
        retry_after: str = "0",
        max_hold_s: float = 60.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.rate = rate
        self.faults: tuple[ProxyFault, ...] = tuple(faults)
        self.methods = frozenset(m.upper() for m in methods)
        self.path_pattern = re.compile(path_pattern)
        self.retry_after = retry_after
        self.max_hold_s = max_hold_s
        self.log: list[ProxiedRequest] = []
        self.applied_late = 0
        self._rng = random.Random(seed)
        self._script: list[ProxyFault | None] = []
        self._lock = threading.Lock()
        self._held = 0
        self._settled = threading.Condition(self._lock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self.port = 0

    # -- control ------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def schedule(self, *faults: ProxyFault | None) -> None:
        """Serve these faults (None: pass through) to the next matching requests, before any drawn ones."""
        with self._lock:
            self._script.extend(faults)

    def set_rate(self, rate: float) -> None:
        """Meet this share of the matching requests with a random fault (0 turns random faults off)."""
        with self._lock:
            self.rate = rate

    def faults_served(self) -> list[ProxyFault]:
        """The faults served so far, in order."""
        with self._lock:
            return [r.fault for r in self.log if r.fault is not None]

    def wait_settled(self, timeout: float = 60.0) -> bool:
        """Wait until no `late_apply` request is held; True when none is."""
        with self._settled:
            return self._settled.wait_for(lambda: self._held == 0, timeout)

    def _draw(self, method: str, path: str) -> ProxyFault | None:
        with self._lock:
            matches = method in self.methods and self.path_pattern.search(path) is not None
            fault: ProxyFault | None = None
            if matches and self._script:
                fault = self._script.pop(0)
            elif matches and self.rate > 0 and self._rng.random() < self.rate:
                fault = self._rng.choice(self.faults)
            self.log.append(ProxiedRequest(method, path, fault))
            if fault == "late_apply":
                self._held += 1
            return fault

    def _release_hold(self) -> None:
        with self._settled:
            self._held -= 1
            self._settled.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        """Start the proxy on a free port of 127.0.0.1 (its `url`); returns it."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=15)
        return self

    async def _start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=httpx.Timeout(120.0))
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop the proxy and close its connections upstream."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            if self._client is not None:
                await self._client.aclose()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one client connection ----------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, reader)
                if request is None:
                    return
                head, body = request
                keep_open = await self._handle(conn, reader, writer, head, body)
                if not keep_open or conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _handle(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: h11.Request,
        body: bytes,
    ) -> bool:
        """Answer one request (or not); False when the connection must be closed."""
        method = head.method.decode()
        target = head.target.decode()
        fault = self._draw(method, target.split("?", 1)[0])
        if fault == "drop":
            return False
        if fault in ("500", "502", "503", "429"):
            status = int(fault)
            headers = [(b"content-type", b"application/json")]
            if status == 429:
                headers.append((b"retry-after", self.retry_after.encode()))
            payload = b'{"error": "injected by the fault proxy"}'
            await _respond(conn, writer, status, headers, payload)
            return True
        if fault == "late_apply":
            try:
                left = await _client_left(reader, self.max_hold_s)
                status, headers, payload = await self._forward(head, body)
                if left:
                    with self._lock:
                        self.applied_late += 1
                    return False
                await _respond(conn, writer, status, headers, payload)
                return True
            finally:
                self._release_hold()
        status, headers, payload = await self._forward(head, body)
        if fault == "lost_response":
            return False
        await _respond(conn, writer, status, headers, payload)
        return True

    async def _forward(self, head: h11.Request, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        assert self._client is not None
        headers = [(k, v) for k, v in head.headers if k.lower() not in HOP_BY_HOP and k.lower() != b"host"]
        request = self._client.build_request(
            head.method.decode(), head.target.decode(), headers=headers, content=body
        )
        response = await self._client.send(request, stream=True)
        try:
            payload = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        out = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
        return response.status_code, out, payload


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    """The next request on the connection with its whole body, or None when the client closed it."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _client_left(reader: asyncio.StreamReader, max_wait_s: float) -> bool:
    """Wait for the client to close its side of the connection; True when it did within `max_wait_s`."""
    try:
        data = await asyncio.wait_for(reader.read(65536), max_wait_s)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    # A client sends nothing more on a connection awaiting its response; EOF means it gave up.
    return data == b""


async def _respond(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[bytes, bytes]],
    payload: bytes,
) -> None:
    response = h11.Response(
        status_code=status, headers=[*headers, (b"content-length", str(len(payload)).encode())]
    )
    writer.write(conn.send(response) or b"")
    writer.write(conn.send(h11.Data(data=payload)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()
