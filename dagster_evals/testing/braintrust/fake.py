"""A faithful fake Braintrust server (ASGI) for tests and benchmarks.

Serves the REST API (`/v1/project`, `/v1/dataset`, `/v1/experiment`, `/v1/prompt`, `/v1/function`,
`/v1/project_logs`, `/v1/eval`) and the official SDK's write path (`POST /api/apikey/login`, `GET /version`,
`POST /logs3`), so the `braintrust` SDK and dagster-evals can be run against the same server.

What it models:
- Transactions: every write request is one transaction with a new, increasing `_xact_id` (numeric string).
  Rows keep their history, so `version=<xact id>` reads a dataset exactly as it was, deletes included.
- Upsert by `id` (replace, or deep merge with `_is_merge`), `_object_delete` tombstones, `_array_delete`.
- `fetch` pages newest-first with an opaque `cursor` (returned while a page is non-empty); the first page
  pins the version, so a paginated read is consistent while writes go on. Each event counts as one trace
  for `limit`.
- Experiment summaries computed from the inserted rows, compared with `comparison_experiment_id`, else
  `base_exp_id`, else the project's previous experiment. Rows are matched by `origin.id`, else by input.
- `POST /v1/eval` really runs: data from `dataset_rows`, a dataset (by id or project/name, at a version)
  or an experiment; tasks and scorers from python inline code (run in-process with a restricted set of
  builtins; the function called is `handler`, else the last one defined, with whichever of `input`,
  `output`, `expected`, `metadata` it accepts), saved code/global functions, the autoevals global
  functions that need no LLM (ExactMatch, Levenshtein, NumericDiff, JSONDiff, ListContains), and prompts
  (rendered deterministically: the last message with `{{input}}`-style mustache variables filled in).
  Prompt sessions are unknown to the fake (404); LLM global functions answer 400.
  With `stream: true` it answers `text/event-stream`: `event: start` (summary without scores),
  `event: summary` (the final summary, snake_case JSON) and `event: done` (empty data); an `event: error`
  carries a message if the run fails. (The real event names are not published; this is the fake's
  choice.)
The code is cut by job: `objects.py` (projects and the shared object CRUD and lists), `events.py` (insert,
fetch, the SDK's `/logs3`), `experiments.py` (experiments and their summaries), `functions.py` (prompts,
functions, running them), `evals.py` (`/v1/eval`); the HTTP plumbing is the shared toolkit
`dagster_evals.testing.asgi`.

- Errors: `{"error": message}` with 400 (malformed JSON, unknown/missing fields, wrong types), 401 (bad
  or missing key), 404 (unknown id or route), 413 (request over `max_request_bytes`).
- Faults: `fake.faults` is a `FaultInjector` (429, 5xx, dropped connections, truncated bodies);
  `fake.hold_evals` holds `POST /v1/eval` requests until released (a request that lands late);
  `fake.eval_drops_metadata` makes `/v1/eval` create its experiment without the request's `metadata`.
- Counters: `fake.requests` (per "METHOD /route"), `fake.events_written` (events per object kind),
  the last request bodies per route in `fake.bodies` (unless `record_bodies=False`). `GET /_fake/stats` returns the counters (fake only).
- Links: the summaries' `project_url` / `experiment_url` / `dataset_url` open a minimal page of the fake's
  own (HTML for a browser, JSON otherwise; `app_pages.py`).

Examples:
    .. code-block:: python

        fake = BraintrustFake(api_key="test-key")
        with ServerThread(fake.app) as server:
            resource = BraintrustResource(api_key="test-key", api_url=server.url, project="demo")
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dagster_evals.testing.asgi import ApiError, Call, FakeAPI, Route, compact_json, credential, decode_json
from dagster_evals.testing.braintrust.app_pages import AppPageRoutes
from dagster_evals.testing.braintrust.evals import EvalRoutes
from dagster_evals.testing.braintrust.events import EventRoutes
from dagster_evals.testing.braintrust.objects import FAKE_USER_ID
from dagster_evals.testing.braintrust.openapi import SpecError
from dagster_evals.testing.braintrust.store import XACT_START, EventStore, HttpError, Obj

DEFAULT_MAX_REQUEST_BYTES = 6 * 1024 * 1024
RECORDED_BODIES = 50
WRITE_METHODS = ("POST", "PATCH", "PUT")

__all__ = ["FAKE_USER_ID", "BraintrustFake"]


class BraintrustFake(EventRoutes, EvalRoutes, AppPageRoutes, FakeAPI):
    """In-memory Braintrust API. `app` is the ASGI app (wrapped in a `FaultInjector`, `faults`)."""

    exact_paths = False
    validation_errors = (SpecError,)

    def __init__(
        self,
        api_key: str | tuple[str, ...] = "test-key",
        *,
        org_name: str = "fake-org",
        app_url: str | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        logs3_payload_max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        record_bodies: bool = True,
        repeat_page_boundary: bool = True,
    ) -> None:
        self.api_keys = {api_key} if isinstance(api_key, str) else set(api_key)
        self.org_name = org_name
        self.org_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, org_name))
        self.app_url = app_url
        self.max_request_bytes = max_request_bytes
        self.logs3_payload_max_bytes = logs3_payload_max_bytes
        self.record_bodies = record_bodies
        # A page after the first starts with the last event of the page before: a paginated read can see
        # a row twice, as on the real API (its cursor resumes at the boundary); clients must de-duplicate.
        self.repeat_page_boundary = repeat_page_boundary
        self.objects: dict[str, dict[str, Obj]] = defaultdict(dict)
        self.logs: dict[str, EventStore] = {}
        self._xact = XACT_START
        self._seq = 0
        self.events_written: Counter[str] = Counter()
        self.bodies: dict[str, deque[Any]] = defaultdict(lambda: deque(maxlen=RECORDED_BODIES))
        # Called (from the eval's worker thread) after each row of a `/v1/eval` run is written, with the
        # number written so far: tests use it to hold a run mid-way on an event.
        self.eval_row_hook: Callable[[int], None] | None = None
        # When set, `POST /v1/eval` waits for this event before it takes effect (a request applied late,
        # after the client gave up).
        self.hold_evals: threading.Event | None = None
        # A fault option: `POST /v1/eval` creates its experiment without the request's `metadata`, so a
        # client's run token in it never shows on the experiment (the spec's `RunEval.metadata` exists, but
        # nothing published says it is copied onto the experiment); the experiment's name, dataset and
        # creation time are the evidence left.
        self.eval_drops_metadata = False
        # Called after each request is handled, with ("METHOD /route", path arguments, body): tests use it
        # to interleave another client's write at an exact point.
        self.after_request: Callable[[str, list[str], Any], None] | None = None
        super().__init__(
            [
                *self._bootstrap_routes(),
                *self._project_routes(),
                *self._dataset_routes(),
                *self._experiment_routes(),
                *self._function_routes(),
                *self._insert_fetch_routes(),
                *self._eval_routes(),
                *self._app_page_routes(),
            ]
        )

    @property
    def routes(self) -> list[Route]:
        return self.router.routes

    def reset_counters(self) -> None:
        """Forget the requests, written events and bodies counted so far (the stored data stays)."""
        with self.lock:
            self.requests.clear()
            self.events_written.clear()
            self.bodies.clear()

    # -- the toolkit's hooks: Braintrust's envelope, bearer keys, strict JSON bodies ------------------------
    def error(self, status: int, message: str, **extra: Any) -> ApiError:
        return HttpError(status, message)

    def invalid_request(self, exc: Exception) -> ApiError:
        return HttpError(400, f"invalid request body: {exc}")

    def not_found(self, request: Request) -> Response:
        return JSONResponse({"error": f"no route {request.method} {request.url.path}"}, status_code=404)

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return self.not_found(request)

    def authenticate(self, call: Call) -> None:
        if (credential(call.request) or "") not in self.api_keys:
            raise HttpError(
                401, "Invalid authorization token: pass a valid API key as 'Authorization: Bearer'"
            )

    def read_body(self, call: Call) -> Any:
        if call.request.method not in WRITE_METHODS:
            return None
        if len(call.raw) > self.max_request_bytes:
            raise HttpError(
                413, f"request body of {len(call.raw)} bytes exceeds the limit of {self.max_request_bytes}"
            )
        try:
            body = decode_json(call.raw, strict=True)
        except ValueError:
            raise HttpError(400, "request body is not valid JSON") from None
        if self.record_bodies:
            with self.lock:
                self.bodies[call.key].append(body)
        return body

    async def respond(self, call: Call, result: Any) -> Response:
        if self.after_request is not None:
            self.after_request(call.key, call.arguments, call.body)
        return result if isinstance(result, Response) else compact_json(result)

    # -- the official SDK's bootstrap, and the fake's own counters ------------------------------------------
    def _bootstrap_routes(self) -> list[Route]:
        return [
            Route("GET", "/_fake/stats", self._stats, public=True),
            Route("POST", "/api/apikey/login", self._login),
            Route("GET", "/version", self._version),
            Route("GET", "/ping", self._ping),
            Route("POST", "/logs3", self._logs3),
        ]

    def _stats(self, request: Request, body: Any) -> dict:
        return {
            "requests": dict(self.requests),
            "events_written": dict(self.events_written),
            "faults": dict(self.faults.injected),
        }

    def _login(self, request: Request, body: Any) -> dict:
        # braintrust SDK 0.48.1 `logger.py` (`_check_org_info`) reads `org_info[].{id,name,api_url,proxy_url}`.
        base = str(request.base_url).rstrip("/")
        return {
            "org_info": [
                {
                    "id": self.org_id,
                    "name": self.org_name,
                    "api_url": base,
                    "proxy_url": base,
                    "git_metadata": None,
                }
            ]
        }

    def _version(self, request: Request, body: Any) -> dict:
        return {"logs3_payload_max_bytes": self.logs3_payload_max_bytes}

    def _ping(self, request: Request, body: Any) -> dict:
        return {"id": FAKE_USER_ID, "email": "fake@example.com"}
