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
- Errors: `{"error": message}` with 400 (malformed JSON, unknown/missing fields, wrong types), 401 (bad
  or missing key), 404 (unknown id or route), 413 (request over `max_request_bytes`).
- Faults: `fake.faults` is a `FaultInjector` (429, 5xx, dropped connections, truncated bodies).
- Counters: `fake.requests` (per "METHOD /route"), `fake.events_written` (events per object kind),
  the last request bodies per route in `fake.bodies` (unless `record_bodies=False`). `GET /_fake/stats` returns the counters (fake only).

Examples:
    .. code-block:: python

        fake = BraintrustFake(api_key="test-key")
        with ServerThread(fake.app) as server:
            resource = BraintrustResource(api_key="test-key", api_url=server.url, project="demo")
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import inspect
import json
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from dagster_evals.testing.braintrust import openapi
from dagster_evals.testing.braintrust.openapi import Body, SpecError
from dagster_evals.testing.braintrust.runtime import (
    RUNNABLE_GLOBALS,
    _Fn,
    _jsonable,
)
from dagster_evals.testing.braintrust.store import (
    XACT_START,
    EventStore,
    HttpError,
    Obj,
    now_iso,
    parse_version,
)
from dagster_evals.testing.faults import FaultInjector
from dagster_evals.testing.server import ServerThread, in_process_transport

FAKE_USER_ID = "5f0c8a3e-2b7d-4c1e-9a6f-0d3b8e1c7a42"
DEFAULT_MAX_REQUEST_BYTES = 6 * 1024 * 1024
DEFAULT_PAGE = 1000
RECORDED_BODIES = 50


# -- the fake ---------------------------------------------------------------------------------------------
Handler = Callable[..., Any]


