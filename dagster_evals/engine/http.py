"""One HTTP client core for every platform: auth, timeouts, retries, pacing, redaction.

- Retries 408/429/5xx, connection errors, timeouts and truncated JSON bodies with exponential backoff and
  full jitter, honouring `Retry-After` (header, or a `retry_after` field in a JSON body).
- Retries only requests that are safe to repeat: GET/HEAD/PUT/DELETE, and POSTs the caller marks
  `idempotent=True` (e.g. inserts with client-chosen ids). A 429 is retried for any request: the server
  throttles before it does anything.
- Paces requests on the client (`rate_limit_per_minute`) so large jobs stay under a platform's limit.
- Never puts the API key in a log line, an error or a repr.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dagster_evals.engine.errors import (
    AuthError,
    DagsterEvalsError,
    NotFoundError,
    PlatformError,
    RateLimitedError,
)
from dagster_evals.engine.version import __version__

logger = logging.getLogger("dagster_evals.engine.http")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
REDACTED = "***"
# Longest platform message kept in an error, counted after the key is redacted.
MESSAGE_MAX_CHARS = 500
# Keys shorter than this are not searched for in text (they would match ordinary words).
MIN_REDACTED_KEY_CHARS = 6
# `user:password@` in a URL, left out wherever a URL is shown.
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def shown_url(url: str) -> str:
    """`url` as it may appear in messages: without `user:password@`."""
    return _URL_USERINFO.sub("", url)


class InvalidKeyError(AuthError):
    """The configured API key cannot be sent (empty after stripping, or with control characters).

    Raised before any request; names the env var and never shows the key.
    """

    def __init__(self, platform: str, env_var: str, problem: str) -> None:
        self.platform = platform
        self.status = None
        self.method = ""
        self.endpoint = ""
        self.env_var = env_var
        self.platform_message = problem
        DagsterEvalsError.__init__(
            self,
            f"{platform}: the API key {problem}; set the {env_var} environment variable to the key alone "
            "(the key is not shown here)",
        )


def clean_api_key(api_key: str, platform: str, env_var: str) -> str:
    """The key without surrounding whitespace; `InvalidKeyError` when nothing is left or it cannot be
    sent in a header (a control or non-ASCII character inside it)."""
    key = api_key.strip()
    if not key:
        raise InvalidKeyError(platform, env_var, "is empty or only whitespace")
    for position, char in enumerate(key, start=1):
        if not (0x20 <= ord(char) < 0x7F):
            kind = "a control character" if ord(char) < 0x20 or ord(char) == 0x7F else "a non-ASCII character"
            raise InvalidKeyError(platform, env_var, f"has {kind} at position {position} of {len(key)}")
    return key


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry."""

    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        cap = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return rng.uniform(cap / 2, cap)


