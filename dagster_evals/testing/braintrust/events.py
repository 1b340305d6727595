"""Event writes and reads of the fake Braintrust server: `insert` and `fetch` of datasets, experiments and
project logs, and the official SDK's batched write path `POST /logs3` (a mixin of `BraintrustFake`).

Shapes: `InsertDatasetEventRequest`, `InsertExperimentEventRequest`, `InsertProjectLogsEventRequest` and
`FetchEventsRequest` of braintrustdata/braintrust-openapi openapi/spec.json (vendored in `spec/`); `/logs3`
rows as braintrust SDK 0.48.1 `logger.py` sends them (`rows` with `dataset_id`, `experiment_id`, or
`project_id` + `log_id: "g"`; `api_version: 2`).
"""

from __future__ import annotations

import base64
import bisect
import json
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dagster_evals.testing.asgi import Route, compact_json
from dagster_evals.testing.braintrust.objects import ObjectRoutes
from dagster_evals.testing.braintrust.openapi import Body
from dagster_evals.testing.braintrust.store import EventStore, HttpError, Obj, parse_version

DEFAULT_PAGE = 1000
INSERT_SCHEMAS = {
    "dataset": "InsertDatasetEventRequest",
    "experiment": "InsertExperimentEventRequest",
    "project_logs": "InsertProjectLogsEventRequest",
}


class EventRoutes(ObjectRoutes):
    def _event_routes(self, kind: str) -> list[Route]:
        """`POST /v1/<kind>/{id}/insert`, and `fetch` by POST body or GET query."""

        def insert(request: Request, body: Any, object_id: str) -> dict:
            return self._insert(kind, object_id, INSERT_SCHEMAS[kind], body)

        def fetch(request: Request, body: Any, object_id: str) -> Response:
            return self._fetch(kind, object_id, body or {})

        def fetch_get(request: Request, body: Any, object_id: str) -> Response:
            return self._fetch(kind, object_id, self._fetch_query(request))

        return [
            Route("POST", f"/v1/{kind}/{{id}}/insert", insert),
            Route("POST", f"/v1/{kind}/{{id}}/fetch", fetch),
            Route("GET", f"/v1/{kind}/{{id}}/fetch", fetch_get),
        ]

    def _insert_fetch_routes(self) -> list[Route]:
        return [
            *self._event_routes("dataset"),
            *self._event_routes("experiment"),
            *self._event_routes("project_logs"),
        ]

    def _logs3(self, request: Request, body: Any) -> dict:
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

    def _store(self, kind: str, object_id: str) -> EventStore:
        if kind == "project_logs":
            project = self._get("project", object_id)
            if object_id not in self.logs:
                self.logs[object_id] = EventStore(
                    "project_logs", {"project_id": project.id, "org_id": self.org_id, "log_id": "g"}
                )
            return self.logs[object_id]
        obj: Obj = self._get(kind, object_id)
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

    def _fetch_query(self, request: Request) -> dict[str, Any]:
        query: dict[str, Any] = dict(request.query_params)
        if "limit" in query:
            query["limit"] = self._int(query["limit"], "limit")
        return query

    def _fetch(self, kind: str, object_id: str, body: Any) -> Response:
        """One page of events, newest first; the opaque `cursor` pins the version of the first page."""
        req: Body = self._validate("FetchEventsRequest", body)
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
        return compact_json(out)
