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

import math
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dagster_evals.testing.asgi import (
    Call,
    FakeAPI,
    Route,
    SlidingWindow,
    credential,
    decode_json,
    page_number,
)
from dagster_evals.testing.keywordsai.datasets import DatasetRoutes
from dagster_evals.testing.keywordsai.errors import KeywordsAIError
from dagster_evals.testing.keywordsai.evals import EvalRoutes
from dagster_evals.testing.keywordsai.evaluators import FakeEvaluator, builtin_evaluators
from dagster_evals.testing.keywordsai.filters import METADATA_SYNTAXES, FilterError, MetadataSyntax
from dagster_evals.testing.keywordsai.spec import SpecError, check_body, check_query, endpoint

MAX_PAGE_SIZE = 100
MAX_REQUEST_LOG_PAGE_SIZE = 1000
INVALID_KEY = (
    "Your API key is invalid or expired, please check your API key at "
    "https://platform.keywordsai.co/platform/api/api-keys"
)


def now_iso(clock: Callable[[], datetime]) -> str:
    return clock().isoformat().replace("+00:00", "Z")


class KeywordsAIFake(DatasetRoutes, EvalRoutes, FakeAPI):
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
        metadata_syntax: The dataset-log metadata filter spelling honoured: `"both"`, `"dotted"`
            (`metadata.<key>` only) or `"double_underscore"` (`metadata__<key>` only); see `filters.py`.
        eval_report_evaluators: What `eval-reports/create` accepts: `"both"`, `"slugs"`
            (`evaluator_slugs` only, as the docs) or `"ids"` (`evaluator_ids` only, as the spec).
        eval_report_list_lag: List requests after a create that do not show the new run yet.
    """

    serialized = True
    validation_errors = (SpecError, FilterError)

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
        metadata_syntax: MetadataSyntax = "both",
        eval_report_evaluators: Literal["both", "slugs", "ids"] = "both",
        eval_report_list_lag: int = 0,
    ) -> None:
        if metadata_syntax not in METADATA_SYNTAXES:
            raise ValueError(f"metadata_syntax must be one of {', '.join(METADATA_SYNTAXES)}")
        if eval_report_evaluators not in ("both", "slugs", "ids"):
            raise ValueError("eval_report_evaluators must be one of both, slugs, ids")
        self.metadata_syntax = metadata_syntax
        self.eval_report_evaluators = eval_report_evaluators
        self.eval_report_list_lag = eval_report_list_lag
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
        self.throttled = 0
        self.pending_deletes: list[tuple[int, str, list[str]]] = []
        self._served = 0
        self._windows: dict[str, SlidingWindow] = {}
        self._seq = 0
        super().__init__(self._routes())
        for evaluator in builtin_evaluators():
            self.add_evaluator(evaluator)

    def _now(self) -> str:
        return now_iso(self.now)

    # -- state read by tests -----------------------------------------------------------------------------
    def dataset_logs(self, dataset_id: str) -> list[dict[str, Any]]:
        """The stored logs of a dataset, including logs whose removal is still pending."""
        with self.lock:
            return [dict(log) for log in self.logs.get(dataset_id, {}).values()]

    def settle(self) -> None:
        """Apply every pending background removal now."""
        with self.lock:
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
        """Register an evaluator that eval reports can run by slug (given an id if it has none); returns it."""
        with self.lock:
            evaluator.id = evaluator.id or str(uuid.uuid4())
            self.evaluators[evaluator.slug] = evaluator
            return evaluator

    # -- routes and the toolkit's hooks (Keywords AI's envelope, admission, bodies) ----------------------------
    def _routes(self) -> list[Route]:
        d = "/api/datasets/{dataset_id}"
        # (method, path, handler, spec endpoint name)
        return [
            Route("GET", "/api/datasets/list/", self._list_datasets, "list_datasets_get"),
            Route("POST", "/api/datasets/list/", self._list_datasets, "list_datasets"),
            Route("POST", "/api/datasets/", self._create_dataset, "create_dataset"),
            Route("GET", d + "/", self._get_dataset, "retrieve_dataset"),
            Route("PATCH", d + "/", self._patch_dataset, "update_dataset"),
            Route("DELETE", d + "/", self._delete_dataset, "delete_dataset"),
            Route("POST", d + "/logs/", self._create_log, "create_dataset_log"),
            Route("POST", d + "/logs/bulk/", self._bulk_logs, "bulk_create_dataset_logs"),
            Route("POST", d + "/logs/import/", self._import_logs, "import_dataset_logs"),
            Route("DELETE", d + "/logs/import/", self._delete_logs, "remove_dataset_logs"),
            Route("DELETE", d + "/logs/delete/", self._delete_logs, "remove_dataset_logs_delete"),
            Route("GET", d + "/logs/list/", self._list_logs, "list_dataset_logs_get"),
            Route("POST", d + "/logs/list/", self._list_logs, "list_dataset_logs"),
            Route("DELETE", d + "/logs/{unique_id}/", self._delete_log, "delete_dataset_log"),
            Route("POST", d + "/eval-reports/create", self._create_report, "run_eval_on_dataset_docs"),
            Route("POST", d + "/eval-reports/create/", self._create_report, "run_eval_on_dataset"),
            Route("GET", d + "/eval-reports/list/", self._list_reports, "list_dataset_eval_runs"),
            Route("GET", "/api/evaluators/", self._list_evaluators, "list_evaluators"),
            Route("GET", "/api/prompts/", self._list_prompts, "list_prompts_get"),
            Route("POST", "/api/prompts/list/", self._list_prompts, "list_prompts"),
            Route(
                "GET",
                "/api/prompts/{prompt_id}/versions/",
                self._list_prompt_versions,
                "list_prompt_versions",
            ),
            Route("POST", "/api/request-logs/list/", self._list_request_logs, "list_request_logs"),
        ]

    def error(self, status: int, message: str, **extra: Any) -> KeywordsAIError:
        return KeywordsAIError(status, message, **extra)

    def not_found(self, request: Request) -> Response:
        return JSONResponse({"detail": "Not found."}, status_code=404)

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return JSONResponse({"detail": f'Method "{request.method}" not allowed.'}, status_code=405)

    def admit(self, call: Call) -> None:
        self.count(call)
        self._tick()
        self.authenticate(call)
        self.take_failure()
        if not call.route.path.startswith("/api/request-logs/"):
            self._throttle("org")
        if call.route.name != "list_request_logs":  # its extra query parameters are filters
            check_query(call.request.query_params, endpoint(call.route.name)["query"])

    def authenticate(self, call: Call) -> None:
        if not call.request.headers.get("authorization"):
            raise KeywordsAIError(401, "Authentication credentials were not provided.")
        key = credential(call.request, ("Bearer", "Api-Key"), case_sensitive=True)
        if key is None or key.strip() not in self.api_keys:
            raise KeywordsAIError(401, INVALID_KEY)

    def read_body(self, call: Call) -> Any:
        try:
            body = decode_json(call.raw)
        except ValueError as exc:
            raise KeywordsAIError(400, f"JSON parse error - {exc}") from None
        if body is None:
            body = {}
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if v is not None}
        return check_body(body, endpoint(call.route.name)["body"])

    async def respond(self, call: Call, result: Any) -> Response:
        status, payload = result
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(payload, status_code=status)

    def _throttle(self, org: str) -> None:
        if not self.rate_limit_per_minute:
            return
        window = self._windows.setdefault(
            org, SlidingWindow(self.rate_limit_per_minute, self.minute_s, self.clock)
        )
        wait = window.admit()
        if wait is not None:
            wait = max(0.001, wait)
            self.throttled += 1
            raise KeywordsAIError(
                429,
                f"Request was throttled. Expected available in {math.ceil(wait)} second(s).",
                headers={"Retry-After": f"{wait:.3f}"},
                retry_after=round(wait, 3),
            )

    def _page(
        self, request: Request, items: list[Any], max_size: int = MAX_PAGE_SIZE, default_size: int = 50
    ) -> dict[str, Any]:
        return page_number(
            request, items, max_size=max_size, default_size=default_size, reject=lambda m: self.error(404, m)
        )
