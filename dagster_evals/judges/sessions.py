"""The judge client's HTTP layer: one keep-alive `aiohttp.ClientSession` per event loop and endpoint.

A judge call is one small JSON POST and one small JSON answer, and at high concurrency the client CPU per
call bounds throughput; aiohttp sends it over reused HTTP/1.1 connections at a small fraction of the
per-request CPU of a general async stack built on anyio. Proxies come from the environment exactly as
aiohttp's `trust_env=True` reads them (`HTTPS_PROXY` / `HTTP_PROXY`, lower or upper case, `NO_PROXY`,
proxy credentials in the URL or `.netrc`), but are resolved once per change of those variables rather than
on a worker thread per request (which costs more CPU than the rest of the request). TLS is verified with
the given SSL context (by default `httpx.create_ssl_context()`, which reads `SSL_CERT_FILE` /
`SSL_CERT_DIR`).

An answer larger than the sender's `max_answer_bytes` (decoded size) is never held whole: reading stops
as soon as the limit is passed (or before reading at all, when an unencoded `Content-Length` already says
so), the connection is dropped rather than drained, and `AnswerTooLarge` is raised (not retried: the same
request would get the same answer).

Failures surface as `httpx` exceptions (`ConnectError`, `ConnectTimeout`, `ReadTimeout`, `ProxyError`,
`RemoteProtocolError`, `ReadError`), so the governed transport retries them like any other transport's.
Their text is built from the aiohttp error's own message only and they are raised outside the handler, so
no request (and no `Authorization` header) stays reachable from them.

The session is closed when the event loop that made it shuts down under `asyncio.run` (an async generator
started on the loop is finalised by `loop.shutdown_asyncgens()`), or by `aclose()`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Iterable

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

Headers = list[tuple[bytes, bytes]]
# Headers describing the wire encoding of a body aiohttp has already decoded.
_WIRE_HEADERS = frozenset((b"content-encoding", b"content-length", b"transfer-encoding"))
_CONNECT_TIMEOUT = getattr(aiohttp, "ConnectionTimeoutError", None)  # aiohttp >= 3.10
# What aiohttp's `trust_env` proxy lookup depends on (urllib.request.getproxies / proxy_bypass, netrc).
_PROXY_ENV = (
    *(
        name
        for base in ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "no_proxy")
        for name in (base, base.upper())
    ),
    "REQUEST_METHOD",
    "NETRC",
)
Proxy = tuple[URL | None, aiohttp.BasicAuth | None]
# Bytes read from an answer at a time while checking its size.
_READ_CHUNK = 256 * 1024


class AnswerTooLarge(Exception):
    """An answer passed the size limit; reading it stopped after `bytes_read` bytes."""

    def __init__(self, status: int, limit: int, bytes_read: int) -> None:
        super().__init__(f"answer over {limit} bytes (stopped after {bytes_read})")
        self.status = status
        self.limit = limit
        self.bytes_read = bytes_read


async def read_capped(chunks: AsyncIterator[bytes], status: int, limit: int | None) -> bytes:
    """The whole body from `chunks`, or `AnswerTooLarge` as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if limit is not None and size > limit:
            raise AnswerTooLarge(status, limit, size)
        parts.append(chunk)
    return b"".join(parts)


# The same names as `os.environ` stores them (CPython keeps its contents in `os.environ._data`).
_PROXY_ENV_KEYS = tuple(map(getattr(os.environ, "encodekey", str), _PROXY_ENV))


def _proxy_env() -> tuple[object, ...]:
    """The values of the proxy variables, read straight from `os.environ`'s store: `os.environ.get` raises
    and catches a `KeyError` per unset name, about 50 µs per judge call for these twelve names (2 µs so)."""
    data = getattr(os.environ, "_data", None)
    if isinstance(os.environ, os._Environ) and isinstance(data, dict):
        return tuple(map(data.get, _PROXY_ENV_KEYS))
    return tuple(map(os.environ.get, _PROXY_ENV))