class BraintrustFake:
    """In-memory Braintrust API. `app` is the ASGI app (wrapped in a `FaultInjector`)."""

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
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, Obj]] = defaultdict(dict)
        self.logs: dict[str, EventStore] = {}
        self._xact = XACT_START
        self._seq = 0
        self.requests: Counter[str] = Counter()
        self.events_written: Counter[str] = Counter()
        self.bodies: dict[str, deque[Any]] = defaultdict(lambda: deque(maxlen=RECORDED_BODIES))
        self.faults = FaultInjector(self._asgi)
        # Called (from the eval's worker thread) after each row of a `/v1/eval` run is written, with the
        # number written so far: tests use it to hold a run mid-way on an event.
        self.eval_row_hook: Callable[[int], None] | None = None
        # When set, `POST /v1/eval` waits for this event before it takes effect (a request applied late,
        # after the client gave up).
        self.hold_evals: threading.Event | None = None
        # Called after each request is handled, with ("METHOD /route", path arguments, body): tests use it
        # to interleave another client's write at an exact point.
        self.after_request: Callable[[str, list[str], Any], None] | None = None
        self.routes: list[tuple[str, list[str], Handler]] = []
        self._register_routes()

    @property
    def app(self) -> FaultInjector:
        return self.faults

    def serve(self) -> ServerThread:
        """A `ServerThread` serving this fake on 127.0.0.1 (use as a context manager)."""
        return ServerThread(self.app)

    def transport(self) -> httpx.BaseTransport:
        """An in-process httpx transport (no socket)."""
        return in_process_transport(self.app)

    def reset_counters(self) -> None:
        with self.lock:
            self.requests.clear()
            self.events_written.clear()
            self.bodies.clear()

    # -- plumbing -------------------------------------------------------------------------------------
    def _route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes.append((method, template.strip("/").split("/"), fn))
            return fn

        return register

    def _match(self, method: str, path: str) -> tuple[str, Handler, list[str]] | None:
        parts = path.strip("/").split("/")
        for route_method, template, fn in self.routes:
            if route_method != method or len(template) != len(parts):
                continue
            args = []
            for want, got in zip(template, parts, strict=True):
                if want.startswith("{"):
                    args.append(got)
                elif want != got:
                    break
            else:
                return f"{method} /{'/'.join(template)}", fn, args
        return None

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        matched = self._match(request.method, request.url.path)
        if matched is None:
            return JSONResponse({"error": f"no route {request.method} {request.url.path}"}, status_code=404)
        route, fn, args = matched
        with self.lock:
            self.requests[route] += 1
        if route != "GET /_fake/stats":
            header = request.headers.get("authorization", "")
            token = header[7:] if header.lower().startswith("bearer ") else ""
            if token not in self.api_keys:
                return JSONResponse(
                    {"error": "Invalid authorization token: pass a valid API key as 'Authorization: Bearer'"},
                    status_code=401,
                )
        try:
            body: Any = None
            if request.method in ("POST", "PATCH", "PUT"):
                raw = await request.body()
                if len(raw) > self.max_request_bytes:
                    raise HttpError(
                        413, f"request body of {len(raw)} bytes exceeds the limit of {self.max_request_bytes}"
                    )
                if raw:
                    try:
                        body = json.loads(raw, parse_constant=_reject_constant)
                    except ValueError:
                        raise HttpError(400, "request body is not valid JSON") from None
                if self.record_bodies:
                    with self.lock:
                        self.bodies[route].append(body)
            result = fn(request, body, *args)
            if inspect.isawaitable(result):
                result = await result
            if self.after_request is not None:
                self.after_request(route, args, body)
        except HttpError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except SpecError as exc:
            return JSONResponse({"error": f"invalid request body: {exc}"}, status_code=400)
        if isinstance(result, Response):
            return result
        return Response(json.dumps(result, separators=(",", ":")), media_type="application/json")

    def _next_xact(self) -> int:
        self._xact += 1
        return self._xact

    def _new(self, kind: str, data: dict[str, Any]) -> Obj:
        self._seq += 1
        obj = Obj(kind=kind, data=data, seq=self._seq)
        self.objects[kind][obj.id] = obj
        return obj

    def _get(self, kind: str, object_id: str) -> Obj:
        obj = self.objects[kind].get(object_id)
        if obj is None or obj.data.get("deleted_at"):
            raise HttpError(404, f"{kind} {object_id} not found")
        return obj

    def _live(self, kind: str) -> list[Obj]:
        return [o for o in self.objects[kind].values() if not o.data.get("deleted_at")]

    def _base(self, request: Request) -> str:
        return (self.app_url or str(request.base_url)).rstrip("/")

    def _project_url(self, request: Request, project: Obj) -> str:
        return f"{self._base(request)}/app/{quote(self.org_name)}/p/{quote(project.data['name'])}"

    @staticmethod
    def _validate(schema: str, body: Any, *, closed: bool = True) -> Body:
        """`body` checked against the published schema `schema` (400 naming the field otherwise)."""
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        return openapi.parse(body, schema, closed=closed)

    def _list(self, request: Request, kind: str, filters: dict[str, Callable[[Obj, str], bool]]) -> dict:
        query = request.query_params
        items = sorted(self._live(kind), key=lambda o: -o.seq)
        ids = query.getlist("ids")
        if ids:
            items = [o for o in items if o.id in ids]
        for name, test in filters.items():
            if name in query:
                items = [o for o in items if test(o, query[name])]
        after, before = query.get("starting_after"), query.get("ending_before")
        if after and before:
            raise HttpError(400, "pass only one of starting_after and ending_before")
        position = [o.id for o in items]
        if after:
            items = items[position.index(after) + 1 :] if after in position else []
        if before:
            items = items[: position.index(before)] if before in position else []
        limit = self._int(query.get("limit"), "limit")
        if limit is not None:
            items = items[-limit:] if before else items[:limit]
        return {"objects": [self._public(o, query.get("version")) for o in items]}

    @staticmethod
    def _int(value: str | None, name: str) -> int | None:
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise HttpError(400, f"query parameter {name} must be an integer, got {value!r}") from None
        if number < 0:
            raise HttpError(400, f"query parameter {name} must be >= 0")
        return number

    def _public(self, obj: Obj, version: str | None = None) -> dict[str, Any]:
        if obj.versions:
            return self._function_at(obj, version)
        return dict(obj.data)

    def _project_by_name(self, name: str) -> Obj:
        for project in self._live("project"):
            if project.data["name"] == name:
                return project
        raise HttpError(404, f"project {name!r} not found")

    # -- routes ---------------------------------------------------------------------------------------
    def _register_routes(self) -> None:
        r = self._route

        @r("GET", "/_fake/stats")
        def stats(request: Request, body: Any) -> dict:
            return {
                "requests": dict(self.requests),
                "events_written": dict(self.events_written),
                "faults": dict(self.faults.injected),
            }

        # SDK bootstrap ------------------------------------------------------------------------------
        @r("POST", "/api/apikey/login")
        def login(request: Request, body: Any) -> dict:
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

        @r("GET", "/version")
        def version(request: Request, body: Any) -> dict:
            return {"logs3_payload_max_bytes": self.logs3_payload_max_bytes}

        @r("GET", "/ping")
        def ping(request: Request, body: Any) -> dict:
            return {"id": FAKE_USER_ID, "email": "fake@example.com"}

        @r("POST", "/logs3")
        def logs3(request: Request, body: Any) -> dict:
            if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
                raise HttpError(400, "expected {'rows': [...], 'api_version': 2}")
            groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for row in body["rows"]:
                if not isinstance(row, dict):
                    raise HttpError(400, "every row must be a JSON object")
                if row.get("dataset_id"):
                    groups[("dataset", row["dataset_id"])].append(row)
                elif row.get("experiment_id"):
                    groups[("experiment", row["experiment_id"])].append(row)
                elif row.get("project_id") and row.get("log_id") == "g":
                    groups[("project_logs", row["project_id"])].append(row)
                else:
                    raise HttpError(400, "row names no dataset_id, experiment_id or project_id + log_id")
            with self.lock:
                xact = self._next_xact()
                ids = []
                for (kind, object_id), rows in groups.items():
                    store = self._store(kind, object_id)
                    ids += store.apply(rows, xact)
                    self.events_written[kind] += len(rows)
            return {"ids": ids, "xact_id": str(xact)}

        # projects -----------------------------------------------------------------------------------
        @r("POST", "/v1/project")
        def create_project(request: Request, body: Any) -> dict:
            req = self._validate("CreateProject", body)
            if req.org_name not in (None, self.org_name):
                raise HttpError(404, f"organization {req.org_name!r} not found")
            with self.lock:
                for project in self._live("project"):
                    if project.data["name"] == req.name:
                        return dict(project.data)
                data = {
                    "id": str(uuid.uuid4()),
                    "org_id": self.org_id,
                    "name": req.name,
                    "description": req.description,
                    "created": now_iso(),
                    "deleted_at": None,
                    "user_id": FAKE_USER_ID,
                    "settings": None,
                }
                return dict(self._new("project", data).data)

        @r("GET", "/v1/project")
        def list_projects(request: Request, body: Any) -> dict:
            return self._list(request, "project", {"project_name": lambda o, v: o.data["name"] == v})

        @r("GET", "/v1/project/{id}")
        def get_project(request: Request, body: Any, project_id: str) -> dict:
            return dict(self._get("project", project_id).data)

        @r("PATCH", "/v1/project/{id}")
        def patch_project(request: Request, body: Any, project_id: str) -> dict:
            req = self._validate("PatchProject", body)
            with self.lock:
                project = self._get("project", project_id)
                project.data.update(req)
                return dict(project.data)

        @r("DELETE", "/v1/project/{id}")
        def delete_project(request: Request, body: Any, project_id: str) -> dict:
            with self.lock:
                project = self._get("project", project_id)
                project.data["deleted_at"] = now_iso()
                return dict(project.data)

        # datasets -----------------------------------------------------------------------------------
        @r("POST", "/v1/dataset")
        def create_dataset(request: Request, body: Any) -> dict:
            req = self._validate("CreateDataset", body)
            with self.lock:
                self._get("project", req.project_id)
                for dataset in self._live("dataset"):
                    if dataset.data["project_id"] == req.project_id and dataset.data["name"] == req.name:
                        return dict(dataset.data)
                data = {
                    "id": str(uuid.uuid4()),
                    "project_id": req.project_id,
                    "name": req.name,
                    "url_slug": req.name.lower().replace(" ", "-"),
                    "description": req.description,
                    "created": now_iso(),
                    "deleted_at": None,
                    "user_id": FAKE_USER_ID,
                    "metadata": req.metadata,
                    "tags": req.tags,
                }
                obj = self._new("dataset", data)
                obj.store = EventStore("dataset", {"dataset_id": obj.id, "project_id": req.project_id})
                return dict(obj.data)

        @r("GET", "/v1/dataset")
        def list_datasets(request: Request, body: Any) -> dict:
            return self._list(
                request,
                "dataset",
                {
                    "dataset_name": lambda o, v: o.data["name"] == v,
                    "project_id": lambda o, v: o.data["project_id"] == v,
                    "project_name": lambda o, v: self._get("project", o.data["project_id"]).data["name"] == v,
                },
            )

        @r("GET", "/v1/dataset/{id}")
        def get_dataset(request: Request, body: Any, dataset_id: str) -> dict:
            return dict(self._get("dataset", dataset_id).data)

        @r("PATCH", "/v1/dataset/{id}")
        def patch_dataset(request: Request, body: Any, dataset_id: str) -> dict:
            req = self._validate("PatchDataset", body)
            with self.lock:
                dataset = self._get("dataset", dataset_id)
                dataset.data.update(req)
                return dict(dataset.data)

        @r("DELETE", "/v1/dataset/{id}")
        def delete_dataset(request: Request, body: Any, dataset_id: str) -> dict:
            with self.lock:
                dataset = self._get("dataset", dataset_id)
                dataset.data["deleted_at"] = now_iso()
                return dict(dataset.data)

        @r("POST", "/v1/dataset/{id}/insert")
        def insert_dataset(request: Request, body: Any, dataset_id: str) -> dict:
            return self._insert("dataset", dataset_id, "InsertDatasetEventRequest", body)

        @r("POST", "/v1/dataset/{id}/fetch")
        def fetch_dataset(request: Request, body: Any, dataset_id: str) -> Response:
            return self._fetch("dataset", dataset_id, body or {})

        @r("GET", "/v1/dataset/{id}/fetch")
        def fetch_dataset_get(request: Request, body: Any, dataset_id: str) -> Response:
            return self._fetch("dataset", dataset_id, self._fetch_query(request))

        @r("GET", "/v1/dataset/{id}/summarize")
        def summarize_dataset(request: Request, body: Any, dataset_id: str) -> dict:
            with self.lock:
                dataset = self._get("dataset", dataset_id)
                project = self._get("project", dataset.data["project_id"])
                project_url = self._project_url(request, project)
                out: dict[str, Any] = {
                    "project_name": project.data["name"],
                    "dataset_name": dataset.data["name"],
                    "project_url": project_url,
                    "dataset_url": f"{project_url}/datasets/{quote(dataset.data['name'])}",
                }
                if request.query_params.get("summarize_data") == "true":
                    assert dataset.store is not None
                    out["data_summary"] = {"total_records": dataset.store.live}
                return out

        # experiments --------------------------------------------------------------------------------
        @r("POST", "/v1/experiment")
        def create_experiment(request: Request, body: Any) -> dict:
            # The SDK sends fields outside the spec here (e.g. `ancestor_commits`); they are ignored.
            req = self._validate("CreateExperiment", body, closed=False)
            with self.lock:
                return dict(self._create_experiment(req).data)

        @r("GET", "/v1/experiment")
        def list_experiments(request: Request, body: Any) -> dict:
            return self._list(
                request,
                "experiment",
                {
                    "experiment_name": lambda o, v: o.data["name"] == v,
                    "project_id": lambda o, v: o.data["project_id"] == v,
                    "project_name": lambda o, v: self._get("project", o.data["project_id"]).data["name"] == v,
                },
            )

        @r("GET", "/v1/experiment/{id}")
        def get_experiment(request: Request, body: Any, experiment_id: str) -> dict:
            return dict(self._get("experiment", experiment_id).data)

        @r("PATCH", "/v1/experiment/{id}")
        def patch_experiment(request: Request, body: Any, experiment_id: str) -> dict:
            req = self._validate("PatchExperiment", body or {})
            with self.lock:
                experiment = self._get("experiment", experiment_id)
                changes = dict(req)
                experiment.data.update(changes)
                return dict(experiment.data)

        @r("DELETE", "/v1/experiment/{id}")
        def delete_experiment(request: Request, body: Any, experiment_id: str) -> dict:
            with self.lock:
                experiment = self._get("experiment", experiment_id)
                experiment.data["deleted_at"] = now_iso()
                return dict(experiment.data)

        @r("POST", "/v1/experiment/{id}/insert")
        def insert_experiment(request: Request, body: Any, experiment_id: str) -> dict:
            return self._insert("experiment", experiment_id, "InsertExperimentEventRequest", body)

        @r("POST", "/v1/experiment/{id}/fetch")
        def fetch_experiment(request: Request, body: Any, experiment_id: str) -> Response:
            return self._fetch("experiment", experiment_id, body or {})

        @r("GET", "/v1/experiment/{id}/fetch")
        def fetch_experiment_get(request: Request, body: Any, experiment_id: str) -> Response:
            return self._fetch("experiment", experiment_id, self._fetch_query(request))

        @r("GET", "/v1/experiment/{id}/summarize")
        def summarize_experiment(request: Request, body: Any, experiment_id: str) -> dict:
            query = request.query_params
            with_scores = query.get("summarize_scores", "true") == "true"
            with self.lock:
                experiment = self._get("experiment", experiment_id)
                comparison = query.get("comparison_experiment_id") if with_scores else None
                return self._summary(request, experiment, comparison, with_scores)

        # prompts and functions -------------------------------------------------------------------
        @r("POST", "/v1/prompt")
        def create_prompt(request: Request, body: Any) -> dict:
            data = dict(self._validate("CreatePrompt", body))
            data.pop("environment_slugs", None)
            return self._create_function("prompt", data, {"type": "prompt"})

        @r("GET", "/v1/prompt")
        def list_prompts(request: Request, body: Any) -> dict:
            return self._list_functions(request, "prompt", "prompt_name")

        @r("GET", "/v1/prompt/{id}")
        def get_prompt(request: Request, body: Any, prompt_id: str) -> dict:
            return self._function_at(self._get("prompt", prompt_id), request.query_params.get("version"))

        @r("PATCH", "/v1/prompt/{id}")
        def patch_prompt(request: Request, body: Any, prompt_id: str) -> dict:
            return self._patch_function("prompt", prompt_id, dict(self._validate("PatchPrompt", body)))

        @r("DELETE", "/v1/prompt/{id}")
        def delete_prompt(request: Request, body: Any, prompt_id: str) -> dict:
            with self.lock:
                prompt = self._get("prompt", prompt_id)
                prompt.data["deleted_at"] = now_iso()
                return self._function_at(prompt, None)

        @r("POST", "/v1/function")
        def create_function(request: Request, body: Any) -> dict:
            data = dict(self._validate("CreateFunction", body))
            return self._create_function("function", data, data.pop("function_data"))

        @r("GET", "/v1/function")
        def list_functions(request: Request, body: Any) -> dict:
            return self._list_functions(request, "function", "function_name")

        @r("GET", "/v1/function/{id}")
        def get_function(request: Request, body: Any, function_id: str) -> dict:
            obj = self._function_obj(function_id)
            return self._function_at(obj, request.query_params.get("version"), as_function=True)

        @r("PATCH", "/v1/function/{id}")
        def patch_function(request: Request, body: Any, function_id: str) -> dict:
            req = self._validate("PatchFunction", body)
            kind = self._function_obj(function_id).kind
            return self._patch_function(kind, function_id, dict(req))

        @r("POST", "/v1/function/{id}/invoke")
        async def invoke_function(request: Request, body: Any, function_id: str) -> Any:
            req = self._validate("InvokeApi", body or {})
            with self.lock:
                obj = self._function_obj(function_id)
                spec = self._function_at(obj, req.version)
                fn = self._callable_from_data(self._function_data(obj, spec), spec)
            value = await asyncio.to_thread(
                fn.call, input=req.input, output=None, expected=req.expected, metadata=req.metadata or {}
            )
            if req.stream:
                payload = f"event: json_delta\ndata: {json.dumps(value)}\n\nevent: done\ndata: \n\n"
                return Response(payload, media_type="text/event-stream")
            return Response(json.dumps(value), media_type="application/json")

        # project logs -------------------------------------------------------------------------------
        @r("POST", "/v1/project_logs/{id}/insert")
        def insert_logs(request: Request, body: Any, project_id: str) -> dict:
            return self._insert("project_logs", project_id, "InsertProjectLogsEventRequest", body)

        @r("POST", "/v1/project_logs/{id}/fetch")
        def fetch_logs(request: Request, body: Any, project_id: str) -> Response:
            return self._fetch("project_logs", project_id, body or {})

        @r("GET", "/v1/project_logs/{id}/fetch")
        def fetch_logs_get(request: Request, body: Any, project_id: str) -> Response:
            return self._fetch("project_logs", project_id, self._fetch_query(request))

        # eval ---------------------------------------------------------------------------------------
        @r("POST", "/v1/eval")
        async def run_eval(request: Request, body: Any) -> Any:
            req = self._validate("RunEval", body)
            gate = self.hold_evals
            if gate is not None:  # a slow network: the request reaches the server only when released
                await asyncio.to_thread(gate.wait)
            with self.lock:
                run = self._prepare_eval(req)
            if not req.stream:
                await asyncio.to_thread(self._execute_eval, run)
                with self.lock:
                    return self._summary(request, run.experiment, run.base_id, True)
            return StreamingResponse(self._stream_eval(request, run), media_type="text/event-stream")

    # -- event objects ------------------------------------------------------------------------------
    def _store(self, kind: str, object_id: str) -> EventStore:
        if kind == "project_logs":
            project = self._get("project", object_id)
            if object_id not in self.logs:
                self.logs[object_id] = EventStore(
                    "project_logs", {"project_id": project.id, "org_id": self.org_id, "log_id": "g"}
                )
            return self.logs[object_id]
        obj = self._get(kind, object_id)
        assert obj.store is not None
        return obj.store

    def _insert(self, kind: str, object_id: str, schema: str, body: Any) -> dict:
        events = [dict(e) for e in self._validate(schema, body)["events"]]
        with self.lock:
            store = self._store(kind, object_id)
            ids = store.apply(events, self._next_xact())
            self.events_written[kind] += len(events)
        return {"row_ids": ids}

    def write_as_another_client(self, kind: str, object_id: str, events: list[dict[str, Any]]) -> None:
        """Apply events directly, as a concurrent writer would (one transaction, no request counted)."""
        with self.lock:
            self._store(kind, object_id).apply(events, self._next_xact())

    @staticmethod
    def _fetch_query(request: Request) -> dict[str, Any]:
        query: dict[str, Any] = dict(request.query_params)
        if "limit" in query:
            query["limit"] = BraintrustFake._int(query["limit"], "limit")
        return query

    def _fetch(self, kind: str, object_id: str, body: Any) -> Response:
        req = self._validate("FetchEventsRequest", body)
        with self.lock:
            store = self._store(kind, object_id)
            version = parse_version(req.version) if req.version else None
            after: tuple[int, str] | None = None
            if req.cursor:
                try:
                    state = json.loads(base64.urlsafe_b64decode(req.cursor.encode()))
                    version, after = int(state["v"]), (int(state["x"]), str(state["i"]))
                except (ValueError, KeyError, TypeError):
                    raise HttpError(400, "invalid cursor") from None
            if version is None:
                version = store.last_xact
            keys = store.view(version)
            if req.max_xact_id:
                ceiling = parse_version(req.max_xact_id)
                keys = [k for k in keys if -k[0] <= ceiling]
            start = bisect.bisect_right(keys, after) if after else 0
            limit = DEFAULT_PAGE if req.limit is None else req.limit
            if after and self.repeat_page_boundary and limit > 1 and start < len(keys):
                start -= 1
            page = keys[start : start + limit]
            events = [store.event(row_id, version) for _, row_id in page]
        out: dict[str, Any] = {"events": events}
        if page:
            last = page[-1]
            out["cursor"] = base64.urlsafe_b64encode(
                json.dumps({"v": version, "x": last[0], "i": last[1]}).encode()
            ).decode()
        return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")

    # -- experiments --------------------------------------------------------------------------------
    def _create_experiment(self, req: Body) -> Obj:
        project = self._get("project", req.project_id)
        existing = [e for e in self._live("experiment") if e.data["project_id"] == project.id]
        name = req.name or f"experiment-{len(existing) + 1}"
        taken = {e.data["name"] for e in existing}
        if name in taken:
            if not req.ensure_new:
                return next(e for e in existing if e.data["name"] == name)
            name = f"{name}-{uuid.uuid4().hex[:8]}"
        if req.base_exp_id:
            self._get("experiment", req.base_exp_id)
        if req.dataset_id:
            self._get("dataset", req.dataset_id)
        repo_info = dict(req.repo_info) if req.repo_info else None
        data = {
            "id": str(uuid.uuid4()),
            "project_id": project.id,
            "name": name,
            "description": req.description,
            "created": now_iso(),
            "repo_info": repo_info,
            "commit": (repo_info or {}).get("commit"),
            "base_exp_id": req.base_exp_id,
            "deleted_at": None,
            "dataset_id": req.dataset_id,
            "dataset_version": req.dataset_version,
            "parameters_id": req.parameters_id,
            "parameters_version": req.parameters_version,
            "public": bool(req.public),
            "user_id": FAKE_USER_ID,
            "metadata": req.metadata,
            "tags": req.tags,
        }
        obj = self._new("experiment", data)
        obj.store = EventStore("experiment", {"experiment_id": obj.id, "project_id": project.id})
        return obj

    @staticmethod
    def _rolled_up(store: EventStore) -> list[dict[str, Any]]:
        """Root spans, each with the scores of every span of its trace (as `summarize` rolls them up)."""
        events = store.rows()
        roots = {
            e["root_span_id"]: {**e, "scores": dict(e.get("scores") or {})} for e in events if e["is_root"]
        }
        for event in events:
            root = roots.get(event["root_span_id"])
            if root is not None and not event["is_root"]:
                root["scores"].update(event.get("scores") or {})
        return list(roots.values())

    @staticmethod
    def _row_key(event: dict[str, Any]) -> str:
        origin = event.get("origin")
        if isinstance(origin, dict) and origin.get("id"):
            return f"origin:{origin['id']}"
        return "input:" + json.dumps(event.get("input"), sort_keys=True, default=str)

    @classmethod
    def _per_row(cls, rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
        sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            for name, value in (row.get("scores") or {}).items():
                if isinstance(value, int | float):
                    sums[cls._row_key(row)][name].append(float(value))
        return {k: {n: sum(v) / len(v) for n, v in s.items()} for k, s in sums.items()}

    def _summary(
        self, request: Request, experiment: Obj, comparison_id: str | None, with_scores: bool
    ) -> dict[str, Any]:
        project = self._get("project", experiment.data["project_id"])
        project_url = self._project_url(request, project)
        out: dict[str, Any] = {
            "project_name": project.data["name"],
            "experiment_name": experiment.data["name"],
            "project_url": project_url,
            "experiment_url": f"{project_url}/experiments/{quote(experiment.data['name'])}",
            "comparison_experiment_name": None,
        }
        if not with_scores:
            return out
        comparison = None
        if comparison_id:
            comparison = self._get("experiment", comparison_id)
        elif experiment.data.get("base_exp_id"):
            comparison = self.objects["experiment"].get(experiment.data["base_exp_id"])
        else:
            earlier = [
                e
                for e in self._live("experiment")
                if e.data["project_id"] == project.id and e.seq < experiment.seq
            ]
            comparison = max(earlier, key=lambda e: e.seq) if earlier else None
        assert experiment.store is not None
        rows = self._rolled_up(experiment.store)
        base_rows = self._rolled_up(comparison.store) if comparison and comparison.store else []
        if comparison is not None:
            out["comparison_experiment_name"] = comparison.data["name"]
        out["scores"] = self._score_summaries(rows, base_rows if comparison else None)
        out["metrics"] = self._metric_summaries(rows, base_rows if comparison else None)
        return out

    def _score_summaries(self, rows: list[dict], base_rows: list[dict] | None) -> dict[str, Any]:
        def means(items: list[dict]) -> dict[str, float]:
            values: dict[str, list[float]] = defaultdict(list)
            for row in items:
                for name, value in (row.get("scores") or {}).items():
                    if isinstance(value, int | float):
                        values[name].append(float(value))
            return {n: sum(v) / len(v) for n, v in values.items()}

        current, per_row = means(rows), self._per_row(rows)
        base = means(base_rows) if base_rows is not None else {}
        base_per_row = self._per_row(base_rows) if base_rows is not None else {}
        out = {}
        for name, score in sorted(current.items()):
            summary: dict[str, Any] = {"name": name, "score": score, "improvements": 0, "regressions": 0}
            if name in base:
                summary["diff"] = score - base[name]
                for key, scores in per_row.items():
                    before = base_per_row.get(key, {}).get(name)
                    if before is None or name not in scores:
                        continue
                    if scores[name] > before + 1e-9:
                        summary["improvements"] += 1
                    elif scores[name] < before - 1e-9:
                        summary["regressions"] += 1
            out[name] = summary
        return out

    @staticmethod
    def _metric_summaries(rows: list[dict], base_rows: list[dict] | None) -> dict[str, Any]:
        def durations(items: list[dict]) -> list[float]:
            out = []
            for row in items:
                metrics = row.get("metrics") or {}
                if isinstance(metrics.get("start"), int | float) and isinstance(
                    metrics.get("end"), int | float
                ):
                    out.append(metrics["end"] - metrics["start"])
            return out

        current = durations(rows)
        if not current:
            return {}
        summary: dict[str, Any] = {
            "name": "duration",
            "metric": sum(current) / len(current),
            "unit": "s",
            "improvements": 0,
            "regressions": 0,
        }
        base = durations(base_rows) if base_rows else []
        if base:
            summary["diff"] = summary["metric"] - sum(base) / len(base)
        return {"duration": summary}

    # -- prompts and functions ------------------------------------------------------------------
    def _create_function(self, kind: str, data: dict[str, Any], function_data: dict[str, Any]) -> dict:
        with self.lock:
            self._get("project", data["project_id"])
            for existing in self._live("prompt") + self._live("function"):
                if (
                    existing.data["project_id"] == data["project_id"]
                    and existing.data["slug"] == data["slug"]
                ):
                    return self._function_at(existing, None)
            xact = self._next_xact()
            state = {
                "id": str(uuid.uuid4()),
                "project_id": data["project_id"],
                "org_id": self.org_id,
                "log_id": "p",
                "name": data["name"],
                "slug": data["slug"],
                "description": data.get("description"),
                "created": now_iso(),
                "prompt_data": data.get("prompt_data"),
                "tags": data.get("tags"),
                "metadata": None,
                "function_type": data.get("function_type"),
                "function_data": function_data,
                "function_schema": data.get("function_schema"),
                "origin": data.get("origin"),
            }
            obj = self._new(
                kind, {"id": state["id"], "project_id": state["project_id"], "slug": data["slug"]}
            )
            obj.versions.append((xact, state))
            return self._function_at(obj, None)

    def _function_obj(self, function_id: str) -> Obj:
        for kind in ("function", "prompt"):
            obj = self.objects[kind].get(function_id)
            if obj is not None and not obj.data.get("deleted_at"):
                return obj
        raise HttpError(404, f"function {function_id} not found")

    def _patch_function(self, kind: str, object_id: str, changes: dict[str, Any]) -> dict:
        with self.lock:
            obj = self._get(kind, object_id)
            state = {**obj.versions[-1][1], **changes}
            obj.versions.append((self._next_xact(), state))
            obj.data["slug"] = state["slug"]
            return self._function_at(obj, None)

    def _function_at(self, obj: Obj, version: str | None, as_function: bool = False) -> dict[str, Any]:
        """The prompt/function as of `version`; a prompt read through /v1/function shows its
        `function_data` ({"type": "prompt"}) like any other function."""
        at = parse_version(version) if version else None
        chosen = None
        for xact, state in obj.versions:
            if at is None or xact <= at:
                chosen = (xact, state)
        if chosen is None:
            raise HttpError(404, f"{obj.kind} {obj.id} has no version at or before {version}")
        out = {**chosen[1], "_xact_id": str(chosen[0])}
        if obj.kind == "prompt" and not as_function:
            out.pop("function_data", None)
            out.pop("function_schema", None)
            out.pop("origin", None)
        return out

    def _list_functions(self, request: Request, kind: str, name_param: str) -> dict:
        query = request.query_params
        if query.get("environment") and query.get("version"):
            raise HttpError(400, "pass only one of version and environment")
        kinds = ("prompt",) if kind == "prompt" else ("prompt", "function")
        items = sorted((o for k in kinds for o in self._live(k)), key=lambda o: -o.seq)

        def state(o: Obj) -> dict[str, Any]:
            return o.versions[-1][1]

        filters: dict[str, Callable[[Obj], bool]] = {
            name_param: lambda o: state(o)["name"] == query[name_param],
            "slug": lambda o: state(o)["slug"] == query["slug"],
            "project_id": lambda o: o.data["project_id"] == query["project_id"],
            "project_name": lambda o: (
                self._get("project", o.data["project_id"]).data["name"] == query["project_name"]
            ),
        }
        for name, test in filters.items():
            if name in query:
                items = [o for o in items if test(o)]
        ids = query.getlist("ids")
        if ids:
            items = [o for o in items if o.id in ids]
        version = query.get("version")
        if version:
            at = parse_version(version)
            items = [o for o in items if o.versions[0][0] <= at]
        position = [o.id for o in items]
        after, before = query.get("starting_after"), query.get("ending_before")
        if after:
            items = items[position.index(after) + 1 :] if after in position else []
        if before:
            items = items[: position.index(before)] if before in position else []
        limit = self._int(query.get("limit"), "limit")
        if limit is not None:
            items = items[:limit]
        return {"objects": [self._function_at(o, version, as_function=kind == "function") for o in items]}

    # -- running functions ----------------------------------------------------------------------
    def _callable_from_ref(self, ref: Any) -> _Fn:
        if "function_id" in ref:
            obj = self._function_obj(ref.function_id)
            spec = self._function_at(obj, ref.version)
            return self._callable_from_data(self._function_data(obj, spec), spec)
        if "project_name" in ref:
            project = self._project_by_name(ref.project_name)
            for obj in self._live("prompt") + self._live("function"):
                if obj.data["project_id"] == project.id and obj.data["slug"] == ref.slug:
                    spec = self._function_at(obj, ref.version)
                    return self._callable_from_data(self._function_data(obj, spec), spec)
            raise HttpError(404, f"function {ref.slug!r} not found in project {ref.project_name!r}")
        if "global_function" in ref:
            return self._global(ref.global_function)
        if "prompt_session_id" in ref:
            raise HttpError(404, f"prompt session {ref.prompt_session_id} not found")
        if "code" in ref:
            if ref.inline_context.runtime != "python":
                raise HttpError(
                    400, f"the fake runs python inline code only, not {ref.inline_context.runtime}"
                )
            return _Fn.from_code(ref.code, ref.name or "inline_code")
        if "inline_function" in ref:
            spec = {"name": ref.name or "inline_function", "prompt_data": ref.inline_prompt}
            return self._callable_from_data(ref.inline_function, spec)
        assert "inline_prompt" in ref
        return _Fn.from_prompt(ref.inline_prompt, ref.name or "inline_prompt")

    @staticmethod
    def _function_data(obj: Obj, spec: dict[str, Any]) -> dict[str, Any]:
        return obj.versions[-1][1]["function_data"] if obj.kind == "prompt" else spec["function_data"]

    def _global(self, name: str) -> _Fn:
        if name not in RUNNABLE_GLOBALS:
            raise HttpError(
                400,
                f"global function {name!r} needs a model provider; the fake runs {sorted(RUNNABLE_GLOBALS)}",
            )

        def score(input: Any, output: Any, expected: Any, metadata: dict) -> Any:
            import autoevals

            return getattr(autoevals, RUNNABLE_GLOBALS[name])()(output=output, expected=expected)

        return _Fn(name, score, ("input", "output", "expected", "metadata"))

    def _callable_from_data(self, function_data: dict[str, Any], spec: dict[str, Any]) -> _Fn:
        kind = function_data.get("type")
        name = spec.get("name") or "function"
        if kind == "code":
            data = function_data.get("data") or {}
            runtime = (data.get("runtime_context") or {}).get("runtime")
            if data.get("type") != "inline" or runtime != "python":
                raise HttpError(400, "the fake runs inline python code functions only")
            return _Fn.from_code(data["code"], name)
        if kind == "global":
            return self._global(function_data.get("name", ""))
        if kind == "prompt":
            return _Fn.from_prompt(spec.get("prompt_data") or {}, name)
        raise HttpError(400, f"the fake cannot run functions of type {kind!r}")

    # -- eval runs ------------------------------------------------------------------------------
    def _prepare_eval(self, req: Body) -> _EvalRun:
        project = self._get("project", req.project_id)
        rows, dataset_id = self._eval_rows(req)
        task = self._callable_from_ref(req.task)
        scorers = [self._callable_from_ref(s) for s in req.scores]
        base_id = req.base_experiment_id
        if base_id:
            self._get("experiment", base_id)
        elif req.base_experiment_name:
            matches = [
                e
                for e in self._live("experiment")
                if e.data["project_id"] == project.id and e.data["name"] == req.base_experiment_name
            ]
            if not matches:
                raise HttpError(404, f"experiment {req.base_experiment_name!r} not found")
            base_id = matches[0].id
        dataset_version = None
        if "dataset_id" in req.data or "dataset_name" in req.data:
            dataset_version = req.data.dataset_version
        create = Body(
            project_id=project.id,
            name=req.experiment_name or req.name or "eval",
            ensure_new=True,
            metadata=req.metadata,
            tags=req.tags,
            repo_info=req.repo_info,
            base_exp_id=base_id,
            dataset_id=dataset_id,
            dataset_version=dataset_version,
            public=bool(req.is_public),
        )
        experiment = self._create_experiment(create)
        trials = int(req.trial_count or 1)
        if trials < 1:
            raise HttpError(400, "trial_count must be at least 1")
        return _EvalRun(experiment, rows, task, scorers, trials, base_id, req.timeout)

    def _eval_rows(self, req: Body) -> tuple[list[dict[str, Any]], str | None]:
        data = req.data
        if "data" in data:
            rows = []
            for i, item in enumerate(data.data):
                if not isinstance(item, dict):
                    raise HttpError(400, f"data.data[{i}] must be an object with input/expected/metadata")
                rows.append(item)
            return rows, None
        if "experiment_name" in data:
            for experiment in self._live("experiment"):
                if (
                    experiment.data["project_id"] == req.project_id
                    and experiment.data["name"] == data.experiment_name
                ):
                    assert experiment.store is not None
                    return experiment.store.rows(), None
            raise HttpError(404, f"experiment {data.experiment_name!r} not found")
        if "dataset_id" in data:
            dataset = self._get("dataset", data.dataset_id)
        else:
            project = self._project_by_name(data.project_name)
            found = [
                d
                for d in self._live("dataset")
                if d.data["project_id"] == project.id and d.data["name"] == data.dataset_name
            ]
            if not found:
                raise HttpError(404, f"dataset {data.dataset_name!r} not found in {data.project_name!r}")
            dataset = found[0]
        assert dataset.store is not None
        version = parse_version(data.dataset_version) if data.dataset_version else None
        rows = dataset.store.rows(version)
        for row in rows:
            row["origin"] = {
                "object_type": "dataset",
                "object_id": dataset.id,
                "id": row["id"],
                "_xact_id": row["_xact_id"],
            }
        return rows, dataset.id

    def _execute_eval(self, run: _EvalRun) -> None:
        """Run the eval row by row; each row's spans are written as they finish (one transaction per row),
        so a reader sees the experiment fill up as on the real platform."""
        started = time.monotonic()
        done = 0
        for row in run.rows:
            for trial in range(run.trials):
                if run.timeout_ms is not None and (time.monotonic() - started) * 1000 > run.timeout_ms:
                    return
                events = self._eval_one(run, row, trial)
                with self.lock:
                    assert run.experiment.store is not None
                    run.experiment.store.apply(events, self._next_xact())
                    self.events_written["experiment"] += len(events)
                done += 1
                if self.eval_row_hook is not None:
                    self.eval_row_hook(done)

    @staticmethod
    def _eval_one(run: _EvalRun, row: dict[str, Any], trial: int) -> list[dict[str, Any]]:
        """One row's trace as Braintrust's eval framework logs it: a root `eval` span, one child `score`
        span per scorer carrying its score, and failed scorers in the root's `metadata.scorer_errors`
        (braintrust SDK 0.48.1 `braintrust/framework.py`)."""
        args = {
            "input": row.get("input"),
            "expected": row.get("expected"),
            "metadata": row.get("metadata") or {},
        }
        start = time.time()
        root_id = str(uuid.uuid4())
        metadata = {**args["metadata"], "trial": trial} if run.trials > 1 else dict(args["metadata"])
        event: dict[str, Any] = {
            "id": root_id,
            "span_id": root_id,
            "root_span_id": root_id,
            "input": args["input"],
            "expected": args["expected"],
            "metadata": metadata,
            "tags": row.get("tags"),
            "span_attributes": {"name": "eval", "type": "eval"},
        }
        if row.get("origin"):
            event["origin"] = row["origin"]
        try:
            output = _jsonable(run.task.call(output=None, **args))
        except Exception as exc:
            event.update(error=f"{type(exc).__name__}: {exc}", metrics={"start": start, "end": time.time()})
            return [event]
        children: list[dict[str, Any]] = []
        errors: dict[str, str] = {}
        for scorer in run.scorers:
            span_id = str(uuid.uuid4())
            try:
                name, value = scorer.score(output=output, **args)
            except Exception as exc:
                errors[scorer.name] = f"{type(exc).__name__}: {exc}"
                continue
            children.append(
                {
                    "id": span_id,
                    "span_id": span_id,
                    "root_span_id": root_id,
                    "span_parents": [root_id],
                    "span_attributes": {"name": name, "type": "score", "purpose": "scorer"},
                    "scores": {name: value},
                    "metrics": {"start": time.time(), "end": time.time()},
                }
            )
        if errors:
            metadata["scorer_errors"] = errors
        event.update(output=output, metrics={"start": start, "end": time.time()})
        return [event, *children]

    async def _stream_eval(self, request: Request, run: _EvalRun) -> AsyncIterator[bytes]:
        with self.lock:
            start = self._summary(request, run.experiment, None, False)
        yield f"event: start\ndata: {json.dumps(start)}\n\n".encode()
        try:
            await asyncio.to_thread(self._execute_eval, run)
            with self.lock:
                summary = self._summary(request, run.experiment, run.base_id, True)
        except Exception as exc:
            yield f"event: error\ndata: {json.dumps(str(exc))}\n\n".encode()
        else:
            yield f"event: summary\ndata: {json.dumps(summary)}\n\n".encode()
        yield b"event: done\ndata: \n\n"


@dataclass
class _EvalRun:
    experiment: Obj
    rows: list[dict[str, Any]]
    task: _Fn
    scorers: list[_Fn]
    trials: int
    base_id: str | None
    timeout_ms: float | None


def _reject_constant(name: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity` are not JSON (RFC 8259); a strict server rejects them."""
    raise ValueError(f"{name} is not valid JSON")
