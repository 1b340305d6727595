"""Keywords AI (Respan) REST API: request/response models and a low-level client, one method per endpoint.

Shapes follow the public docs at docs.keywordsai.co. Every path is sent exactly as documented (trailing
slash everywhere except `eval-reports/create`). Where a shape is not documented it is marked "unconfirmed"
in a comment; response models accept extra fields, so new server fields never break parsing.

List endpoints use page-number pagination with the envelope `{"count", "next", "previous", "results"}`;
the `iter_*` methods stream every page (page numbers, not the absolute `next` URLs, so an overridden
base URL keeps working).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from dagster_evals.errors import RateLimitedError
from dagster_evals.http import HttpClient

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.keywordsai.co"
ENV_VAR = "KEYWORDSAI_API_KEY"
# Largest page the list endpoints serve (datasets, dataset logs, eval runs, evaluators and prompts: 100;
# request logs: 1000).
MAX_PAGE_SIZE = 100
MAX_REQUEST_LOG_PAGE_SIZE = 1000

# A filter is `{field: {"operator": op, "value": v}}` or `{field: v}` (exact match); dotted fields such as
# `metadata.custom_identifier` address metadata keys.
Filters = Mapping[str, Any]
FilterOperator = Literal[
    "", "eq", "in", "not", "icontains", "startswith", "gt", "gte", "lt", "lte", "empty", "not_empty"
]


def where(field: str, operator: FilterOperator, value: Any = None) -> dict[str, Any]:
    """One filter clause, e.g. `where("metadata.model", "in", ["gpt-4o"])`."""
    return {field: {"operator": operator, "value": value}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class Page(_Response, Generic[T]):
    """One page of a list endpoint."""

    count: int
    next: str | None = None
    previous: str | None = None
    results: list[T]


# -- datasets -------------------------------------------------------------------------------------------
class CreateDatasetRequest(_Request):
    """`POST /api/datasets/`. An empty dataset (`is_empty=True`), or one sampled from request logs between
    `start_time` and `end_time` that match `initial_log_filters` (`sampling`: percentage, 1-100)."""

    name: str
    description: str | None = None
    is_empty: bool | None = None
    sampling: int | None = Field(default=None, ge=1, le=100)
    start_time: datetime | None = None
    end_time: datetime | None = None
    initial_log_filters: dict[str, Any] | None = None


class Dataset(_Response):
    id: str
    name: str
    description: str | None = None
    type: str | None = None
    status: str | None = None
    log_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    initial_log_filters: dict[str, Any] | None = None


class DatasetLogInput(_Request):
    """One dataset log in the unified format: `input`/`output` may be any JSON.

    The docs mark `output` as part of every log; curated rows without an output send `null`.
    """

    input: Any
    output: Any = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


class BulkCreateResult(_Response):
    """`POST /api/datasets/{id}/logs/bulk/` with `logs`: counts of created and rejected logs.
    The per-log `errors` list is unconfirmed (only the two counts are documented)."""

    success_count: int
    error_count: int = 0
    errors: list[dict[str, Any]] = Field(default_factory=list)


class ImportLogsRequest(_Request):
    """`POST /api/datasets/{id}/logs/bulk/` with a time range: copies matching request logs (background)."""

    start_time: datetime
    end_time: datetime
    filters: dict[str, Any] | None = None
    sampling_percentage: int | None = Field(default=None, ge=1, le=100)


class Score(_Response):
    """A score on a log, as the scores API shows it (`numerical_value` / `boolean_value` / …)."""

    id: str | None = None
    evaluator_slug: str | None = None
    evaluator_id: str | None = None
    numerical_value: float | None = None
    boolean_value: bool | None = None
    string_value: str | None = None
    categorical_value: list[str] | None = None
    is_passed: bool | None = None
    log_id: str | None = None
    dataset_id: str | None = None

    def as_float(self) -> float | None:
        """Numerical value as is; boolean (or `is_passed`) as 1.0 / 0.0; None for text-only scores."""
        if self.numerical_value is not None:
            return float(self.numerical_value)
        if self.boolean_value is not None:
            return 1.0 if self.boolean_value else 0.0
        return None


class DatasetLog(_Response):
    """A log in a dataset. `id` is documented; `unique_id`, `input`, `output`, `expected_output` and
    `metadata` follow the unified log format of the create/replace pages (unconfirmed for list results)."""

    id: str
    unique_id: str | None = None
    dataset_id: str | None = None
    input: Any = None
    output: Any = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    scores: list[Score] | None = None
    timestamp: datetime | None = None


class DeleteLogsRequest(_Request):
    filters: dict[str, Any] = Field(default_factory=dict)
    is_deleting_all_logs: bool = False


# -- eval reports -----------------------------------------------------------------------------------------
class EvalReportRun(_Response):
    """An eval run over a dataset. `results` holds per-evaluator results; its inner shape is undocumented
    (read as `{slug: {"average_score": …}}` when present)."""

    id: str
    dataset_id: str | None = None
    evaluator_slugs: list[str] = Field(default_factory=list)
    status: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    results: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def average(self, slug: str) -> float | None:
        """The evaluator's mean from `results`, when the server reports one."""
        entry = (self.results or {}).get(slug)
        if isinstance(entry, int | float) and not isinstance(entry, bool):
            return float(entry)
        if isinstance(entry, Mapping):
            for key in ("average_score", "avg_score", "average", "mean", "score"):
                value = entry.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
        return None