def _as_httpx_error(exc: BaseException) -> httpx.TransportError:
    """The `httpx` exception a judge transport raises for an aiohttp failure (text only, no request)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        if _CONNECT_TIMEOUT is not None and isinstance(exc, _CONNECT_TIMEOUT):
            return httpx.ConnectTimeout(text)
        return httpx.ReadTimeout(text)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout("no complete response within the timeout")
    if isinstance(exc, (aiohttp.ClientHttpProxyError, aiohttp.ClientProxyConnectionError)):
        return httpx.ProxyError(text)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return httpx.RemoteProtocolError(text)
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed answer
        return httpx.RemoteProtocolError(text)
    if isinstance(exc, aiohttp.InvalidURL) or type(exc).__name__ == "NonHttpUrlClientError":
        return httpx.UnsupportedProtocol(text)
    if isinstance(exc, (aiohttp.ClientOSError, OSError)):
        return httpx.ReadError(text)
    return httpx.TransportError(text)


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await session.close()


class SessionSender:
    """POSTs over one `aiohttp.ClientSession` of the running event loop (created on first use).

    Args:
        ssl_context: The context that verifies HTTPS endpoints (None: aiohttp's default verification).
        timeout_s: Per-attempt timeout: connecting, and the whole answer.
        max_answer_bytes: Largest answer body read (decoded); a larger one raises `AnswerTooLarge`.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float | None = 60.0,
        max_answer_bytes: int | None = None,
    ) -> None:
        self.max_answer_bytes = max_answer_bytes
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._closer: AsyncIterator[None] | None = None
        self._proxy_env: tuple[object, ...] = ()
        self._proxies: dict[str, Proxy] = {}
        self._urls: dict[str, URL] = {}

    def proxy_for(self, url: str) -> Proxy:
        """The proxy (and its credentials) the environment names for `url`, or `(None, None)`."""
        env = _proxy_env()
        if env != self._proxy_env:
            self._proxy_env, self._proxies = env, {}
        proxy = self._proxies.get(url)
        if proxy is None:
            try:
                proxy = get_env_proxy_for_url(URL(url))
            except LookupError:
                proxy = (None, None)
            self._proxies[url] = proxy
        return proxy

    async def _open(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=0)
            session = self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=True
            )
            self._closer = _close_with_loop(session)
            await anext(self._closer)  # registered with the loop: finalised when `asyncio.run` ends
        return session

    async def send(
        self, url: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> tuple[int, Headers, bytes]:
        """POST `body` to `url`; the answer's status, headers (as sent, minus body framing) and body."""
        session = await self._open()
        proxy, proxy_auth = self.proxy_for(url)
        parsed = self._urls.get(url)
        if parsed is None:  # parsed once per endpoint path, not per call
            parsed = self._urls[url] = URL(url)
        try:
            async with session.post(
                parsed, data=body, headers=list(headers), proxy=proxy, proxy_auth=proxy_auth
            ) as response:
                status = response.status
                raw = response.raw_headers
                content = await self._read(response)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = _as_httpx_error(exc)
        else:
            return status, [(k, v) for k, v in raw if k.lower() not in _WIRE_HEADERS], content
        raise error  # outside the handler: the aiohttp error (and its request) is not chained

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.max_answer_bytes
        if limit is None:
            return await response.read()
        length = response.content_length
        try:
            if length is not None and length > limit and not response.headers.get("Content-Encoding"):
                raise AnswerTooLarge(response.status, limit, 0)
            return await read_capped(response.content.iter_chunked(_READ_CHUNK), response.status, limit)
        except AnswerTooLarge:
            response.close()  # drop the connection: draining the rest would read what the cap refuses
            raise

    async def aclose(self) -> None:
        """Close the session and its connections (a later `send` opens a new one)."""
        session, closer = self._session, self._closer
        self._session = self._closer = None
        if session is not None:
            await session.close()
        if closer is not None:
            await closer.aclose()  # type: ignore[attr-defined]

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The current session, if one is open."""
        return self._session