class RateLimiter:
    """Spaces requests evenly so at most `per_minute` start in any minute (thread-safe)."""

    def __init__(self, per_minute: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def push_back(self, seconds: float) -> None:
        """Delay every later request by `seconds` (after a 429)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or HTTP date) or a JSON `retry_after` field."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return float(header)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header)
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(body, Mapping):
        for key in ("retry_after", "retryAfter"):
            value = body.get(key)
            if isinstance(value, int | float):
                return float(value)
    return None


def error_message(response: httpx.Response, redact: Callable[[str], str] = lambda text: text) -> str:
    """The platform's own error message from a response body, redacted by `redact` and then shortened
    (in that order, so that a secret cut in two by the shortening is still removed whole)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        text = response.text or response.reason_phrase or ""
    else:
        text = json.dumps(body)
        if isinstance(body, Mapping):
            for key in ("error", "detail", "message", "errors"):
                if key in body:
                    value = body[key]
                    if isinstance(value, Mapping):
                        value = value.get("message", value)
                    text = str(value)
                    break
    return redact(text)[:MESSAGE_MAX_CHARS]


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


class HttpClient:
    """Synchronous JSON client for one platform's REST API."""

    def __init__(
        self,
        *,
        platform: str,
        base_url: str,
        api_key: str,
        env_var: str,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_limit_per_minute: float | None = None,
        auth_scheme: str = "Bearer",
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        self.platform = platform
        self.base_url = base_url.rstrip("/")
        self.env_var = env_var
        self.retry = retry or RetryPolicy()
        self.limiter = RateLimiter(rate_limit_per_minute)
        self._secrets = tuple(
            sorted({k for k in (api_key, api_key.strip()) if len(k) >= MIN_REDACTED_KEY_CHARS}, key=len)
        )[::-1]
        api_key = clean_api_key(api_key, platform, env_var)
        self._rng = random.Random(seed)
        self.requests_sent = 0
        self.retries = 0
        self.rate_limited = 0
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            headers={
                "Authorization": f"{auth_scheme} {api_key}",
                "User-Agent": f"dagster-evals/{__version__}",
                "Accept": "application/json",
            },
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HttpClient(platform={self.platform!r}, base_url={shown_url(self.base_url)!r}, api_key={REDACTED!r})"

    def redact(self, text: str) -> str:
        """`text` with the API key (as configured, and stripped) replaced by `***`."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_of(self, path: str) -> str:
        """The full URL a request to `path` goes to, as shown in messages (no credentials, key redacted)."""
        if "://" in path:
            return self.redact(shown_url(path))
        return self.redact(shown_url(self.base_url + "/" + path.lstrip("/")))

    def _raise_for(self, method: str, path: str, response: httpx.Response) -> None:
        message = error_message(response, self.redact)
        status = response.status_code
        if status in (401, 403):
            raise AuthError(self.platform, status, method, path, message, self.env_var)
        if status == 404:
            raise NotFoundError(self.platform, status, method, path, message)
        raise PlatformError(self.platform, status, method, path, message)

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        parse_json: bool,
    ) -> Any:
        self.limiter.acquire()
        self.requests_sent += 1
        # Errors are raised outside the `except` blocks: httpx's own exception (whose text may quote a
        # header) is then neither the cause nor the context of anything the caller sees.
        failure: Exception | None = None
        response: httpx.Response | None = None
        try:
            response = self._client.request(
                method, path, params=params, json=json_body, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            failure = _Retryable(f"timed out waiting for {self.url_of(path)} ({type(exc).__name__})")
        except httpx.TransportError as exc:
            failure = _Retryable(
                f"connection error to {self.url_of(path)} ({type(exc).__name__}: {self.redact(str(exc))})"
            )
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            failure = PlatformError(
                self.platform,
                None,
                method,
                path,
                f"cannot send to {self.url_of(path)} ({type(exc).__name__}: {self.redact(str(exc))})",
            )
        if failure is not None or response is None:
            raise failure or PlatformError(self.platform, None, method, path, "no response")
        if response.status_code in RETRY_STATUSES:
            retry_after = parse_retry_after(response)
            if retry_after is not None:
                retry_after = min(max(retry_after, 0.0), self.retry.max_retry_after_s)
            if response.status_code == 429:
                self.rate_limited += 1
                if retry_after is not None:
                    self.limiter.push_back(retry_after)
            raise _Retryable(
                f"HTTP {response.status_code}: {error_message(response, self.redact)}",
                retry_after,
                response.status_code,
            )
        if response.status_code >= 400:
            self._raise_for(method, path, response)
        if not parse_json:
            return response
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            failure = _Retryable(f"HTTP {response.status_code} with a malformed JSON body")
        raise failure

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        parse_json: bool = True,
    ) -> Any:
        """Send a request and return the decoded JSON body (None for an empty body).

        Raises `AuthError` (401/403), `NotFoundError` (404), `RateLimitedError` (429 after the retry
        budget) or `PlatformError` (anything else), each naming status, endpoint and message.
        """
        method = method.upper()
        can_retry = idempotent if idempotent is not None else method in SAFE_METHODS
        attempt = 0
        while True:
            try:
                return self._attempt(method, path, params, json, content, headers, parse_json)
            except _Retryable as exc:
                # A 429 is answered before the server acts, so even a request unsafe to repeat is retried.
                if not (can_retry or exc.status == 429) or attempt >= self.retry.max_retries:
                    if exc.status == 429:
                        error = RateLimitedError(
                            self.platform,
                            429,
                            method,
                            path,
                            f"rate limited after {attempt + 1} attempts: {exc.reason}",
                        )
                        error.retry_after = exc.retry_after
                        raise error from None
                    suffix = (
                        f" (after {attempt + 1} attempts)"
                        if can_retry
                        else " (not retried: not safe to repeat)"
                    )
                    raise PlatformError(
                        self.platform, exc.status, method, path, exc.reason + suffix
                    ) from None
                wait = self.retry.backoff(attempt, exc.retry_after, self._rng)
                logger.warning(
                    "%s %s %s: %s; retry %d/%d in %.2fs",
                    self.platform,
                    method,
                    path,
                    exc.reason,
                    attempt + 1,
                    self.retry.max_retries,
                    wait,
                )
                self.retries += 1
                attempt += 1
                time.sleep(wait)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)
