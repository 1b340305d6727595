"""The client every judge and prompt-task call goes through: pacing, concurrency, retries, usage.

An `openai.AsyncOpenAI` whose HTTP transport applies the package's rules (see `dagster_evals.http`):
at most `max_concurrency` calls in flight, client-side pacing to `requests_per_minute`, retries of
408/429/5xx and connection errors with exponential backoff and jitter, honouring `Retry-After` (a 429
also delays every later call). The SDK's own retries are off so they never stack on ours. Each answered
call's `usage`, model and latency are recorded (`dagster_evals.usage`). Errors become the package's
`AuthError` / `RateLimitedError` / `PlatformError`, with the API key redacted and the env var named.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import weakref

import httpx
import openai

from dagster_evals import usage
from dagster_evals.errors import AuthError, PlatformError, RateLimitedError
from dagster_evals.http import REDACTED, RETRY_STATUSES, RetryPolicy, parse_retry_after
from dagster_evals.judges.settings import JudgeSettings
from dagster_evals.version import __version__

logger = logging.getLogger("dagster_evals.judges")
PLATFORM = "judge endpoint"
# Keys as OpenAI echoes them in 401 messages ("sk-abc***xyz"), and any bearer-looking token.
_KEY_PATTERN = re.compile(r"\b(sk|pk|bt|kw)-[A-Za-z0-9_\-*]{4,}")


class _Pacer:
    """Async twin of `dagster_evals.http.RateLimiter`: spaces call starts evenly, honours push-backs."""

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
    """Wraps an async transport with the concurrency limit, pacing, retries and usage recording."""

    def __init__(self, settings: JudgeSettings, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
            )
        )
        self.semaphore = asyncio.Semaphore(settings.max_concurrency)
        self.pacer = _Pacer(settings.requests_per_minute)
        self.policy = RetryPolicy(max_retries=settings.max_retries, backoff_base_s=settings.backoff_base_s)
        self.rng = random.Random()
        self.retries = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        async with self.semaphore:
            attempt = 0
            while True:
                await self.pacer.acquire()
                started = time.perf_counter()
                retry_after: float | None = None
                try:
                    response = await self.inner.handle_async_request(request)
                    content = await response.aread()
                    await response.aclose()
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    if attempt >= self.policy.max_retries:
                        raise
                    reason = f"{type(exc).__name__}"
                else:
                    if response.status_code not in RETRY_STATUSES or attempt >= self.policy.max_retries:
                        latency = time.perf_counter() - started
                        if response.status_code == 200:
                            _record(body, content, latency, self.settings.base_url)
                        headers = [
                            (k, v)
                            for k, v in response.headers.raw
                            if k.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
                        ]
                        return httpx.Response(
                            response.status_code, headers=headers, content=content, request=request
                        )
                    retry_after = parse_retry_after(response)
                    if response.status_code == 429 and retry_after is not None:
                        self.pacer.push_back(retry_after)
                    reason = f"HTTP {response.status_code}"
                wait = self.policy.backoff(attempt, retry_after, self.rng)
                logger.warning(
                    "%s %s %s: %s; retry %d/%d in %.2fs",
                    PLATFORM, request.method, request.url.path, reason, attempt + 1, self.policy.max_retries, wait,
                )  # fmt: skip
                self.retries += 1
                attempt += 1
                await asyncio.sleep(wait)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _record(request_body: bytes, content: bytes, latency_s: float, api_url: str) -> None:
    try:
        answer = json.loads(content)
    except ValueError:
        return
    if not isinstance(answer, dict):
        return
    model = answer.get("model")
    if model is None:
        try:
            model = json.loads(request_body).get("model")
        except (ValueError, AttributeError):
            model = None
    raw = answer.get("usage") or {}
    prompt = int(raw.get("prompt_tokens", raw.get("input_tokens", 0)) or 0)
    completion = int(raw.get("completion_tokens", raw.get("output_tokens", 0)) or 0)
    usage.record_call(str(model) if model else None, prompt, completion, latency_s, api_url)


class JudgeClient:
    """One `AsyncOpenAI` per event loop for a `JudgeSettings` (connection pools are bound to a loop)."""

    def __init__(self, settings: JudgeSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._inner = transport
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"JudgeClient(base_url={self.settings.base_url!r}, model={self.settings.model!r}, api_key={REDACTED!r})"

    def openai(self) -> openai.AsyncOpenAI:
        """The `AsyncOpenAI` client of the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            transport = GovernedTransport(self.settings, self._inner)
            client = openai.AsyncOpenAI(
                api_key=self.settings.require_key(),
                base_url=self.settings.base_url,
                organization=self.settings.organization,
                max_retries=0,
                timeout=self.settings.timeout_s,
                # The SDK accepts a legacy `httpx` client next to its own `httpx2` (openai._httpx2).
                http_client=httpx.AsyncClient(transport=transport, timeout=self.settings.timeout_s),  # pyright: ignore[reportArgumentType]
                default_headers={"User-Agent": f"dagster-evals/{__version__}"},
            )
            self._clients[loop] = client
        return client

    def redact(self, text: str) -> str:
        if self.settings.api_key:
            text = text.replace(self.settings.api_key, REDACTED)
        return _KEY_PATTERN.sub(REDACTED, text)

    def translate(self, exc: BaseException) -> BaseException:
        """The package error for an `openai` SDK error (key redacted, env var named); others unchanged."""
        if isinstance(exc, openai.APIStatusError):
            method = exc.request.method if exc.request is not None else "POST"
            path = exc.request.url.path if exc.request is not None else "?"
            message = exc.message
            body = exc.body
            if isinstance(body, dict):
                message = str(body.get("message") or body.get("error", {}).get("message") or message)
            message = self.redact(message)[:500]
            if exc.status_code in (401, 403):
                return AuthError(PLATFORM, exc.status_code, method, path, message, self.settings.api_key_env)
            if exc.status_code == 429:
                error = RateLimitedError(
                    PLATFORM, 429, method, path, f"rate limited after retries: {message}"
                )
                error.retry_after = parse_retry_after(exc.response)  # pyright: ignore[reportArgumentType]
                return error
            return PlatformError(PLATFORM, exc.status_code, method, path, message)
        if isinstance(exc, openai.APIConnectionError):
            path = exc.request.url.path if exc.request is not None else "?"
            return PlatformError(PLATFORM, None, "POST", path, self.redact(f"{type(exc).__name__}: {exc}"))
        return exc


_clients: dict[JudgeSettings, JudgeClient] = {}


def client_for(settings: JudgeSettings) -> JudgeClient:
    """The shared `JudgeClient` of `settings` (one per distinct settings in the process)."""
    client = _clients.get(settings)
    if client is None:
        client = _clients.setdefault(settings, JudgeClient(settings))
    return client
