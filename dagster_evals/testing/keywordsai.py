"""A faithful fake of the Keywords AI (Respan) datasets, evaluators, prompts and request-logs API.

Serve it over real HTTP with `fake.serve()` (a `ServerThread`) or call it in-process with
`fake.transport()`. What it reproduces:

- Paths exactly as documented, trailing slash included; only `eval-reports/create` (documented without a
  slash) and `eval-reports/{id}` are served with and without it. Any other path — e.g. a documented path
  without its trailing slash — answers 404 `{"detail": "Not found."}` (what Django does for a write
  without the slash; a real GET would be redirected instead).
- `Authorization: Bearer <key>` (or the legacy `Api-Key <key>`); otherwise 401 `{"detail": ...}`.
- Page-number pagination, envelope `{"count", "next", "previous", "results"}` with absolute URLs, page
  sizes clamped to the documented maximum (100; request logs 1000), a page past the end → 404
  `{"detail": "Invalid page."}`.
- Request validation: unknown fields, missing required fields and wrong types → 400 `{"detail": ...}`
  naming the field. In a bulk insert, invalid logs are counted in `error_count` and skipped.
- The documented 60 requests/minute/organization limit on every endpoint but request logs, as a sliding
  window; over it → 429 `{"detail": ..., "retry_after": <seconds>}`. `minute_s` sets the length of the
  fake's minute in real seconds and `clock` the time source, so tests and benchmarks run in seconds.
- Eval reports that move `pending` → `running` → `completed` as they are polled (list or get), then hold
  real scores from built-in evaluators: `char_count_eval` (numerical: characters in the output, the JSON
  text for non-strings) and `exact_match_eval` (boolean: output equals expected_output, strings compared
  stripped; logs without an expected output are not scored). Scores are written onto each log (one per
  evaluator per log, the latest run wins) in the scores API's shape, and the report's `results` holds
  `{slug: {"average_score", "scored_logs", "failed_logs"}}` (the report's inner shape is not documented).
- Fault injection (`fake.faults`, a `FaultInjector`) and per-endpoint request counters (`fake.requests`,
  keyed `"METHOD /route/template/"`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dagster_evals.testing.faults import FaultInjector
from dagster_evals.testing.server import ServerThread, in_process_transport

MAX_PAGE_SIZE = 100
MAX_REQUEST_LOG_PAGE_SIZE = 1000
INVALID_KEY = (
    "Your API key is invalid or expired, please check your API key at "
    "https://platform.keywordsai.co/platform/api/api-keys"
)
OPERATORS = {"", "eq", "in", "not", "icontains", "startswith", "gt", "gte", "lt", "lte", "empty", "not_empty"}
JSON_ANY = object()


class ApiError(Exception):
    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"detail": detail, **extra}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def char_count(input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]) -> float | None:
    """Characters in the output (its compact JSON text when it is not a string)."""
    return None if output is None else float(len(_text(output)))


def exact_match(input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]) -> bool | None:
    """Output equals expected_output (strings compared with surrounding whitespace stripped)."""
    if expected is None:
        return None
    if isinstance(output, str) and isinstance(expected, str):
        return output.strip() == expected.strip()
    return output == expected


@dataclass
class FakeEvaluator:
    """An evaluator the fake can run: `fn(input, output, expected, metadata)` returns a number (numerical),
    a bool (boolean) or None (log not scored)."""

    slug: str
    name: str
    fn: Callable[[Any, Any, Any, Mapping[str, Any]], float | bool | None]
    type: str = "code"
    score_value_type: str = "numerical"
    description: str = ""
    id: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "evaluator_slug": self.slug,
            "type": self.type,
            "score_value_type": self.score_value_type,
            "eval_class": "",
            "description": self.description,
            "created_by": None,
            "updated_by": None,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "custom_required_fields": [],
            "categorical_choices": None,
            "starred": False,
            "organization": 1,
            "tags": [],
        }


def _check_fields(body: Any, spec: Mapping[str, tuple[Any, bool]], where: str = "") -> dict[str, Any]:
    """Validate a JSON object against `{field: (type or JSON_ANY, required)}`; 400 naming the field."""
    if not isinstance(body, dict):
        raise ApiError(400, f"{where or 'request body'} must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise ApiError(400, f"{where}unknown field(s): {', '.join(unknown)}")
    for name, (kind, required) in spec.items():
        if name not in body:
            if required:
                raise ApiError(400, f"{where}{name}: This field is required.")
            continue
        value = body[name]
        if kind is JSON_ANY or (value is None and not required):
            continue
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            raise ApiError(400, f"{where}{name}: expected {names}, got {type(value).__name__}")
    return body


def _parse_time(body: Mapping[str, Any], name: str) -> datetime:
    value = body.get(name)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name}: Datetime has wrong format: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lookup(record: Mapping[str, Any], field: str) -> Any:
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _compare(op: str, actual: Any, value: Any) -> bool:
    listed = value if isinstance(value, list) else [value]
    if op in ("", "eq"):
        return actual == value
    if op == "in":
        return actual in listed
    if op == "not":
        return actual not in listed
    if op == "icontains":
        return str(value).lower() in str(actual or "").lower()
    if op == "startswith":
        return str(actual or "").startswith(str(value))
    if op == "empty":
        return actual in (None, "", [], {})
    if op == "not_empty":
        return actual not in (None, "", [], {})
    if actual is None:
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[op]


def _matches(record: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    for field, clause in filters.items():
        actual = _lookup(record, field)
        if isinstance(clause, Mapping) and "operator" in clause:
            op, value = clause.get("operator") or "", clause.get("value")
        else:
            op, value = "", clause
        if op not in OPERATORS:
            raise ApiError(400, f"filters: unsupported operator {op!r} for field {field!r}")
        if op not in ("in", "not") and isinstance(value, list) and len(value) == 1:
            value = value[0]
        try:
            ok = _compare(op, actual, value)
        except TypeError:
            raise ApiError(400, f"filters: cannot compare field {field!r} with {value!r}") from None
        if not ok:
            return False
    return True


def _sample(records: list[dict[str, Any]], percentage: int) -> list[dict[str, Any]]:
    """A deterministic `percentage` share of `records` (ordered by a hash of their id)."""
    keep = math.ceil(len(records) * percentage / 100)
    ranked = sorted(records, key=lambda r: hashlib.sha256(str(r["unique_id"]).encode()).hexdigest())
    return ranked[:keep]


class KeywordsAIFake:
    """In-memory Keywords AI server (an ASGI app wrapped in a `FaultInjector`).

    Args:
        api_keys: Keys the server accepts (one organization).
        rate_limit_per_minute: Requests allowed per organization in any `minute_s` window (None: no limit).
        minute_s: Real seconds in the fake's minute (60 for real time; e.g. 1.0 to run 60x faster).
        clock: Time source for the rate limit, in seconds.
        eval_polls_to_complete: Polls an eval report needs to go from pending to completed (>= 2:
            pending, then running, then completed).
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = ("test-key",),
        rate_limit_per_minute: int | None = 60,
        minute_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        eval_polls_to_complete: int = 2,
    ) -> None:
        self.api_keys = set(api_keys)
        self.rate_limit_per_minute = rate_limit_per_minute
        self.minute_s = minute_s
        self.clock = clock
        self.eval_polls_to_complete = max(1, eval_polls_to_complete)
        self.datasets: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, dict[str, dict[str, Any]]] = {}
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self.evaluators: dict[str, FakeEvaluator] = {}
        self.prompts: dict[str, dict[str, Any]] = {}
        self.prompt_versions: dict[str, list[dict[str, Any]]] = {}
        self.request_logs: list[dict[str, Any]] = []
        self.requests: Counter[str] = Counter()
        self.throttled = 0
        self.fail_next_evals = 0
        self._history: dict[str, deque[float]] = {}
        self._seq = 0
        self._lock = threading.RLock()
        self.add_evaluator(
            FakeEvaluator(
                "char_count_eval", "Character count", char_count, description="Characters in the output"
            )
        )
        self.add_evaluator(
            FakeEvaluator(
                "exact_match_eval",
                "Exact match",
                exact_match,
                score_value_type="boolean",
                description="Output equals the expected output",
            )
        )
        app = Starlette(routes=self._routes(), exception_handlers={HTTPException: self._http_error})
        app.router.redirect_slashes = False
        self.faults = FaultInjector(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.faults(scope, receive, send)

    @property
    def app(self) -> KeywordsAIFake:
        """The ASGI app (this object; faults are injected through `faults`)."""
        return self

    # -- serving -------------------------------------------------------------------------------------------
    def serve(self) -> ServerThread:
        """A `ServerThread` serving this fake on 127.0.0.1 (use as a context manager)."""
        return ServerThread(self)

    def transport(self) -> httpx.BaseTransport:
        """An in-process httpx transport (no socket)."""
        return in_process_transport(self)

    # -- seeding -------------------------------------------------------------------------------------------
    def add_evaluator(self, evaluator: FakeEvaluator) -> FakeEvaluator:
        with self._lock:
            evaluator.id = evaluator.id or str(uuid.uuid4())
            self.evaluators[evaluator.slug] = evaluator
            return evaluator

    def add_prompt(
        self, name: str, versions: Iterable[Mapping[str, Any]] = (), slug: str | None = None
    ) -> str:
        """Create a prompt with these versions (message lists etc.); returns its `prompt_id`."""
        with self._lock:
            prompt_id = uuid.uuid4().hex
            self.prompts[prompt_id] = {
                "id": len(self.prompts) + 1,
                "prompt_id": prompt_id,
                "name": name,
                "description": "",
                "prompt_slug": slug or name.lower().replace(" ", "-"),
                "full_prompt_id": prompt_id,
                "starred": False,
                "tags": [],
                "created_at": _now(),
                "updated_at": _now(),
            }
            self.prompt_versions[prompt_id] = []
            for content in versions:
                self.add_prompt_version(prompt_id, content)
            return prompt_id

    def add_prompt_version(self, prompt_id: str, content: Mapping[str, Any]) -> int:
        with self._lock:
            versions = self.prompt_versions[prompt_id]
            number = len(versions) + 1
            versions.append(
                {
                    "id": sum(len(v) for v in self.prompt_versions.values()) + 1,
                    "prompt_version_id": uuid.uuid4().hex,
                    "version": number,
                    "description": "",
                    "created_at": _now(),
                    "updated_at": _now(),
                    "messages": content.get("messages", []),
                    "model": content.get("model", "gpt-4o-mini"),
                    "temperature": content.get("temperature", 1.0),
                    "variables": content.get("variables", {}),
                    "readonly": False,
                }
            )
            self.prompts[prompt_id]["updated_at"] = _now()
            return number

    def add_request_logs(self, logs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Record request logs (fields as in the logs API: input, output, model, metadata, timestamp…)."""
        ids = []
        with self._lock:
            for log in logs:
                record = {
                    "unique_id": uuid.uuid4().hex,
                    "status_code": 200,
                    "status": "success",
                    "log_type": "chat",
                    "model": "gpt-4o-mini",
                    "metadata": {},
                    "timestamp": _now(),
                    "cost": 0.0,
                    "latency": 0.0,
                    **dict(log),
                }
                self.request_logs.append(record)
                ids.append(record["unique_id"])
        return ids

    def dataset_logs(self, dataset_id: str) -> list[dict[str, Any]]:
        """The stored logs of a dataset (for assertions)."""
        with self._lock:
            return [dict(log) for log in self.logs.get(dataset_id, {}).values()]

    # -- plumbing ------------------------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        d = "/api/datasets/{dataset_id}"
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", "/api/datasets/", self._list_datasets),
            ("POST", "/api/datasets/", self._create_dataset),
            ("GET", d + "/", self._get_dataset),
            ("PATCH", d + "/", self._patch_dataset),
            ("DELETE", d + "/", self._delete_dataset),
            ("POST", d + "/logs/", self._create_log),
            ("POST", d + "/logs/bulk/", self._bulk_logs),
            ("GET", d + "/logs/list/", self._list_logs),
            ("POST", d + "/logs/list/", self._list_logs),
            ("DELETE", d + "/logs/delete/", self._delete_logs),
            ("POST", d + "/eval-reports/create", self._create_report),
            ("POST", d + "/eval-reports/create/", self._create_report),
            ("GET", d + "/eval-reports/list/", self._list_reports),
            ("GET", d + "/eval-reports/{report_id}/", self._get_report),
            ("GET", d + "/eval-reports/{report_id}", self._get_report),
            ("GET", "/api/evaluators/", self._list_evaluators),
            ("GET", "/api/prompts/", self._list_prompts),
            ("GET", "/api/prompts/{prompt_id}/versions/", self._list_prompt_versions),
            ("POST", "/api/request-logs/list/", self._list_request_logs),
        ]
        by_path: dict[str, dict[str, Callable[..., Any]]] = {}
        for method, path, handler in table:
            by_path.setdefault(path, {})[method] = handler
        return [
            Route(path, self._endpoint(path, handlers), methods=list(handlers))
            for path, handlers in by_path.items()
        ]

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = "Not found." if status == 404 else f'Method "{request.method}" not allowed.'
        return JSONResponse({"detail": detail}, status_code=status)

    def _endpoint(self, template: str, handlers: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            key = f"{request.method} {template}"
            raw = await request.body()
            with self._lock:
                self.requests[key] += 1
                try:
                    org = self._authenticate(request)
                    if not template.startswith("/api/request-logs/"):
                        self._throttle(org)
                    body: Any = None
                    if raw:
                        try:
                            body = json.loads(raw)
                        except ValueError as exc:
                            raise ApiError(400, f"JSON parse error - {exc}") from None
                    status, payload = handlers[request.method](request, body, **request.path_params)
                except ApiError as exc:
                    if exc.status == 429:
                        self.throttled += 1
                    return JSONResponse(exc.body, status_code=exc.status)
            if status == 204:
                return Response(status_code=204)
            return JSONResponse(payload, status_code=status)

        return endpoint

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if not header:
            raise ApiError(401, "Authentication credentials were not provided.")
        if scheme not in ("Bearer", "Api-Key") or key.strip() not in self.api_keys:
            raise ApiError(401, INVALID_KEY)
        return "org"

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
                retry_after=round(wait, 3),
            )
        history.append(now)

    def _page(
        self, request: Request, items: list[Any], max_size: int = MAX_PAGE_SIZE, default_size: int = 50
    ) -> dict[str, Any]:
        def number(name: str, default: int) -> int:
            raw = request.query_params.get(name)
            try:
                return int(raw) if raw is not None else default
            except ValueError:
                return default

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

    def _dataset(self, dataset_id: str) -> dict[str, Any]:
        dataset = self.datasets.get(dataset_id)
        if dataset is None:
            raise ApiError(404, "Dataset not found or not in your organization")
        return dataset

    def _render_dataset(self, dataset: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in dataset.items() if not k.startswith("_")}
        return {**shown, "log_count": len(self.logs[dataset["id"]])}

    # -- datasets ------------------------------------------------------------------------------------------
    def _list_datasets(self, request: Request, body: Any) -> tuple[int, Any]:
        sort_by = request.query_params.get("sort_by", "-created_at")
        field = sort_by.lstrip("-")
        if field not in ("created_at", "updated_at", "name"):
            raise ApiError(400, f"sort_by: unknown field {field!r}")
        items = sorted(
            self.datasets.values(), key=lambda d: (d[field], d["_seq"]), reverse=sort_by.startswith("-")
        )
        return 200, self._page(request, [self._render_dataset(d) for d in items])

    def _create_dataset(self, request: Request, body: Any) -> tuple[int, Any]:
        _check_fields(
            body,
            {
                "name": (str, "source_dataset_id" not in (body or {})),
                "description": (str, False),
                "is_empty": (bool, False),
                "sampling": (int, False),
                "start_time": (str, False),
                "end_time": (str, False),
                "initial_log_filters": (dict, False),
                "type": (str, False),
                "source_dataset_id": (str, False),
            },
        )
        source_logs: list[dict[str, Any]] = []
        if body.get("source_dataset_id"):
            source = self._dataset(body["source_dataset_id"])
            body.setdefault("name", f"{source['name']} (copy)")
            source_logs = list(self.logs[source["id"]].values())
        elif not body.get("is_empty"):
            for name in ("start_time", "end_time"):
                if body.get(name) is None:
                    raise ApiError(400, f"{name}: This field is required unless is_empty is true.")
            sampling = body.get("sampling", 100)
            if not 1 <= sampling <= 100:
                raise ApiError(400, f"sampling: must be a percentage between 1 and 100, got {sampling}")
            source_logs = [
                self._log_from_request_log(log)
                for log in self._matching_request_logs(
                    body.get("initial_log_filters") or {},
                    _parse_time(body, "start_time"),
                    _parse_time(body, "end_time"),
                    sampling,
                )
            ]
        self._seq += 1
        dataset_id = str(uuid.uuid4())
        now = _now()
        self.datasets[dataset_id] = {
            "id": dataset_id,
            "name": body["name"],
            "type": body.get("type", "sampling"),
            "description": body.get("description", ""),
            "created_at": now,
            "updated_at": now,
            "organization": 1,
            "initial_log_filters": body.get("initial_log_filters") or {},
            "unique_organization_ids": [],
            "timestamps": [],
            "evaluator": None,
            "status": "ready",
            "running_status": "pending",
            "running_progress": 0,
            "running_at": None,
            "completed_annotation_count": 0,
            "_seq": self._seq,
        }
        self.logs[dataset_id] = {}
        for log in source_logs:
            self._store_log(dataset_id, log)
        return 201, self._render_dataset(self.datasets[dataset_id])

    def _get_dataset(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        return 200, self._render_dataset(self._dataset(dataset_id))

    def _patch_dataset(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        dataset = self._dataset(dataset_id)
        _check_fields(body, {"name": (str, False), "description": (str, False)})
        dataset.update({k: v for k, v in body.items() if v is not None}, updated_at=_now())
        return 200, self._render_dataset(dataset)

    def _delete_dataset(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        del self.datasets[dataset_id]
        self.logs.pop(dataset_id, None)
        self.reports.pop(dataset_id, None)
        return 204, None

    # -- dataset logs --------------------------------------------------------------------------------------
    LOG_SPEC: Mapping[str, tuple[Any, bool]] = {
        "input": (JSON_ANY, True),
        "output": (JSON_ANY, True),
        "expected_output": (JSON_ANY, False),
        "metadata": (dict, False),
        "metrics": (dict, False),
    }

    def _validate_log(self, log: Any, where: str = "") -> dict[str, Any]:
        _check_fields(log, self.LOG_SPEC, where)
        for name, value in (log.get("metrics") or {}).items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ApiError(400, f"{where}metrics.{name}: expected a number, got {type(value).__name__}")
        return log

    def _store_log(self, dataset_id: str, log: Mapping[str, Any]) -> dict[str, Any]:
        log_id = uuid.uuid4().hex
        metrics = dict(log.get("metrics") or {})
        record = {
            "id": log_id,
            "unique_id": log_id,
            "dataset_id": dataset_id,
            "organization_id": "org",
            "environment": "prod",
            "timestamp": _now(),
            "input": log.get("input"),
            "output": log.get("output"),
            "expected_output": log.get("expected_output"),
            "metadata": dict(log.get("metadata") or {}),
            "metrics": metrics,
            "cost": metrics.get("cost", 0.0),
            "latency": metrics.get("latency", 0.0),
            "status": "success",
            "status_code": 200,
            "annotation_status": "pending",
            "scores": [],
        }
        self.logs[dataset_id][log_id] = record
        self.datasets[dataset_id]["updated_at"] = _now()
        return record

    def _create_log(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        record = self._store_log(dataset_id, self._validate_log(body))
        log_data = {k: record[k] for k in ("unique_id", "input", "output", "dataset_id", "status")}
        log_data.update(record["metadata"])
        return 201, {"message": "Dataset log request completed synchronously.", "log_data": log_data}

    def _bulk_logs(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        if isinstance(body, dict) and "logs" in body:
            _check_fields(body, {"logs": (list, True)})
            errors = []
            created = 0
            for index, log in enumerate(body["logs"]):
                try:
                    self._validate_log(log, f"logs[{index}].")
                except ApiError as exc:
                    errors.append({"index": index, "detail": exc.body["detail"]})
                    continue
                self._store_log(dataset_id, log)
                created += 1
            return 201, {"success_count": created, "error_count": len(errors), "errors": errors}
        _check_fields(
            body,
            {
                "start_time": (str, True),
                "end_time": (str, True),
                "filters": (dict, False),
                "sampling_percentage": (int, False),
            },
        )
        sampling = body.get("sampling_percentage", 100)
        if not 1 <= sampling <= 100:
            raise ApiError(400, f"sampling_percentage: must be between 1 and 100, got {sampling}")
        matched = self._matching_request_logs(
            body.get("filters") or {},
            _parse_time(body, "start_time"),
            _parse_time(body, "end_time"),
            sampling,
        )
        for log in matched:
            self._store_log(dataset_id, self._log_from_request_log(log))
        return 202, {"message": f"Adding {len(matched)} logs to the dataset in the background."}

    def _list_logs(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        filters: Mapping[str, Any] = {}
        if request.method == "POST" and body is not None:
            _check_fields(body, {"filters": (dict, False), "page": (int, False), "page_size": (int, False)})
            filters = body.get("filters") or {}
        order_by = request.query_params.get("order_by", "unique_id")
        field = order_by.lstrip("-")
        if field not in ("unique_id", "timestamp", "id"):
            raise ApiError(400, f"order_by: unknown field {field!r}")
        logs = [log for log in self.logs[dataset_id].values() if _matches(log, filters)]
        logs.sort(key=lambda log: log[field], reverse=order_by.startswith("-"))
        page = self._page(request, logs, default_size=10)
        page["filter_options"] = {}
        return 200, page

    def _delete_logs(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        _check_fields(body, {"filters": (dict, False), "is_deleting_all_logs": (bool, False)})
        logs = self.logs[dataset_id]
        if body.get("is_deleting_all_logs"):
            doomed = list(logs)
        elif body.get("filters"):
            doomed = [log_id for log_id, log in logs.items() if _matches(log, body["filters"])]
        else:
            raise ApiError(
                400, "filters: pass filters, or set is_deleting_all_logs to true to delete every log"
            )
        for log_id in doomed:
            del logs[log_id]
        return 200, {"message": f"Deleted {len(doomed)} logs.", "deleted_count": len(doomed)}

    # -- request logs --------------------------------------------------------------------------------------
    def _matching_request_logs(
        self, filters: Mapping[str, Any], start: datetime, end: datetime, sampling: int
    ) -> list[dict[str, Any]]:
        def in_window(log: Mapping[str, Any]) -> bool:
            stamp = datetime.fromisoformat(str(log["timestamp"]).replace("Z", "+00:00"))
            stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            return start <= stamp <= end

        matched = [log for log in self.request_logs if in_window(log) and _matches(log, filters)]
        return _sample(matched, sampling)

    @staticmethod
    def _log_from_request_log(log: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "input": log.get("input"),
            "output": log.get("output"),
            "metadata": {
                **(log.get("metadata") or {}),
                "model": log.get("model"),
                "request_log_id": log["unique_id"],
            },
            "metrics": {"cost": log.get("cost", 0.0), "latency": log.get("latency", 0.0)},
        }

    def _list_request_logs(self, request: Request, body: Any) -> tuple[int, Any]:
        if body is not None:
            _check_fields(body, {"filters": (dict, False)})
        filters = (body or {}).get("filters") or {}
        sort_by = request.query_params.get("sort_by", "-timestamp")
        field = "timestamp" if sort_by.lstrip("-") in ("id", "timestamp") else sort_by.lstrip("-")
        logs = [log for log in self.request_logs if _matches(log, filters)]
        try:
            logs.sort(key=lambda log: log.get(field) or 0, reverse=sort_by.startswith("-"))
        except TypeError:
            raise ApiError(400, f"sort_by: cannot sort by {field!r}") from None
        return 200, self._page(request, logs, MAX_REQUEST_LOG_PAGE_SIZE, default_size=100)

    # -- eval reports --------------------------------------------------------------------------------------
    def _create_report(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        _check_fields(body, {"evaluator_slugs": (list, True)})
        slugs = body["evaluator_slugs"]
        if not slugs or not all(isinstance(s, str) for s in slugs):
            raise ApiError(400, "evaluator_slugs: a non-empty list of evaluator slugs is required")
        unknown = [s for s in slugs if s not in self.evaluators]
        if unknown:
            raise ApiError(400, f"evaluator_slugs: evaluator(s) not found: {', '.join(unknown)}")
        now = _now()
        report = {
            "id": uuid.uuid4().hex,
            "dataset_id": dataset_id,
            "evaluator_slugs": list(slugs),
            "status": "pending",
            "created_at": now,
            "updated_at": now,
            "results": None,
            "_polls": 0,
        }
        self.reports.setdefault(dataset_id, []).insert(0, report)
        return 201, self._render_report(report)

    @staticmethod
    def _render_report(report: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in report.items() if not k.startswith("_")}

    def _advance(self, report: dict[str, Any]) -> None:
        if report["status"] in ("completed", "failed"):
            return
        report["_polls"] += 1
        report["updated_at"] = _now()
        if report["_polls"] < self.eval_polls_to_complete:
            report["status"] = "running"
            return
        if self.fail_next_evals > 0:
            self.fail_next_evals -= 1
            report["status"] = "failed"
            report["results"] = {"error": "evaluation failed"}
            return
        results: dict[str, Any] = {}
        for slug in report["evaluator_slugs"]:
            evaluator = self.evaluators[slug]
            values: list[float] = []
            failed = 0
            for log in self.logs.get(report["dataset_id"], {}).values():
                value = evaluator.fn(log["input"], log["output"], log["expected_output"], log["metadata"])
                if value is None:
                    failed += 1
                    continue
                score = {
                    "id": uuid.uuid4().hex,
                    "created_at": _now(),
                    "type": evaluator.type,
                    "environment": "prod",
                    "numerical_value": None if isinstance(value, bool) else float(value),
                    "string_value": None,
                    "boolean_value": value if isinstance(value, bool) else None,
                    "is_passed": bool(value),
                    "cost": 0.0,
                    "evaluator_id": evaluator.id,
                    "evaluator_slug": slug,
                    "log_id": log["unique_id"],
                    "dataset_id": report["dataset_id"],
                }
                log["scores"] = [s for s in log["scores"] if s["evaluator_slug"] != slug] + [score]
                values.append(float(value))
            results[slug] = {
                "average_score": sum(values) / len(values) if values else None,
                "scored_logs": len(values),
                "failed_logs": failed,
            }
        report["results"] = results
        report["status"] = "completed"

    def _list_reports(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        page = self._page(request, self.reports.get(dataset_id, []), default_size=10)
        for report in page["results"]:
            self._advance(report)
        page["results"] = [self._render_report(r) for r in page["results"]]
        return 200, page

    def _get_report(self, request: Request, body: Any, dataset_id: str, report_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        for report in self.reports.get(dataset_id, []):
            if report["id"] == report_id:
                self._advance(report)
                return 200, self._render_report(report)
        raise ApiError(404, "Not found.")

    # -- evaluators and prompts ----------------------------------------------------------------------------
    def _list_evaluators(self, request: Request, body: Any) -> tuple[int, Any]:
        search = (request.query_params.get("search") or "").lower()
        kind = request.query_params.get("type")
        if kind is not None and kind not in ("llm", "human", "code"):
            raise ApiError(400, f"type: {kind!r} is not one of llm, human, code")
        items = [
            e.as_json()
            for e in self.evaluators.values()
            if (search in e.slug.lower() or search in e.name.lower()) and (kind is None or e.type == kind)
        ]
        return 200, self._page(request, items, default_size=20)

    def _list_prompts(self, request: Request, body: Any) -> tuple[int, Any]:
        items = []
        for prompt_id, prompt in self.prompts.items():
            versions = self.prompt_versions[prompt_id]
            items.append(
                {
                    **prompt,
                    "current_version": versions[-1] if versions else None,
                    "live_version": versions[-1]["id"] if versions else None,
                    "prompt_versions": None,
                    "commit_count": len(versions),
                }
            )
        return 200, self._page(request, items)

    def _list_prompt_versions(self, request: Request, body: Any, prompt_id: str) -> tuple[int, Any]:
        if prompt_id not in self.prompts:
            raise ApiError(404, "Prompt not found.")
        versions = sorted(self.prompt_versions[prompt_id], key=lambda v: v["version"], reverse=True)
        return 200, self._page(request, versions)
