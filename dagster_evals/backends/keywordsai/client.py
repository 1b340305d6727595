"""Keywords AI (Respan) HTTP calls: one method per endpoint, one generic paginated list.

Paths and bodies: DOCS = Keywords-AI/docs@71815dd53e0a88e37d8fe3308b8f9635ebf6b850, SPEC =
respanai/respan-python-api@3b12c48512a85a22f89b521e695bfaa50ab55c12 `src/respan/<resource>/raw_client.py`.
Writes that are not safe to repeat are sent once (a 429 is still retried: the server throttles before
acting); the layers above decide how to recover from an ambiguous failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from dagster_evals.backends.keywordsai.models import (
    MAX_PAGE_SIZE,
    MAX_REQUEST_LOG_PAGE_SIZE,
    BulkCreateResult,
    CreateDatasetRequest,
    Dataset,
    DatasetLog,
    DatasetLogInput,
    EvalTask,
    Evaluator,
    Filters,
    ImportLogsRequest,
    Page,
    Prompt,
    PromptVersionObj,
    RequestLog,
    RunEvalResponse,
)
from dagster_evals.engine.http import HttpClient

M = TypeVar("M", bound=BaseModel)


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _iso(value: datetime) -> str:
    return value.isoformat()


class KeywordsAIClient:
    """One method per Keywords AI endpoint on the shared `HttpClient` (auth, retries, pacing, redaction)."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def __repr__(self) -> str:
        return f"KeywordsAIClient({self.http!r})"

    def close(self) -> None:
        self.http.close()

    # -- pagination ---------------------------------------------------------------------------------------
    def page(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Page[M]:
        """One page of a list endpoint (reads are safe to retry, POST ones included)."""
        query = _drop_none({"page": page, "page_size": page_size, **(params or {})})
        raw = self.http.request(method, path, params=query, json=body, idempotent=True)
        return Page[model].model_validate(raw or {})  # type: ignore[valid-type]

    def iter_all(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Iterator[M]:
        """Every item of a list endpoint, page by page (page numbers, not the absolute `next` URLs, so an
        overridden base URL keeps working)."""
        number = 1
        while True:
            result = self.page(
                model, method, path, page=number, page_size=page_size, params=params, body=body
            )
            yield from result.results
            if not result.next or not result.results:
                return
            number += 1

    # -- datasets -------------------------------------------------------------------------------------------
    def iter_datasets(
        self, *, filters: Filters | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[Dataset]:
        """`POST /api/datasets/list/` with `{"filters": …}` (SPEC list_datasets; DOCS list.mdx: GET)."""
        return self.iter_all(
            Dataset, "POST", "/api/datasets/list/", page_size=page_size, body={"filters": dict(filters or {})}
        )

    def create_dataset(self, request: CreateDatasetRequest) -> Dataset:
        """`POST /api/datasets/` → the dataset (DOCS create.mdx; SPEC create_dataset)."""
        body = self.http.post(
            "/api/datasets/", json=request.model_dump(mode="json", exclude_none=True), idempotent=False
        )
        return Dataset.model_validate(body)

    def get_dataset(self, dataset_id: str) -> Dataset:
        """`GET /api/datasets/{dataset_id}/`."""
        return Dataset.model_validate(self.http.get(f"/api/datasets/{dataset_id}/"))

    def update_dataset(
        self, dataset_id: str, *, name: str | None = None, description: str | None = None
    ) -> Dataset:
        """`PATCH /api/datasets/{dataset_id}/` with `name` / `description`."""
        body = _drop_none({"name": name, "description": description})
        return Dataset.model_validate(self.http.patch(f"/api/datasets/{dataset_id}/", json=body))

    def delete_dataset(self, dataset_id: str) -> None:
        """`DELETE /api/datasets/{dataset_id}/` → 204."""
        self.http.delete(f"/api/datasets/{dataset_id}/")

    # -- dataset logs ---------------------------------------------------------------------------------------
    def create_dataset_log(self, dataset_id: str, log: DatasetLogInput) -> dict[str, Any]:
        """`POST /api/datasets/{dataset_id}/logs/` (one log; the seed workflow's step 2)."""
        body = log.model_dump(
            mode="json", exclude={"expected_output"} if log.expected_output is None else set()
        )
        return self.http.post(f"/api/datasets/{dataset_id}/logs/", json=body, idempotent=False) or {}

    def bulk_create_dataset_logs(self, dataset_id: str, logs: Sequence[DatasetLogInput]) -> BulkCreateResult:
        """`POST /api/datasets/{dataset_id}/logs/bulk/` with `{"logs": [...]}` (synchronous, partial success)."""
        body = {"logs": [log.model_dump(mode="json") for log in logs]}
        result = self.http.post(f"/api/datasets/{dataset_id}/logs/bulk/", json=body, idempotent=False)
        return BulkCreateResult.model_validate(result)

    def import_request_logs(self, dataset_id: str, request: ImportLogsRequest) -> dict[str, Any]:
        """`POST /api/datasets/{dataset_id}/logs/import/` (SPEC import_dataset_logs): background copy."""
        body = request.model_dump(mode="json", exclude_none=True)
        return self.http.post(f"/api/datasets/{dataset_id}/logs/import/", json=body, idempotent=False) or {}

    def dataset_logs_page(
        self, dataset_id: str, *, page: int = 1, page_size: int = MAX_PAGE_SIZE,
        filters: Filters | None = None, sort_by: str | None = None,
    ) -> Page[DatasetLog]:  # fmt: skip
        """`POST /api/datasets/{dataset_id}/logs/list/?page=&page_size=&sort_by=` with `{"filters": …}`
        (SPEC list_dataset_logs; DOCS logs-list.mdx for the GET form, `sort_by` default `unique_id`)."""
        return self.page(
            DatasetLog, "POST", f"/api/datasets/{dataset_id}/logs/list/", page=page, page_size=page_size,
            params={"sort_by": sort_by}, body={"filters": dict(filters or {})},
        )  # fmt: skip

    def iter_dataset_logs(
        self, dataset_id: str, *, filters: Filters | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[DatasetLog]:
        return self.iter_all(
            DatasetLog, "POST", f"/api/datasets/{dataset_id}/logs/list/", page_size=page_size,
            params={"sort_by": "unique_id"}, body={"filters": dict(filters or {})},
        )  # fmt: skip

    def count_dataset_logs(self, dataset_id: str, *, filters: Filters | None = None) -> int:
        """Logs in the dataset (matching `filters`): the `count` of a one-log page."""
        return self.dataset_logs_page(dataset_id, page_size=1, filters=filters).count

    def remove_dataset_logs(
        self, dataset_id: str, *, filters: Filters | None = None, delete_all: bool = False
    ) -> dict[str, Any]:
        """`DELETE /api/datasets/{dataset_id}/logs/delete/` with `{"filters": …}` or
        `{"is_deleting_all_logs": true}` (DOCS logs-remove.mdx; SPEC remove_dataset_logs uses
        `logs/import/`). The removal runs in the background: logs disappear later."""
        if not delete_all and not filters:
            raise ValueError("pass filters, or delete_all=True to remove every log")
        body = {"is_deleting_all_logs": True} if delete_all else {"filters": dict(filters or {})}
        return self.http.delete(f"/api/datasets/{dataset_id}/logs/delete/", json=body) or {}

    def delete_dataset_log(self, dataset_id: str, log_id: str) -> None:
        """`DELETE /api/datasets/{dataset_id}/logs/{log_id}/` → 204 (DOCS logs-delete.mdx)."""
        self.http.delete(f"/api/datasets/{dataset_id}/logs/{log_id}/")

    # -- eval runs ------------------------------------------------------------------------------------------
    def create_eval_report(
        self,
        dataset_id: str,
        evaluator_slugs: Sequence[str] = (),
        *,
        evaluator_ids: Sequence[str] | None = None,
    ) -> RunEvalResponse:
        """`POST /api/datasets/{dataset_id}/eval-reports/create` with `{"evaluator_slugs": [...]}` (DOCS
        eval-reports-create.mdx and the seed workflow), or with `evaluator_ids` given, `POST
        .../eval-reports/create/` with `{"evaluator_ids": [...]}` (SPEC run_eval_on_dataset). Either
        response shape parses."""
        if evaluator_ids is not None:
            path, body = (
                f"/api/datasets/{dataset_id}/eval-reports/create/",
                {"evaluator_ids": list(evaluator_ids)},
            )
        else:
            path, body = (
                f"/api/datasets/{dataset_id}/eval-reports/create",
                {"evaluator_slugs": list(evaluator_slugs)},
            )
        answer = self.http.post(path, json=body, idempotent=False)
        return RunEvalResponse.model_validate(answer or {})

    def iter_eval_tasks(self, dataset_id: str, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[EvalTask]:
        """`GET /api/datasets/{dataset_id}/eval-reports/list/` (DOCS eval-reports-list.mdx; SPEC
        list_dataset_eval_runs): runs (DOCS) or tasks per evaluator (SPEC)."""
        return self.iter_all(
            EvalTask, "GET", f"/api/datasets/{dataset_id}/eval-reports/list/", page_size=page_size
        )

    # -- evaluators, prompts, request logs -----------------------------------------------------------------
    def iter_evaluators(
        self, *, search: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[Evaluator]:
        """`GET /api/evaluators/` (Keywords-AI-Docs api-endpoints/evaluate/evaluators/list.mdx)."""
        return self.iter_all(
            Evaluator, "GET", "/api/evaluators/", page_size=page_size, params={"search": search}
        )

    def iter_prompts(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[Prompt]:
        """`GET /api/prompts/` (DOCS apis/develop/prompts/get-prompts.mdx; SPEC: POST api/prompts/list/)."""
        return self.iter_all(Prompt, "GET", "/api/prompts/", page_size=page_size)

    def iter_prompt_versions(
        self, prompt_id: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[PromptVersionObj]:
        """`GET /api/prompts/{prompt_id}/versions/` (DOCS get-prompt-versions.mdx; SPEC list_prompt_versions)."""
        return self.iter_all(
            PromptVersionObj, "GET", f"/api/prompts/{prompt_id}/versions/", page_size=page_size
        )

    def iter_request_logs(
        self, *, start_time: datetime, end_time: datetime, filters: Filters | None = None,
        page_size: int = MAX_REQUEST_LOG_PAGE_SIZE, sort_by: str | None = None,
        is_test: bool | None = None, all_envs: bool | None = None,
    ) -> Iterator[RequestLog]:  # fmt: skip
        """`POST /api/request-logs/list/` (DOCS apis/observe/logs/logs-list-endpoint.mdx): the time window
        goes in the query (without it the server lists only the last hour), `{"filters": …}` in the body."""
        params = {
            "start_time": _iso(start_time),
            "end_time": _iso(end_time),
            "sort_by": sort_by,
            "is_test": None if is_test is None else str(is_test).lower(),
            "all_envs": None if all_envs is None else str(all_envs).lower(),
        }
        return self.iter_all(
            RequestLog, "POST", "/api/request-logs/list/", page_size=page_size, params=params,
            body={"filters": dict(filters or {})},
        )  # fmt: skip
