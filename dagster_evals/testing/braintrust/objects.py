"""Projects and datasets of the fake Braintrust server, and what every object kind shares: storage
helpers, get/patch/delete by id, and id-cursor lists (a mixin of `BraintrustFake`).

Request bodies are validated against the published schemas (`CreateProject`, `PatchProject`,
`CreateDataset`, `PatchDataset`, … in braintrustdata/braintrust-openapi openapi/spec.json, vendored in
`spec/`); response objects carry the spec's `Project` / `Dataset` fields.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

from dagster_evals.testing.asgi import Route, cursor_window
from dagster_evals.testing.braintrust import openapi
from dagster_evals.testing.braintrust.openapi import Body
from dagster_evals.testing.braintrust.store import EventStore, HttpError, Obj, now_iso

FAKE_USER_ID = "5f0c8a3e-2b7d-4c1e-9a6f-0d3b8e1c7a42"


class ObjectRoutes:
    """The storage and shared routes every other part of the fake builds on."""

    # State set up by BraintrustFake.
    lock: threading.RLock
    objects: dict[str, dict[str, Obj]]
    logs: dict[str, EventStore]
    org_name: str
    org_id: str
    app_url: str | None
    events_written: Counter[str]
    repeat_page_boundary: bool
    eval_row_hook: Callable[[int], None] | None
    hold_evals: threading.Event | None
    eval_drops_metadata: bool
    _xact: int
    _seq: int

    # -- storage -------------------------------------------------------------------------------------------
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

    def _project_by_name(self, name: str) -> Obj:
        for project in self._live("project"):
            if project.data["name"] == name:
                return project
        raise HttpError(404, f"project {name!r} not found")

    def _project_url(self, request: Request, project: Obj) -> str:
        base = (self.app_url or str(request.base_url)).rstrip("/")
        return f"{base}/app/{quote(self.org_name)}/p/{quote(project.data['name'])}"

    @staticmethod
    def _validate(schema: str, body: Any, *, closed: bool = True) -> Body:
        """`body` checked against the published schema `schema` (400 naming the field otherwise)."""
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        return openapi.parse(body, schema, closed=closed)

    # -- what every kind shares ----------------------------------------------------------------------------
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

    def _page_of(self, request: Request, items: list[Obj]) -> list[Obj]:
        """`ids`, then the `starting_after` / `ending_before` / `limit` window of a list endpoint."""
        query = request.query_params
        ids = query.getlist("ids")
        if ids:
            items = [o for o in items if o.id in ids]
        return cursor_window(
            items,
            lambda o: o.id,
            query.get("starting_after"),
            query.get("ending_before"),
            self._int(query.get("limit"), "limit"),
            reject=lambda message: HttpError(400, message),
        )

    def _list(self, request: Request, kind: str, name_param: str) -> dict:
        """`GET /v1/<kind>`: newest first, filtered by name (and project for datasets and experiments)."""
        query = request.query_params
        filters: dict[str, Callable[[Obj, str], bool]] = {name_param: lambda o, v: o.data["name"] == v}
        if kind != "project":
            filters["project_id"] = lambda o, v: o.data["project_id"] == v
            filters["project_name"] = lambda o, v: (
                self._get("project", o.data["project_id"]).data["name"] == v
            )
        items = sorted(self._live(kind), key=lambda o: -o.seq)
        for name, test in filters.items():
            if name in query:
                items = [o for o in items if test(o, query[name])]
        return {"objects": [dict(o.data) for o in self._page_of(request, items)]}

    def _list_route(self, kind: str, name_param: str) -> Route:
        return Route("GET", f"/v1/{kind}", lambda request, body: self._list(request, kind, name_param))

    def _summary_head(self, request: Request, kind: str, obj: Obj) -> dict[str, Any]:
        """The names and links that open a dataset's or experiment's summary (`SummarizeDatasetResponse`,
        `SummarizeExperimentResponse`: `project_name`, `<kind>_name`, `project_url`, `<kind>_url`)."""
        project = self._get("project", obj.data["project_id"])
        project_url = self._project_url(request, project)
        return {
            "project_name": project.data["name"],
            f"{kind}_name": obj.data["name"],
            "project_url": project_url,
            f"{kind}_url": f"{project_url}/{kind}s/{quote(obj.data['name'])}",
        }

    def _object_routes(self, kind: str, patch_schema: str, *, empty_patch: bool = False) -> list[Route]:
        """`GET`, `PATCH` (validated against `patch_schema`; `empty_patch`: no body means no change) and
        `DELETE` (soft: sets `deleted_at`) of `/v1/<kind>/{id}`."""

        def get(request: Request, body: Any, object_id: str) -> dict:
            return dict(self._get(kind, object_id).data)

        def patch(request: Request, body: Any, object_id: str) -> dict:
            req = self._validate(patch_schema, (body or {}) if empty_patch else body)
            with self.lock:
                obj = self._get(kind, object_id)
                obj.data.update(req)
                return dict(obj.data)

        def delete(request: Request, body: Any, object_id: str) -> dict:
            with self.lock:
                obj = self._get(kind, object_id)
                obj.data["deleted_at"] = now_iso()
                return dict(obj.data)

        path = f"/v1/{kind}/{{id}}"
        return [Route("GET", path, get), Route("PATCH", path, patch), Route("DELETE", path, delete)]

    # -- projects ------------------------------------------------------------------------------------------
    def _project_routes(self) -> list[Route]:
        return [
            Route("POST", "/v1/project", self._create_project),
            self._list_route("project", "project_name"),
            *self._object_routes("project", "PatchProject"),
        ]

    def _create_project(self, request: Request, body: Any) -> dict:
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

    # -- datasets ------------------------------------------------------------------------------------------
    def _dataset_routes(self) -> list[Route]:
        return [
            Route("POST", "/v1/dataset", self._create_dataset),
            self._list_route("dataset", "dataset_name"),
            *self._object_routes("dataset", "PatchDataset"),
            Route("GET", "/v1/dataset/{id}/summarize", self._summarize_dataset),
        ]

    def _create_dataset(self, request: Request, body: Any) -> dict:
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

    def _summarize_dataset(self, request: Request, body: Any, dataset_id: str) -> dict:
        with self.lock:
            dataset = self._get("dataset", dataset_id)
            out = self._summary_head(request, "dataset", dataset)
            if request.query_params.get("summarize_data") == "true":
                assert dataset.store is not None
                out["data_summary"] = {"total_records": dataset.store.live}
            return out
