"""The client every judge and prompt-task call goes through: pacing, concurrency, retries, usage.

`JudgeClient.post` sends one JSON request to the OpenAI-compatible endpoint through a transport that
applies the package's rules (see `dagster_evals.engine.http`), over one keep-alive aiohttp session per event loop
(`dagster_evals.judges.sessions`, which honours `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`): at most
`max_concurrency` calls in flight, client-side pacing to `requests_per_minute`, retries of 408/429/5xx and
connection errors with
exponential backoff and jitter, honouring `Retry-After` (a 429 also delays every later call). Each answer's
`usage`, model and latency are recorded (`dagster_evals.engine.usage`). Errors are the package's `AuthError`
(naming the env var), `RateLimitedError` or `PlatformError`, always with the API key redacted.

Answers are returned as the plain JSON the API sent (the shapes of openai-python@v3.57.0:
`types/chat/chat_completion.py`, `types/create_embedding_response.py`,
`types/moderation_create_response.py`), which is what autoevals reads; skipping the SDK's typed request
transformation and response models keeps a judge call's client-side cost small.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import re
import ssl
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dagster_evals.engine import usage
from dagster_evals.engine.errors import AuthError, PlatformError, RateLimitedError
from dagster_evals.engine.http import REDACTED, RETRY_STATUSES, RetryPolicy, error_message, parse_retry_after
from dagster_evals.engine.version import __version__
from dagster_evals.judges.sessions import AnswerTooLarge, SessionSender, read_capped
from dagster_evals.judges.settings import JudgeSettings

logger = logging.getLogger("dagster_evals.judges")
PLATFORM = "judge endpoint"
LATENCY = "dagster_evals.latency_s"
# Keys as OpenAI echoes them in 401 messages ("sk-abc***xyz"), and any bearer-looking token.
_KEY_PATTERN = re.compile(r"\b(sk|pk|bt|kw)-[A-Za-z0-9_\-*]{4,}")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One default-verifying SSL context for every session (building one reads the CA bundle: ~0.1 s;
    `SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured)."""
    return httpx.create_ssl_context()


Headers = list[tuple[str, str]]
RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Answer:
    """One answer of the endpoint: status, headers (minus body framing), body and latency of the attempt."""

    status: int
    headers: RawHeaders
    content: bytes
    latency_s: float
    request: httpx.Request | None = None

    def response(self, request: httpx.Request | None = None) -> httpx.Response:
        """The answer as an `httpx.Response` (for error messages and `Retry-After`)."""
        return httpx.Response(
            self.status,
            headers=self.headers,
            content=self.content,
            request=request or self.request,
            extensions={LATENCY: self.latency_s},
        )


