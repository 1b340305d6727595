"""A faithful fake of the Keywords AI (Respan) datasets, evaluators, prompts and request-logs API.

Serve it over real HTTP with `fake.serve()` (a `ServerThread`) or in-process with `fake.transport()`. Every
request is validated against the vendored extract of the published client (`spec.py`); where the docs
publish another path or body, both are served. What it reproduces:

- `Authorization: Bearer <key>`, otherwise 401 `{"detail": ...}`; paths exactly as published (a documented
  path without its trailing slash answers 404).
- Page-number pagination `{"count", "next", "previous", "results"}`, a page past the end → 404.
- Asynchronous log removal: `logs/delete/` and `logs/import/` (DELETE) answer "Logs are being removed from
  dataset in the background"; the logs disappear only after `delete_lag` further requests.
- Request logs listed without `start_time` cover only the last hour; filters on custom metadata are
  `metadata__<key>` (unknown fields are custom metadata).
- Eval reports in the docs shape (`{id, status, evaluator_slugs}`) or the generated client's (one task per
  evaluator with `status`, `score`, `evaluated_logs_count`), statuses stepping through `eval_statuses`.
- Scores on a dataset log as an object keyed by evaluator id; structured `expected_output` stored as its
  Python repr string; bulk errors as `{index, error}`.
- 60 requests/minute per organization (sliding window, `minute_s` real seconds long), 429 with
  `Retry-After`; fault injection (`fake.faults`) and per-endpoint counters (`fake.requests`).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dagster_evals.testing.faults import FaultInjector
from dagster_evals.testing.keywordsai.datasets import DatasetRoutes
from dagster_evals.testing.keywordsai.evals import EvalRoutes
from dagster_evals.testing.keywordsai.evaluators import FakeEvaluator, builtin_evaluators
from dagster_evals.testing.keywordsai.filters import FilterError
from dagster_evals.testing.keywordsai.spec import SpecError, check_body, check_query, endpoint
from dagster_evals.testing.server import ServerThread, in_process_transport

MAX_PAGE_SIZE = 100
MAX_REQUEST_LOG_PAGE_SIZE = 1000
INVALID_KEY = (
    "Your API key is invalid or expired, please check your API key at "
    "https://platform.keywordsai.co/platform/api/api-keys"
)


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.headers = dict(headers or {})
        self.body = {"detail": detail, **extra}


def now_iso(clock: Callable[[], datetime]) -> str:
    return clock().isoformat().replace("+00:00", "Z")


class KeywordsAIFake(DatasetRoutes, EvalRoutes):
    """In-memory Keywords AI server (an ASGI app wrapped in a `FaultInjector`).

    Args:
        api_keys: Keys the server accepts (one organization).
        rate_limit_per_minute: Requests allowed per organization in any `minute_s` window (None: no limit).
        minute_s: Real seconds in the fake's minute.
        clock: Time source for the rate limit, in seconds.
        now: Wall clock for timestamps and the request-log time window.
        eval_polls_to_complete: Deprecated spelling of a shorter `eval_statuses`; kept for old tests.
        eval_statuses: Statuses an eval run steps through, one per poll; the last one is final.
        eval_report_shape: `"spec"` (tasks per evaluator, the generated client) or `"docs"`.
        delete_lag: Requests the fake serves after an accepted log removal before the logs disappear.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("test-key",),
        rate_limit_per_minute: int | None = 60,
        minute_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        eval_polls_to_complete: int | None = None,
        eval_statuses: Iterable[str] = ("pending", "running", "completed"),
        eval_report_shape: Literal["spec", "docs"] = "spec",
        delete_lag: int = 2,
    ) -> None:
        self.api_keys = set(api_keys)
        self.rate_limit_per_minute = rate_limit_per_minute
        self.minute_s = minute_s
        self.clock = clock
        self.now = now
        statuses = list(eval_statuses)
        if eval_polls_to_complete is not None:
            running = ["running"] * max(0, eval_polls_to_complete - 1)
            statuses = ["pending", *running, "completed"]
        self.eval_statuses = statuses
        self.eval_report_shape = eval_report_shape
        self.delete_lag = delete_lag
        self.hold_evals = False
        self.fail_next_evals = 0
        self.datasets: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, dict[str, dict[str, Any]]] = {}
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self.evaluators: dict[str, FakeEvaluator] = {}
        self.prompts: dict[str, dict[str, Any]] = {}
        self.prompt_versions: dict[str, list[dict[str, Any]]] = {}
        self.request_logs: list[dict[str, Any]] = []
        self.requests: Counter[str] = Counter()
        self.throttled = 0
        self.pending_deletes: list[tuple[int, str, list[str]]] = []
        self._served = 0
        self._history: dict[str, deque[float]] = {}
        self._seq = 0
        self._lock = threading.RLock()
        for evaluator in builtin_evaluators():
            self.add_evaluator(evaluator)
        app = Starlette(routes=self._routes(), exception_handlers={HTTPException: self._http_error})
        app.router.redirect_slashes = False
        self.faults = FaultInjector(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.faults(scope, receive, send)

    @property
    def app(self) -> KeywordsAIFake:
        return self

    def serve(self) -> ServerThread:
        """A `ServerThread` serving this fake on 127.0.0.1 (use as a context manager)."""
        return ServerThread(self)

    def transport(self) -> httpx.BaseTransport:
        """An in-process httpx transport (no socket)."""
        return in_process_transport(self)

    def _now(self) -> str:
        return now_iso(self.now)

    # -- state read by tests -----------------------------------------------------------------------------
    def dataset_logs(self, dataset_id: str) -> list[dict[str, Any]]:
        """The stored logs of a dataset, including logs whose removal is still pending."""
        with self._lock:
            return [dict(log) for log in self.logs.get(dataset_id, {}).values()]

    def settle(self) -> None:
        """Apply every pending background removal now."""
        with self._lock:
            for _, dataset_id, ids in self.pending_deletes:
                for log_id in ids:
                    self.logs.get(dataset_id, {}).pop(log_id, None)
            self.pending_deletes.clear()

    def _tick(self) -> None:
        self._served += 1
        due = [p for p in self.pending_deletes if p[0] <= self._served]
        self.pending_deletes = [p for p in self.pending_deletes if p[0] > self._served]
        for _, dataset_id, ids in due:
            for log_id in ids:
                self.logs.get(dataset_id, {}).pop(log_id, None)

    # -- seeding -------------------------------------------------------------------------------------------
    def add_evaluator(self, evaluator: FakeEvaluator) -> FakeEvaluator:
        with self._lock:
            evaluator.id = evaluator.id or str(uuid.uuid4())
            self.evaluators[evaluator.slug] = evaluator
            return evaluator

    # -- plumbing ------------------------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        d = "/api/datasets/{dataset_id}"
        # (method, path, handler, spec endpoint name)
        table: list[tuple[str, str, Callable[..., Any], str]] = [
            ("GET", "/api/datasets/list/", self._list_datasets, "list_datasets_get"),
            ("POST", "/api/datasets/list/", self._list_datasets, "list_datasets"),
            ("POST", "/api/datasets/", self._create_dataset, "create_dataset"),
            ("GET", d + "/", self._get_dataset, "retrieve_dataset"),
            ("PATCH", d + "/", self._patch_dataset, "update_dataset"),
            ("DELETE", d + "/", self._delete_dataset, "delete_dataset"),
            ("POST", d + "/logs/", self._create_log, "create_dataset_log"),
            ("POST", d + "/logs/bulk/", self._bulk_logs, "bulk_create_dataset_logs"),
            ("POST", d + "/logs/import/", self._import_logs, "import_dataset_logs"),
            ("DELETE", d + "/logs/import/", self._delete_logs, "remove_dataset_logs"),
            ("DELETE", d + "/logs/delete/", self._delete_logs, "remove_dataset_logs_delete"),
            ("GET", d + "/logs/list/", self._list_logs, "list_dataset_logs_get"),
            ("POST", d + "/logs/list/", self._list_logs, "list_dataset_logs"),
            ("DELETE", d + "/logs/{unique_id}/", self._delete_log, "delete_dataset_log"),
            ("POST", d + "/eval-reports/create", self._create_report, "run_eval_on_dataset_docs"),
            ("POST", d + "/eval-reports/create/", self._create_report, "run_eval_on_dataset"),
            ("GET", d + "/eval-reports/list/", self._list_reports, "list_dataset_eval_runs"),
            ("GET", "/api/evaluators/", self._list_evaluators, "list_evaluators"),
            ("GET", "/api/prompts/", self._list_prompts, "list_prompts_get"),
            ("POST", "/api/prompts/list/", self._list_prompts, "list_prompts"),
            ("GET", "/api/prompts/{prompt_id}/versions/", self._list_prompt_versions, "list_prompt_versions"),
            ("POST", "/api/request-logs/list/", self._list_request_logs, "list_request_logs"),
        ]
        by_path: dict[str, dict[str, tuple[Callable[..., Any], str]]] = {}
        for method, path, handler, name in table:
            by_path.setdefault(path, {})[method] = (handler, name)
        return [
            Route(path, self._endpoint(path, handlers), methods=list(handlers))
            for path, handlers in by_path.items()
        ]

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = "Not found." if status == 404 else f'Method "{request.method}" not allowed.'
        return JSONResponse({"detail": detail}, status_code=status)

    def _endpoint(
        self, template: str, handlers: Mapping[str, tuple[Callable[..., Any], str]]
    ) -> Callable[..., Any]:
        async def handle(request: Request) -> Response:
            key = f"{request.method} {template}"
            raw = await request.body()
            handler, name = handlers[request.method]
            with self._lock:
                self.requests[key] += 1
                self._tick()
                try:
                    self._authenticate(request)
                    if not template.startswith("/api/request-logs/"):
                        self._throttle("org")
                    rules = endpoint(name)
                    if name != "list_request_logs":  # its extra query parameters are filters
                        check_query(request.query_params, rules["query"])
                    body: Any = None
                    if raw:
                        try:
                            body = json.loads(raw)
                        except ValueError as exc:
                            raise ApiError(400, f"JSON parse error - {exc}") from None
                    if body is None:
                        body = {}
                    if isinstance(body, dict):
                        body = {k: v for k, v in body.items() if v is not None}
                    check_body(body, rules["body"])
                    status, payload = handler(request, body, **request.path_params)
                except (SpecError, FilterError) as exc:
                    return JSONResponse({"detail": str(exc)}, status_code=400)
                except ApiError as exc:
                    if exc.status == 429:
                        self.throttled += 1
                    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
            if status == 204:
                return Response(status_code=204)
            return JSONResponse(payload, status_code=status)

        return handle

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if not header:
            raise ApiError(401, "Authentication credentials were not provided.")
        if scheme not in ("Bearer", "Api-Key") or key.strip() not in self.api_keys:
            raise ApiError(401, INVALID_KEY)

    def _throttle(self, org: str) -> None:
        if not self.rate_limit_per_minute:
            return
        now = self.clock()
        history = self._history.setdefault(org, deque())
        while history and history[0] <= now - self.minute_s:
            history.popleft()
        if len(history) >= self.rate_limit_per_minute:
            wait = max(0.001, history[0] + self.minute_s - now)
            raise ApiError(
                429,
                f"Request was throttled. Expected available in {math.ceil(wait)} second(s).",
                headers={"Retry-After": f"{wait:.3f}"},
                retry_after=round(wait, 3),
            )
        history.append(now)

    def _page(
        self, request: Request, items: list[Any], max_size: int = MAX_PAGE_SIZE, default_size: int = 50
    ) -> dict[str, Any]:
        def number(name: str, default: int) -> int:
            raw = request.query_params.get(name)
            return int(raw) if raw is not None and raw.lstrip("-").isdigit() else default

        size = min(max(number("page_size", default_size), 1), max_size)
        page = number("page", 1)
        pages = max(1, math.ceil(len(items) / size))
        if page < 1 or page > pages:
            raise ApiError(404, "Invalid page.")

        def link(n: int) -> str:
            return str(request.url.include_query_params(page=n, page_size=size))

        return {
            "count": len(items),
            "next": link(page + 1) if page < pages else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": items[(page - 1) * size : page * size],
        }
