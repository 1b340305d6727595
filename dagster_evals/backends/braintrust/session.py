"""Connection state shared by every Braintrust job: HTTP client, settings, projects, batched inserts."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from dagster_evals.backends.base import EvalPlatform, ProgressFn, _quiet
from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.client import BraintrustClient
from dagster_evals.engine.errors import (
    ConfigError,
    CountMismatchError,
    InputError,
)
from dagster_evals.engine.http import HttpClient, RetryPolicy

DEFAULT_PROJECT = "dagster-evals"
DEFAULT_INSERT_BATCH_SIZE = 1000
DEFAULT_INSERT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_REQUEST_CONCURRENCY = 4
EMPTY_VERSION = "0"
DEFAULT_EVAL_TIMEOUT_S = 3600.0
DEFAULT_LAUNCH_SETTLE_S = 10.0


logger = logging.getLogger("dagster_evals.braintrust")


class BraintrustSession(EvalPlatform):
    """Connection state shared by the Braintrust jobs: the HTTP client, settings, projects, batched inserts."""

    platform = "braintrust"

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = api.DEFAULT_API_URL,
        app_url: str = api.DEFAULT_APP_URL,
        org_name: str | None = None,
        project: str = DEFAULT_PROJECT,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        rate_limit_per_minute: float | None = None,
        insert_batch_size: int = DEFAULT_INSERT_BATCH_SIZE,
        insert_max_bytes: int = DEFAULT_INSERT_MAX_BYTES,
        request_concurrency: int = DEFAULT_REQUEST_CONCURRENCY,
        stream_evals: bool = False,
        collect_git: bool = True,
        transport: Any = None,
        eval_timeout_s: float = DEFAULT_EVAL_TIMEOUT_S,
        launch_settle_s: float = DEFAULT_LAUNCH_SETTLE_S,
    ) -> None:
        if not api_key:
            raise ConfigError(f"no Braintrust API key: set the {api.ENV_API_KEY} environment variable")
        if insert_batch_size < 1 or insert_max_bytes < 1024 or request_concurrency < 1:
            raise ConfigError(
                "insert_batch_size and request_concurrency must be at least 1, insert_max_bytes at least 1024"
            )
        self.http = HttpClient(
            platform="braintrust",
            base_url=api_url,
            api_key=api_key,
            env_var=api.ENV_API_KEY,
            timeout_s=timeout_s,
            retry=retry,
            rate_limit_per_minute=rate_limit_per_minute,
            transport=transport,
        )
        self.client = BraintrustClient(self.http, org_name=org_name)
        self.app_url = app_url.rstrip("/")
        self.org_name = org_name
        self.default_project = project
        self.insert_batch_size = insert_batch_size
        self.insert_max_bytes = insert_max_bytes
        self.request_concurrency = request_concurrency
        self.stream_evals = stream_evals
        self.collect_git = collect_git
        if eval_timeout_s <= 0 or launch_settle_s < 0:
            raise ConfigError("eval_timeout_s must be positive and launch_settle_s not negative")
        self.eval_timeout_s = eval_timeout_s
        self.launch_settle_s = launch_settle_s
        self._projects: dict[str, api.Project] = {}
        self._clocks: dict[str, api.Dataset] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"BraintrustPlatform(api_url={self.http.base_url!r}, project={self.default_project!r})"

    def close(self) -> None:
        self.client.close()

    @property
    def requests_sent(self) -> int:
        return self.http.requests_sent

    # -- projects ---------------------------------------------------------------------------------
    def project(self, name: str | None = None) -> api.Project:
        """The project called `name` (default: the configured one), created if missing."""
        name = name or str(self.default_project)
        with self._lock:
            cached = self._projects.get(name)
        if cached is not None:
            return cached
        project = self.client.create_project(api.CreateProject(name=name))
        with self._lock:
            self._projects[name] = project
        return project

    # -- batched inserts --------------------------------------------------------------------------
    def _check_size(self, row_id: str, encoded: bytes) -> None:
        if len(b'{"events":[]}') + len(encoded) > self.insert_max_bytes:
            raise InputError(
                f"row {row_id!r} is {len(encoded)} bytes once encoded, more than the {self.insert_max_bytes} "
                "bytes Braintrust accepts in one request (insert_max_bytes); shorten the row"
            )

    def _batches(self, events: Iterator[tuple[str, bytes]]) -> Iterator[tuple[list[str], bytes]]:
        """Group serialized events into request bodies within the row and byte limits."""
        overhead = len(b'{"events":[]}')
        ids: list[str] = []
        parts: list[bytes] = []
        size = overhead
        for row_id, encoded in events:
            self._check_size(row_id, encoded)
            if parts and (
                len(parts) >= self.insert_batch_size or size + len(encoded) + 1 > self.insert_max_bytes
            ):
                yield ids, b'{"events":[' + b",".join(parts) + b"]}"
                ids, parts, size = [], [], overhead
            ids.append(row_id)
            parts.append(encoded)
            size += len(encoded) + 1
        if parts:
            yield ids, b'{"events":[' + b",".join(parts) + b"]}"

    def _send_batches(
        self,
        path: str,
        events: Iterator[tuple[str, bytes]],
        *,
        total: int,
        progress: ProgressFn = _quiet,
        what: str = "rows",
    ) -> int:
        """POST the batches, up to `request_concurrency` at a time; returns the number of batches."""
        started = time.monotonic()
        sent = {"rows": 0, "batches": 0}

        def post(ids: list[str], body: bytes) -> int:
            response = self.client.insert_raw(path, body, idempotent=True)
            if len(response.row_ids) != len(ids):
                raise CountMismatchError(
                    f"Braintrust acknowledged {len(response.row_ids)} of {len(ids)} {what} sent to {path}"
                )
            return len(ids)

        with concurrent.futures.ThreadPoolExecutor(
            max_workers=self.request_concurrency, thread_name_prefix="braintrust-insert"
        ) as pool:
            pending: deque[concurrent.futures.Future[int]] = deque()

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    sent["rows"] += pending.popleft().result()
                    sent["batches"] += 1
                    if total > self.insert_batch_size:
                        elapsed = time.monotonic() - started
                        eta = elapsed / sent["rows"] * (total - sent["rows"]) if sent["rows"] else 0.0
                        progress(
                            f"sent {sent['rows']}/{total} {what} ({elapsed:.1f}s elapsed, ETA {eta:.1f}s)"
                        )

            try:
                for ids, body in self._batches(events):
                    pending.append(pool.submit(post, ids, body))
                    drain(self.request_concurrency * 2)
                drain(0)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return sent["batches"]

    @staticmethod
    def _encode(event: dict[str, Any]) -> bytes:
        """Strict JSON: a NaN/Infinity is refused with the row id instead of being sent as invalid JSON."""
        try:
            text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False)
        except ValueError:
            raise InputError(
                f"row {event.get('id')!r} holds NaN or Infinity, which JSON cannot carry; replace it "
                "(e.g. with null) in the source"
            ) from None
        return text.encode("utf-8")