# -- evaluators, prompts, request logs ------------------------------------------------------------------
class Evaluator(_Response):
    id: str
    name: str
    evaluator_slug: str
    type: str | None = None
    score_value_type: str | None = None
    description: str | None = None


class PromptVersionObj(_Response):
    id: Any = None
    prompt_version_id: str | None = None
    version: int
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    messages: list[dict[str, Any]] | None = None
    model: str | None = None
    temperature: float | None = None
    variables: dict[str, Any] | None = None


class Prompt(_Response):
    id: Any = None
    prompt_id: str
    name: str | None = None
    description: str | None = None
    prompt_slug: str | None = None
    commit_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class RequestLog(_Response):
    unique_id: str
    input: Any = None
    output: Any = None
    model: str | None = None
    status_code: int | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


class KeywordsAIClient:
    """One method per Keywords AI endpoint, on the shared `HttpClient` (auth, retries, pacing, redaction).

    POSTs that create things are not safe to repeat, so they are retried only on 429 (the server throttles
    before doing any work); the platform layer makes batch writes safe to repeat on its own.
    """

    def __init__(self, http: HttpClient, *, max_429_retries: int = 8) -> None:
        self.http = http
        self.max_429_retries = max_429_retries
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"KeywordsAIClient({self.http!r})"

    def close(self) -> None:
        self.http.close()

    def _create(self, path: str, body: Any) -> Any:
        """POST that is not idempotent: retried only after a 429 (which the server answers before acting)."""
        attempt = 0
        while True:
            try:
                return self.http.post(path, json=body, idempotent=False)
            except RateLimitedError:
                if attempt >= self.max_429_retries:
                    raise
                # The pacer waits out the server's retry_after; back off too, for unpaced clients.
                time.sleep(self.http.retry.backoff(min(attempt, 6), None, self._rng))
                attempt += 1

    @staticmethod
    def _page_params(page: int, page_size: int, **extra: Any) -> dict[str, Any]:
        return _drop_none({"page": page, "page_size": page_size, **extra})

    def _iter(self, fetch: Any, page_size: int) -> Iterator[Any]:
        page = 1
        while True:
            result = fetch(page, page_size)
            yield from result.results
            if not result.next or not result.results:
                return
            page += 1

    # -- datasets -----------------------------------------------------------------------------------
    def list_datasets(
        self, *, page: int = 1, page_size: int = MAX_PAGE_SIZE, sort_by: str | None = None
    ) -> Page[Dataset]:
        """`GET /api/datasets/` (newest first by default)."""
        body = self.http.get("/api/datasets/", params=self._page_params(page, page_size, sort_by=sort_by))
        return Page[Dataset].model_validate(body)

    def iter_datasets(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[Dataset]:
        return self._iter(lambda p, s: self.list_datasets(page=p, page_size=s), page_size)

    def create_dataset(self, request: CreateDatasetRequest) -> Dataset:
        """`POST /api/datasets/` → 201 with the dataset."""
        body = self._create("/api/datasets/", request.model_dump(mode="json", exclude_none=True))
        return Dataset.model_validate(body)

    def get_dataset(self, dataset_id: str) -> Dataset:
        """`GET /api/datasets/{dataset_id}/`."""
        return Dataset.model_validate(self.http.get(f"/api/datasets/{dataset_id}/"))

    def update_dataset(
        self, dataset_id: str, *, name: str | None = None, description: str | None = None
    ) -> Dataset:
        """`PATCH /api/datasets/{dataset_id}/`: only `name` and `description` can change."""
        body = _drop_none({"name": name, "description": description})
        return Dataset.model_validate(self.http.patch(f"/api/datasets/{dataset_id}/", json=body))

    def delete_dataset(self, dataset_id: str) -> None:
        """`DELETE /api/datasets/{dataset_id}/` → 204; deletes the dataset and its logs."""
        self.http.delete(f"/api/datasets/{dataset_id}/")

    # -- dataset logs --------------------------------------------------------------------------------
    def create_dataset_log(self, dataset_id: str, log: DatasetLogInput) -> dict[str, Any]:
        """`POST /api/datasets/{dataset_id}/logs/`: one log; answers `{"message", "log_data"}`."""
        return self._create(f"/api/datasets/{dataset_id}/logs/", log.model_dump(mode="json"))

    def bulk_create_dataset_logs(self, dataset_id: str, logs: Sequence[DatasetLogInput]) -> BulkCreateResult:
        """`POST /api/datasets/{dataset_id}/logs/bulk/` with `{"logs": [...]}` (synchronous).

        Not retried on ambiguous failures: a retry could add the logs twice. `KeywordsAIPlatform` deletes
        whatever part of the batch landed before sending it again.
        """
        body = {"logs": [log.model_dump(mode="json") for log in logs]}
        result = self.http.post(f"/api/datasets/{dataset_id}/logs/bulk/", json=body, idempotent=False)
        return BulkCreateResult.model_validate(result)

    def import_request_logs(self, dataset_id: str, request: ImportLogsRequest) -> dict[str, Any]:
        """`POST /api/datasets/{dataset_id}/logs/bulk/` with a time range: adds matching request logs
        (`sampling_percentage` of them) in the background. Response body shape unconfirmed."""
        body = request.model_dump(mode="json", exclude_none=True)
        return self._create(f"/api/datasets/{dataset_id}/logs/bulk/", body) or {}

    def list_dataset_logs(
        self, dataset_id: str, *, page: int = 1, page_size: int = MAX_PAGE_SIZE, order_by: str | None = None
    ) -> Page[DatasetLog]:
        """`GET /api/datasets/{dataset_id}/logs/list/?page=&page_size=` (ordered by `unique_id` by default)."""
        body = self.http.get(
            f"/api/datasets/{dataset_id}/logs/list/",
            params=self._page_params(page, page_size, order_by=order_by),
        )
        return Page[DatasetLog].model_validate(body)

    def iter_dataset_logs(self, dataset_id: str, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[DatasetLog]:
        """Every log of the dataset, page by page."""
        return self._iter(lambda p, s: self.list_dataset_logs(dataset_id, page=p, page_size=s), page_size)

    def count_dataset_logs(self, dataset_id: str) -> int:
        """Number of logs in the dataset: the `count` of a one-log page."""
        return self.list_dataset_logs(dataset_id, page=1, page_size=1).count

    def delete_dataset_logs(
        self, dataset_id: str, *, filters: Filters | None = None, delete_all: bool = False
    ) -> dict[str, Any]:
        """`DELETE /api/datasets/{dataset_id}/logs/delete/` with `{"filters": …}` or
        `{"is_deleting_all_logs": true}`. The response fields are unconfirmed (JSON, e.g. a message)."""
        if not delete_all and not filters:
            raise ValueError("pass filters, or delete_all=True to remove every log")
        body = DeleteLogsRequest(filters=dict(filters or {}), is_deleting_all_logs=delete_all)
        return self.http.delete(f"/api/datasets/{dataset_id}/logs/delete/", json=body.model_dump()) or {}

    # -- eval reports --------------------------------------------------------------------------------
    def create_eval_report(self, dataset_id: str, evaluator_slugs: Sequence[str]) -> EvalReportRun:
        """`POST /api/datasets/{dataset_id}/eval-reports/create` (no trailing slash, as documented)."""
        body = self._create(
            f"/api/datasets/{dataset_id}/eval-reports/create", {"evaluator_slugs": list(evaluator_slugs)}
        )
        return EvalReportRun.model_validate(body)

    def list_eval_reports(
        self, dataset_id: str, *, page: int = 1, page_size: int = MAX_PAGE_SIZE
    ) -> Page[EvalReportRun]:
        """`GET /api/datasets/{dataset_id}/eval-reports/list/` (newest first)."""
        body = self.http.get(
            f"/api/datasets/{dataset_id}/eval-reports/list/", params=self._page_params(page, page_size)
        )
        return Page[EvalReportRun].model_validate(body)

    def iter_eval_reports(
        self, dataset_id: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[EvalReportRun]:
        return self._iter(lambda p, s: self.list_eval_reports(dataset_id, page=p, page_size=s), page_size)

    def get_eval_report(self, dataset_id: str, report_id: str) -> EvalReportRun:
        """`GET /api/datasets/{dataset_id}/eval-reports/{report_id}/` — path from the SDK, not the docs
        (unconfirmed); `find_eval_report` uses only the documented list endpoint."""
        return EvalReportRun.model_validate(
            self.http.get(f"/api/datasets/{dataset_id}/eval-reports/{report_id}/")
        )

    def find_eval_report(
        self, dataset_id: str, report_id: str, *, page_size: int = 10
    ) -> EvalReportRun | None:
        """The eval run with this id, looked up through the documented list endpoint (newest first)."""
        for report in self.iter_eval_reports(dataset_id, page_size=page_size):
            if report.id == report_id:
                return report
        return None

    # -- evaluators ------------------------------------------------------------------------------------
    def list_evaluators(
        self,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        search: str | None = None,
        type: str | None = None,
    ) -> Page[Evaluator]:
        """`GET /api/evaluators/` (`search` matches name or slug; `type`: llm, human or code)."""
        body = self.http.get(
            "/api/evaluators/", params=self._page_params(page, page_size, search=search, type=type)
        )
        return Page[Evaluator].model_validate(body)

    def iter_evaluators(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[Evaluator]:
        return self._iter(lambda p, s: self.list_evaluators(page=p, page_size=s), page_size)

    # -- prompts ------------------------------------------------------------------------------------------
    def list_prompts(self, *, page: int = 1, page_size: int = MAX_PAGE_SIZE) -> Page[Prompt]:
        """`GET /api/prompts/`."""
        return Page[Prompt].model_validate(
            self.http.get("/api/prompts/", params=self._page_params(page, page_size))
        )

    def iter_prompts(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[Prompt]:
        return self._iter(lambda p, s: self.list_prompts(page=p, page_size=s), page_size)

    def list_prompt_versions(
        self, prompt_id: str, *, page: int = 1, page_size: int = MAX_PAGE_SIZE
    ) -> Page[PromptVersionObj]:
        """`GET /api/prompts/{prompt_id}/versions/`."""
        body = self.http.get(f"/api/prompts/{prompt_id}/versions/", params=self._page_params(page, page_size))
        return Page[PromptVersionObj].model_validate(body)

    def iter_prompt_versions(
        self, prompt_id: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[PromptVersionObj]:
        return self._iter(lambda p, s: self.list_prompt_versions(prompt_id, page=p, page_size=s), page_size)

    # -- request logs -------------------------------------------------------------------------------------
    def list_request_logs(
        self,
        *,
        filters: Filters | None = None,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        sort_by: str | None = None,
        is_test: bool | None = None,
        all_envs: bool | None = None,
    ) -> Page[RequestLog]:
        """`POST /api/request-logs/list/` with `{"filters": …}` (a read: safe to retry)."""
        params = self._page_params(
            page,
            page_size,
            sort_by=sort_by,
            is_test=None if is_test is None else str(is_test).lower(),
            all_envs=None if all_envs is None else str(all_envs).lower(),
        )
        body = self.http.post(
            "/api/request-logs/list/", params=params, json={"filters": dict(filters or {})}, idempotent=True
        )
        return Page[RequestLog].model_validate(body)

    def iter_request_logs(
        self, *, filters: Filters | None = None, page_size: int = MAX_REQUEST_LOG_PAGE_SIZE, **kwargs: Any
    ) -> Iterator[RequestLog]:
        return self._iter(
            lambda p, s: self.list_request_logs(filters=filters, page=p, page_size=s, **kwargs), page_size
        )
