"""Keep-alive HTTP/1.1 connections for judge calls, on asyncio protocols.

A judge call is one small JSON POST and one small JSON answer. Sending it through a general HTTP stack
(httpcore over anyio, h11 events, a pool scanned on every request) costs several times the CPU of
everything else a judge does; at high concurrency that CPU, not the endpoint, bounds throughput. This pool
does only what a judge call needs: one write per request, a response parsed straight from the socket
buffer (`Content-Length`, `chunked`, or read to close; RFC 9112 sections 6 and 7.1), reuse of idle
connections, TLS through the given SSL context, and per-attempt timeouts. Failures surface as `httpx`
exceptions (`ConnectError`, `ConnectTimeout`, `ReadTimeout`, `RemoteProtocolError`, `ReadError`), so the
governed transport retries them like any other transport's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import httpx

MAX_HEAD_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
Headers = list[tuple[bytes, bytes]]


class _Connection(asyncio.Protocol):
    """One connection; at most one request on it at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answered = 0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, Headers, bytes]] | None = None
        self._head: tuple[int, Headers, int | None, bool] | None = None
        self._chunks: list[bytes] = []
        self._keep_alive = True
        self._received = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection can no longer be trusted
            return
        self._received = True
        self._buffer += data
        try:
            self._parse()
        except httpx.RemoteProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self._closed_by_server()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_by_server(exc)

    # -- requests ------------------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def exchange(self, data: bytes, timeout: float | None) -> tuple[int, Headers, bytes]:
        assert self.transport is not None
        waiter = self._waiter = self.loop.create_future()
        self._received = False
        timer = self.loop.call_later(timeout, self._timed_out) if timeout else None
        try:
            self.transport.write(data)
            return await waiter
        except BaseException:
            self.close()  # a cancelled or failed exchange leaves the connection in an unknown state
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- parsing -------------------------------------------------------------------------------------
    def _parse(self) -> None:
        while self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError("response headers too large")
                return
            lines = bytes(self._buffer[:end]).split(b"\r\n")
            del self._buffer[: end + 4]
            self._head = self._parse_head(lines)
        status, _, length, chunked = self._head
        if chunked:
            self._parse_chunks()
        elif length is not None:
            if len(self._buffer) >= length:
                body = bytes(self._buffer[:length])
                del self._buffer[:length]
                self._finish(body)
        elif status in (204, 304):
            self._finish(b"")
        # else: the body runs to the end of the connection (see `_closed_by_server`)

    def _parse_head(self, lines: Sequence[bytes]) -> tuple[int, Headers, int | None, bool] | None:
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:100]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            return None  # an interim answer (100 Continue): the real one follows
        headers: Headers = []
        length: int | None = None
        chunked = False
        keep_alive = parts[0] != b"HTTP/1.0"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpx.RemoteProtocolError(f"malformed header line {line[:100]!r}")
            name, value = name.strip(), value.strip()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.isdigit():
                    raise httpx.RemoteProtocolError(f"malformed Content-Length {value[:40]!r}")
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lowered == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
        if chunked:
            length = None
        elif length is None and status not in (204, 304):
            keep_alive = False  # read to close
        self._keep_alive = keep_alive
        return status, headers, length, chunked

    def _parse_chunks(self) -> None:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"malformed chunk size {size_text[:20]!r}") from None
            if size == 0:
                if buffer[line_end + 2 : line_end + 4] == b"\r\n":
                    del buffer[: line_end + 4]
                else:
                    trailer_end = buffer.find(b"\r\n\r\n", line_end + 2)
                    if trailer_end < 0:
                        return
                    del buffer[: trailer_end + 4]
                body = b"".join(self._chunks)
                self._chunks = []
                self._finish(body)
                return
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return
            self._chunks.append(bytes(buffer[start : start + size]))
            del buffer[: start + size + 2]

    def _finish(self, body: bytes) -> None:
        assert self._head is not None
        status, headers, _, _ = self._head
        self._head = None
        self.answered += 1
        if not self._keep_alive or self._buffer:
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, headers, body))

    def _fail(self, exc: BaseException) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _closed_by_server(self, exc: Exception | None = None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        head = self._head
        if head is not None and head[2] is None and not head[3]:
            body = bytes(self._buffer)
            self._buffer.clear()
            self._finish(body)  # a body delimited by the end of the connection
            return
        if exc is not None:
            self._fail(httpx.ReadError(f"connection lost: {type(exc).__name__}: {exc}"))
        else:
            self._fail(httpx.RemoteProtocolError("server disconnected without sending a complete response"))

    def _timed_out(self) -> None:
        self._fail(httpx.ReadTimeout("no complete response within the timeout"))


class ConnectionPool:
    """Idle keep-alive connections per origin; a connection serves one request at a time.

    The caller bounds concurrency (the governed transport's semaphore), so the pool never holds more
    connections than calls that were in flight at once.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def _connect(self, scheme: str, host: str, port: int, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(loop)
        tls = None
        if scheme == "https":
            tls = self._ssl_context or ssl.create_default_context()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            connection.close()
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {timeout}s") from None
        except OSError as exc:
            connection.close()
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return connection

    async def send(
        self, url: httpx.URL, headers: Headers, body: bytes, timeout: float | None
    ) -> tuple[int, Headers, bytes]:
        """POST `body` to `url` with `headers` (which must include Host and Content-Length)."""
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r} (use http or https)")
        key = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        parts = [b"POST ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (b"\r\n", body)
        data = b"".join(parts)
        idle = self._idle.setdefault(key, [])
        while idle:
            connection = idle.pop()
            if not connection.usable:
                continue
            try:
                answer = await connection.exchange(data, timeout)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # A kept-alive connection the server closed as the request went out: no byte of an
                # answer arrived, so the request is sent again on another connection.
                if connection._received:
                    raise
                continue
            self._release(key, connection)
            return answer
        connection = await self._connect(*key, timeout)
        answer = await connection.exchange(data, timeout)
        self._release(key, connection)
        return answer

    def _release(self, key: tuple[str, str, int], connection: _Connection) -> None:
        if connection.usable:
            self._idle.setdefault(key, []).append(connection)

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
