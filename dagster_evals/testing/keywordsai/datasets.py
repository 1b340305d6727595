"""Dataset, dataset-log and request-log routes of the Keywords AI fake (a mixin of `KeywordsAIFake`).

Shapes: respanai/respan-python-api (see spec/respan_api.json for commit and paths) and
Keywords-AI/docs@71815dd53e0a88e37d8fe3308b8f9635ebf6b850:apis/evaluate/datasets/*.mdx.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request

from dagster_evals.testing.keywordsai.errors import KeywordsAIError
from dagster_evals.testing.keywordsai.filters import matches, sample
from dagster_evals.testing.keywordsai.spec import check_body, response_fields

# Fields of one log in a bulk insert: src/respan/datasets/types/bulk_create_dataset_logs_request_logs_item.py
LOG_FIELDS = {
    k: {"kind": v, "required": False}
    for k, v in response_fields("bulk_create_dataset_logs_request_logs_item").items()
}
LOG_SORT_FIELDS = ("unique_id", "id", "timestamp")
REQUEST_LOG_WINDOW = timedelta(hours=1)  # logs-list-endpoint.mdx: start_time "defaults to 1 hour ago"


def parse_time(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise KeywordsAIError(400, f"{name}: Datetime has wrong format: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class DatasetRoutes:
    # State and helpers provided by KeywordsAIFake.
    datasets: dict[str, dict[str, Any]]
    logs: dict[str, dict[str, dict[str, Any]]]
    reports: dict[str, list[dict[str, Any]]]
    request_logs: list[dict[str, Any]]
    pending_deletes: list[tuple[int, str, list[str]]]
    delete_lag: int
    metadata_syntax: Any
    _served: int
    _seq: int
    lock: Any
    _now: Any
    now: Any
    _page: Any
    error: Any

    # -- seeding -------------------------------------------------------------------------------------------
    def add_request_logs(self, logs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Record request logs (input, output, model, metadata, timestamp…); returns their unique ids."""
        ids = []
        with self.lock:
            for log in logs:
                record = {
                    "unique_id": uuid.uuid4().hex,
                    "status_code": 200,
                    "status": "success",
                    "log_type": "chat",
                    "model": "gpt-4o-mini",
                    "metadata": {},
                    "timestamp": self._now(),
                    "cost": 0.0,
                    "latency": 0.0,
                    **dict(log),
                }
                self.request_logs.append(record)
                ids.append(record["unique_id"])
        return ids

    # -- datasets ------------------------------------------------------------------------------------------
    def _dataset(self, dataset_id: str) -> dict[str, Any]:
        dataset = self.datasets.get(dataset_id)
        if dataset is None:
            raise self.error(404, "Dataset not found or not in your organization")
        return dataset

    def _render_dataset(self, dataset: dict[str, Any]) -> dict[str, Any]:
        # src/respan/datasets/types/list_datasets_response_results_item.py
        shown = {k: v for k, v in dataset.items() if not k.startswith("_")}
        return {**shown, "log_count": len(self.logs[dataset["id"]])}

    def _list_datasets(self, request: Request, body: Any) -> tuple[int, Any]:
        sort_by = request.query_params.get("sort_by", "-created_at")
        field = sort_by.lstrip("-")
        if field not in ("created_at", "updated_at", "name"):
            raise self.error(400, f"sort_by: unknown field {field!r}")
        filters = (body or {}).get("filters") or {}
        items = [d for d in self.datasets.values() if matches(d, filters)]
        items.sort(key=lambda d: (d[field], d["_seq"]), reverse=sort_by.startswith("-"))
        return 200, self._page(request, [self._render_dataset(d) for d in items])

    def _create_dataset(self, request: Request, body: Any) -> tuple[int, Any]:
        body = body or {}
        source_logs: list[dict[str, Any]] = []
        if body.get("source_dataset_id"):
            source = self._dataset(body["source_dataset_id"])
            body.setdefault("name", f"{source['name']} (copy)")
            source_logs = list(self.logs[source["id"]].values())
        elif not body.get("name"):
            raise self.error(400, "name: This field is required.")
        elif not body.get("is_empty"):
            for name in ("start_time", "end_time"):
                if body.get(name) is None:
                    raise self.error(400, f"{name}: This field is required unless is_empty is true.")
            sampling = body.get("sampling", 100)
            if not 1 <= sampling <= 100:
                raise self.error(400, f"sampling: must be a percentage between 1 and 100, got {sampling}")
            source_logs = [
                self._log_from_request_log(log)
                for log in self._matching_request_logs(
                    body.get("initial_log_filters") or {},
                    parse_time(body["start_time"], "start_time"),
                    parse_time(body["end_time"], "end_time"),
                    sampling,
                )
            ]
        self._seq += 1
        dataset_id = str(uuid.uuid4())
        now = self._now()
        # src/respan/datasets/types/create_dataset_response.py (+ list item fields)
        self.datasets[dataset_id] = {
            "id": dataset_id,
            "name": body["name"],
            "type": "sampling",
            "description": body.get("description", ""),
            "created_at": now,
            "updated_at": now,
            "organization_id": 1,
            "initial_log_filters": body.get("initial_log_filters") or {},
            "status": "ready",
            "running_status": "pending",
            "running_progress": 0,
            "completed_annotation_count": 0,
            "starred": False,
            "tags": [],
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
        dataset.update({k: v for k, v in (body or {}).items() if v is not None}, updated_at=self._now())
        return 200, self._render_dataset(dataset)

    def _delete_dataset(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        del self.datasets[dataset_id]
        self.logs.pop(dataset_id, None)
        self.reports.pop(dataset_id, None)
        return 204, None

    # -- dataset logs --------------------------------------------------------------------------------------
    def _store_log(self, dataset_id: str, log: Mapping[str, Any]) -> dict[str, Any]:
        log_id = uuid.uuid4().hex
        metrics = dict(log.get("metrics") or {})
        expected = log.get("expected_output")
        if isinstance(expected, dict | list):
            # Observed on the real API (not documented): a structured expected_output comes back as the
            # Python repr of the object, e.g. "{'answer': 4}".
            expected = repr(expected)
        record = {
            "id": log_id,
            "unique_id": log_id,
            "dataset_id": dataset_id,
            "organization_id": "org",
            "environment": "prod",
            "timestamp": self._now(),
            "input": log.get("input"),
            "output": log.get("output"),
            "expected_output": expected,
            "metadata": dict(log.get("metadata") or {}),
            "cost": metrics.get("cost", 0.0),
            "latency": metrics.get("latency", 0.0),
            "status": "success",
            "status_code": 200,
            "annotation_status": "pending",
            "scores": {},
        }
        self.logs[dataset_id][log_id] = record
        self.datasets[dataset_id]["updated_at"] = self._now()
        return record

    def _create_log(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        record = self._store_log(dataset_id, body)
        # src/respan/datasets/types/create_dataset_log_response.py
        return 201, {"message": "Dataset log created.", "unique_id": record["unique_id"]}

    def _bulk_logs(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        if "logs" not in body:  # the docs' time-range import on this path (logs-add.mdx)
            return self._import_logs(request, body, dataset_id)
        errors = []
        created = 0
        for index, log in enumerate(body["logs"]):
            try:
                check_body(log, LOG_FIELDS, f"logs[{index}].")
                for name, value in (log.get("metrics") or {}).items():
                    if not isinstance(value, int | float) or isinstance(value, bool):
                        raise ValueError(f"logs[{index}].metrics.{name}: expected a number")
            except Exception as exc:
                errors.append({"index": index, "error": str(exc)})
                continue
            self._store_log(dataset_id, log)
            created += 1
        # src/respan/datasets/types/bulk_create_dataset_logs_response.py (+ _errors_item.py)
        return 201, {
            "success_count": created,
            "error_count": len(errors),
            "errors": errors,
            "total_errors": len(errors),
        }

    def _import_logs(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        sampling = body.get("sampling_percentage", 100)
        if not 1 <= sampling <= 100:
            raise self.error(400, f"sampling_percentage: must be between 1 and 100, got {sampling}")
        matched = self._matching_request_logs(
            body.get("filters") or {},
            parse_time(body["start_time"], "start_time"),
            parse_time(body["end_time"], "end_time"),
            sampling,
        )
        for log in matched:
            self._store_log(dataset_id, self._log_from_request_log(log))
        # src/respan/datasets/types/import_dataset_logs_response.py; logs-add.mdx message
        return 200, {"message": "Logs are being added to dataset in the background"}

    def _list_logs(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        filters = (body or {}).get("filters") or {}
        sort_by = request.query_params.get("sort_by", "unique_id")
        field = sort_by.lstrip("-")
        if field not in LOG_SORT_FIELDS:
            raise self.error(400, f"sort_by: unknown field {field!r}")
        syntax = self.metadata_syntax
        logs = [log for log in self.logs[dataset_id].values() if matches(log, filters, syntax=syntax)]
        logs.sort(key=lambda log: log[field], reverse=sort_by.startswith("-"))
        page = self._page(request, logs, default_size=10)
        page["results"] = [self._render_log(log) for log in page["results"]]
        page["filters_data"] = {}
        return 200, page

    def _render_log(self, log: Mapping[str, Any]) -> dict[str, Any]:
        # src/respan/datasets/types/list_dataset_logs_response_count_results_item.py: `scores` is an
        # object (the docs page logs-list.mdx says "Array of evaluation scores"; the client accepts both).
        return {**log, "scores": {k: dict(v) for k, v in log["scores"].items()}}

    def _delete_logs(self, request: Request, body: Any, dataset_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        body = body or {}
        logs = self.logs[dataset_id]
        if body.get("is_deleting_all_logs"):
            doomed = list(logs)
        elif body.get("filters"):
            doomed = [
                log_id
                for log_id, log in logs.items()
                if matches(log, body["filters"], syntax=self.metadata_syntax)
            ]
        else:
            raise self.error(400, "filters: pass filters, or set is_deleting_all_logs to true")
        # logs-remove.mdx: removal happens in the background.
        self.pending_deletes.append((self._served + self.delete_lag, dataset_id, doomed))
        return 200, {"message": "Logs are being removed from dataset in the background"}

    def _delete_log(self, request: Request, body: Any, dataset_id: str, unique_id: str) -> tuple[int, Any]:
        self._dataset(dataset_id)
        if self.logs[dataset_id].pop(unique_id, None) is None:
            raise self.error(404, "Log not found.")
        return 204, None  # logs-delete.mdx: 204 No Content

    # -- request logs --------------------------------------------------------------------------------------
    def _matching_request_logs(
        self, filters: Mapping[str, Any], start: datetime, end: datetime, sampling: int
    ) -> list[dict[str, Any]]:
        def in_window(log: Mapping[str, Any]) -> bool:
            return start <= parse_time(log["timestamp"], "timestamp") <= end

        found = [
            log for log in self.request_logs if in_window(log) and matches(log, filters, request_log=True)
        ]
        return sample(found, sampling)

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
        query = request.query_params
        end = parse_time(query["end_time"], "end_time") if "end_time" in query else self.now()
        start = (
            parse_time(query["start_time"], "start_time")
            if "start_time" in query
            else self.now() - REQUEST_LOG_WINDOW
        )
        filters = dict((body or {}).get("filters") or {})
        # URL quick filters: any other query parameter is a filter (logs-list-endpoint.mdx).
        paging = {"page", "page_size", "sort_by", "start_time", "end_time", "is_test", "all_envs",
                  "fetch_filters", "include_fields"}  # fmt: skip
        filters.update({k: {"operator": "", "value": [v]} for k, v in query.items() if k not in paging})
        sort_by = query.get("sort_by", "-id")
        field = "timestamp" if sort_by.lstrip("-") in ("id", "timestamp") else sort_by.lstrip("-")
        logs = self._matching_request_logs(filters, start, end, 100)
        try:
            logs.sort(key=lambda log: log.get(field) or 0, reverse=sort_by.startswith("-"))
        except TypeError:
            raise self.error(400, f"sort_by: cannot sort by {field!r}") from None
        return 200, self._page(request, logs, 1000, default_size=100)