class _Pacer:
    """Async twin of `dagster_evals.engine.http.RateLimiter`: spaces call starts evenly, honours push-backs."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        if self._next <= now and not self.interval:
            return
        start = max(now, self._next)
        self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)

    def push_back(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


class GovernedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport with the concurrency limit, pacing, retries and the latency of each call.

    Without an `inner` transport, requests go over the keep-alive aiohttp session of
    `dagster_evals.judges.sessions`.
    """

    def __init__(self, settings: JudgeSettings, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.inner = inner
        self.sender = (
            SessionSender(_ssl_context(), settings.timeout_s, settings.max_answer_bytes)
            if inner is None
            else None
        )
        self._timeout = {"timeout": httpx.Timeout(settings.timeout_s).as_dict()}
        self.semaphore = asyncio.Semaphore(settings.max_concurrency)
        self.pacer = _Pacer(settings.requests_per_minute)
        self.policy = RetryPolicy(max_retries=settings.max_retries, backoff_base_s=settings.backoff_base_s)
        self.rng = random.Random()
        self.retries = 0

    async def _send(self, url: httpx.URL, headers: Headers, content: bytes) -> tuple[int, RawHeaders, bytes]:
        if self.sender is not None:
            return await self.sender.send(str(url), headers, content)
        assert self.inner is not None
        request = httpx.Request("POST", url, headers=headers, content=content, extensions=self._timeout)
        response = await self.inner.handle_async_request(request)
        try:
            body = await read_capped(
                response.aiter_bytes(), response.status_code, self.settings.max_answer_bytes
            )
        finally:
            await response.aclose()
        kept = [
            (k, v)
            for k, v in response.headers.raw
            if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
        ]
        return response.status_code, kept, body

    async def post(self, url: httpx.URL, headers: Headers, content: bytes) -> Answer:
        """POST `content` under the concurrency limit and pacing, retrying what is retryable; the last answer.

        A successful answer is returned as its status, body and latency only: building `httpx` request and
        response objects for it would cost more CPU than the rest of the call's client side.
        """
        async with self.semaphore:
            attempt = 0
            while True:
                await self.pacer.acquire()
                started = time.perf_counter()
                retry_after: float | None = None
                try:
                    status, raw, body = await self._send(url, headers, content)
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    if attempt >= self.policy.max_retries:
                        raise
                    reason = f"{type(exc).__name__}"
                else:
                    latency = time.perf_counter() - started
                    if status < 400:
                        return Answer(status, raw, body, latency)
                    answer = Answer(status, raw, body, latency, httpx.Request("POST", url))
                    if status not in RETRY_STATUSES or attempt >= self.policy.max_retries:
                        return answer
                    response = answer.response()
                    retry_after = parse_retry_after(response)
                    if status == 429 and retry_after is not None:
                        self.pacer.push_back(retry_after)
                    reason = f"HTTP {status}"
                wait = self.policy.backoff(attempt, retry_after, self.rng)
                logger.warning(
                    "%s POST %s: %s; retry %d/%d in %.2fs",
                    PLATFORM, url.path, reason, attempt + 1, self.policy.max_retries, wait,
                )  # fmt: skip
                self.retries += 1
                attempt += 1
                await asyncio.sleep(wait)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The same, as an `httpx` transport (POST requests)."""
        content = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        return (await self.post(request.url, headers, content)).response(request)

    async def aclose(self) -> None:
        if self.sender is not None:
            await self.sender.aclose()
        if self.inner is not None:
            await self.inner.aclose()


def _record(request: Mapping[str, Any], answer: Any, latency_s: float, settings: JudgeSettings) -> None:
    model = request.get("model")
    usage.record_answer(
        answer,
        latency_s,
        settings.base_url,
        model=str(model) if model else None,
        require_usage=False,
        price_per_million=settings.price_per_million,
    )


class JudgeClient:
    """Calls one OpenAI-compatible endpoint; one transport per event loop (sessions and their connections
    are bound to a loop)."""

    def __init__(self, settings: JudgeSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._inner = transport
        self._transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GovernedTransport] = (
            weakref.WeakKeyDictionary()
        )
        self._urls: dict[str, httpx.URL] = {}
        self._header_cache: Headers | None = None

    def __repr__(self) -> str:
        return f"JudgeClient(base_url={self.settings.base_url!r}, model={self.settings.model!r}, api_key={REDACTED!r})"

    def transport(self) -> GovernedTransport:
        """The governed transport of the running event loop."""
        loop = asyncio.get_running_loop()
        transport = self._transports.get(loop)
        if transport is None:
            transport = self._transports[loop] = GovernedTransport(self.settings, self._inner)
        return transport

    def _headers(self) -> Headers:
        if self._header_cache is None:
            headers = [
                ("Authorization", f"Bearer {self.settings.require_key()}"),
                ("User-Agent", f"dagster-evals/{__version__}"),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
            ]
            if self.settings.organization:
                headers.append(("OpenAI-Organization", self.settings.organization))
            self._header_cache = headers
        return self._header_cache

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST `body` to `path` (e.g. `chat/completions`) and return the answer's JSON, recording usage.

        The request goes straight to the governed transport (no `httpx.AsyncClient` layer: no cookies,
        redirects or auth flows to run per call).
        """
        path = path.lstrip("/")
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.settings.base_url.rstrip("/") + "/" + path)
        content = json.dumps(dict(body), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = [*self._headers(), ("Content-Length", str(len(content)))]
        try:
            answer = await self.transport().post(url, headers, content)
        except AnswerTooLarge as exc:
            raise PlatformError(
                PLATFORM,
                exc.status,
                "POST",
                url.path,
                f"the answer is larger than max_answer_bytes ({exc.limit:,} bytes); stopped reading after "
                f"{exc.bytes_read:,} bytes. Raise max_answer_bytes on the judge endpoint if such answers are "
                "expected",
            ) from None
        except httpx.HTTPError as exc:
            raise PlatformError(
                PLATFORM, None, "POST", url.path, self.redact(f"{type(exc).__name__}: {exc}")
            ) from None
        if answer.status >= 400:
            raise self._error(answer.response(), path)
        try:
            reply = json.loads(answer.content)
        except ValueError:
            raise PlatformError(PLATFORM, answer.status, "POST", url.path, "malformed JSON body") from None
        _record(body, reply, answer.latency_s, self.settings)
        return reply

    def _error(self, response: httpx.Response, path: str) -> PlatformError:
        endpoint = response.request.url.path if response.request is not None else f"/{path}"
        message = self.redact(error_message(response))[:500]
        status = response.status_code
        if status in (401, 403):
            return AuthError(PLATFORM, status, "POST", endpoint, message, self.settings.api_key_env)
        if status == 429:
            error = RateLimitedError(
                PLATFORM, 429, "POST", endpoint, f"rate limited after retries: {message}"
            )
            error.retry_after = parse_retry_after(response)
            return error
        return PlatformError(PLATFORM, status, "POST", endpoint, message)

    def redact(self, text: str) -> str:
        if self.settings.api_key:
            text = text.replace(self.settings.api_key, REDACTED)
        return _KEY_PATTERN.sub(REDACTED, text)

    def llm_client(self) -> Any:
        """An autoevals `LLMClient` whose completions, embeddings and moderations go through `post`."""
        return _EndpointLLMClient(openai=None, endpoint=self)


def _llm_client_class() -> type:
    from autoevals.oai import LLMClient

    class _Never(Exception):
        """Stands in for autoevals' own retry on RateLimitError: the transport already retried."""

    @dataclass
    class EndpointLLMClient(LLMClient):
        endpoint: Any = None

        def __post_init__(self) -> None:
            endpoint = self.endpoint

            async def complete(**kwargs: Any) -> dict[str, Any]:
                kwargs.pop("use_responses_api", None)
                return await endpoint.post("chat/completions", kwargs)

            async def embed(**kwargs: Any) -> dict[str, Any]:
                return await endpoint.post("embeddings", kwargs)

            async def moderation(**kwargs: Any) -> dict[str, Any]:
                return await endpoint.post("moderations", kwargs)

            self.complete = complete
            self.embed = embed
            self.moderation = moderation
            self.RateLimitError = _Never
            self.is_async = True
            self._is_wrapped = False

    return EndpointLLMClient


class _LazyLLMClient:
    cls: type | None = None

    def __call__(self, **kwargs: Any) -> Any:
        if self.cls is None:
            self.cls = _llm_client_class()
        return self.cls(**kwargs)


_EndpointLLMClient = _LazyLLMClient()


_clients: dict[JudgeSettings, JudgeClient] = {}


def client_for(settings: JudgeSettings) -> JudgeClient:
    """The shared `JudgeClient` of `settings` (one per distinct settings in the process)."""
    client = _clients.get(settings)
    if client is None:
        client = _clients.setdefault(settings, JudgeClient(settings))
    return client
