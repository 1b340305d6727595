"""Keywords AI (Respan) wire models, each with the page or file it was read from.

Sources (commits as checked, see docs/api-versions.md):
- DOCS = Keywords-AI/docs@71815dd53e0a88e37d8fe3308b8f9635ebf6b850 (`apis/...mdx` pages)
- SPEC = respanai/respan-python-api@3b12c48512a85a22f89b521e695bfaa50ab55c12 (Fern-generated client,
  `src/respan/<resource>/types/*.py`)
Response models accept extra fields, so new server fields never break parsing. Where DOCS and SPEC
disagree, both shapes parse.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.keywordsai.co"
ENV_VAR = "KEYWORDSAI_API_KEY"
# Largest page of the list endpoints (SPEC list_dataset_logs / list_dataset_eval_runs: "Maximum is 100");
# request logs: 1000 (DOCS apis/observe/logs/logs-list-endpoint.mdx).
MAX_PAGE_SIZE = 100
MAX_REQUEST_LOG_PAGE_SIZE = 1000

Filters = Mapping[str, Any]
FilterOperator = Literal[
    "", "eq", "iexact", "in", "not", "icontains", "contains", "startswith", "endswith",
    "gt", "gte", "lt", "lte", "isnull", "empty", "not_empty",
]  # fmt: skip


def where(field: str, operator: FilterOperator, value: Any = None) -> dict[str, Any]:
    """One filter clause, e.g. `where("metadata.model", "in", ["gpt-4o"])` (dataset logs)."""
    return {field: {"operator": operator, "value": value}}


def metadata_filter(key: str, value: Any, operator: FilterOperator = "") -> dict[str, Any]:
    """A request-log filter on custom metadata: `{"metadata__<key>": {"operator", "value": [..]}}`.

    DOCS apis/observe/logs/logs-list-endpoint.mdx: custom properties are filtered as `metadata__<key>`
    (an unknown field such as `metadata.key` is itself treated as a metadata key), values are lists.
    """
    values = list(value) if isinstance(value, list | tuple | set) else [value]
    return {f"metadata__{key}": {"operator": operator, "value": values}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class Page(_Response, Generic[T]):
    """One page of a list endpoint: `{count, next, previous, results}` (SPEC list_*_response.py)."""

    count: int = 0
    next: str | None = None
    previous: str | None = None
    results: list[T] = Field(default_factory=list)


# -- datasets -----------------------------------------------------------------------------------------------
class CreateDatasetRequest(_Request):
    """`POST /api/datasets/` (DOCS apis/evaluate/datasets/create.mdx; SPEC datasets/raw_client.py
    create_dataset): empty (`is_empty`), or sampled from request logs between `start_time` and `end_time`
    matching `initial_log_filters` (`sampling`: percentage, 1-100)."""

    name: str
    description: str | None = None
    is_empty: bool | None = None
    sampling: int | None = Field(default=None, ge=1, le=100)
    start_time: datetime | None = None
    end_time: datetime | None = None
    initial_log_filters: dict[str, Any] | None = None


class Dataset(_Response):
    """SPEC datasets/types/list_datasets_response_results_item.py and create_dataset_response.py."""

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
    """One log of a bulk insert (SPEC datasets/types/bulk_create_dataset_logs_request_logs_item.py)."""

    input: Any
    output: Any = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


class BulkError(_Response):
    """SPEC datasets/types/bulk_create_dataset_logs_response_errors_item.py: `{index, error}`."""

    index: int | None = None
    error: str | None = None


class BulkCreateResult(_Response):
    """SPEC datasets/types/bulk_create_dataset_logs_response.py (partial success is allowed)."""

    success_count: int
    error_count: int = 0
    errors: list[BulkError] = Field(default_factory=list)


class ImportLogsRequest(_Request):
    """`POST /api/datasets/{id}/logs/import/` (SPEC import_dataset_logs; DOCS logs-add.mdx documents the
    same body on `logs/bulk/`): copies matching request logs in the background."""

    start_time: datetime
    end_time: datetime
    filters: dict[str, Any] | None = None
    sampling_percentage: int | None = Field(default=None, ge=1, le=100)


class Score(_Response):
    """A score on a log. Fields from the scores API and, for the object form, DOCS
    apis/observe/logs/logs-list-endpoint.mdx ("Evaluation Scores": evaluator_slug, score_value)."""

    evaluator_slug: str | None = None
    evaluator_id: str | None = None
    numerical_value: float | None = None
    boolean_value: bool | None = None
    score_value: float | None = None
    is_passed: bool | None = None

    def as_float(self) -> float | None:
        """The numerical value; a boolean (or `score_value`) as 1.0 / 0.0; None for text-only scores."""
        if self.numerical_value is not None:
            return float(self.numerical_value)
        if self.boolean_value is not None:
            return 1.0 if self.boolean_value else 0.0
        if self.score_value is not None:
            return float(self.score_value)
        return None


def parse_scores(raw: Any) -> list[Score]:
    """Scores of a log: a list (DOCS logs-list.mdx, "Array of evaluation scores") or an object keyed by
    evaluator (SPEC list_dataset_logs_response_count_results_item.py `scores: Dict[str, Any]`)."""
    if isinstance(raw, Mapping):
        out = []
        for key, value in raw.items():
            if isinstance(value, Mapping):
                score = Score.model_validate(value)
                if score.evaluator_id is None and score.evaluator_slug is None:
                    score.evaluator_id = str(key)
            elif isinstance(value, int | float):
                score = Score(evaluator_id=str(key), score_value=float(value))
            else:
                continue
            out.append(score)
        return out
    if isinstance(raw, list):
        return [Score.model_validate(s) for s in raw if isinstance(s, Mapping)]
    return []


class DatasetLog(_Response):
    """A log of a dataset (SPEC list_dataset_logs_response_count_results_item.py; DOCS logs-list.mdx)."""

    id: str | None = None
    unique_id: str | None = None
    dataset_id: str | None = None
    input: Any = None
    output: Any = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    scores: Any = None
    timestamp: datetime | None = None

    @property
    def log_id(self) -> str:
        return str(self.unique_id or self.id)

    def score_list(self) -> list[Score]:
        return parse_scores(self.scores)


def decode_python_repr(text: Any) -> Any:
    """A structured value the server returned as its Python repr (e.g. "{'a': 1}"), or `text` as is."""
    if isinstance(text, str) and text[:1] in "[{":
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
    return text


# -- eval runs ----------------------------------------------------------------------------------------------
FINISHED_OK = frozenset({"completed", "complete", "succeeded", "success", "done", "finished"})
FINISHED_BAD = frozenset({"failed", "error", "errored", "cancelled", "canceled", "timeout", "timed_out"})


class EvalTask(_Response):
    """One evaluator's run over a dataset. Either shape parses:

    - DOCS apis/evaluate/datasets/eval-reports-create.mdx / eval-reports-list.mdx:
      `{id, dataset_id, status, evaluator_slugs, created_at}` (one run, several evaluators, no results);
    - SPEC datasets/types/run_eval_on_dataset_response_created_tasks_item.py and
      list_dataset_eval_runs_response_results_item.py: `{task_id, evaluator_slug, status, score,
      evaluated_logs_count, error_message, ...}` (one task per evaluator).
    Statuses are free text: anything not known to be final counts as still running.
    """

    id: str | None = None
    task_id: str | None = None
    dataset_id: str | None = None
    evaluator_slugs: list[str] = Field(default_factory=list)
    evaluator_slug: str | None = None
    status: str | None = None
    score: float | None = None
    evaluated_logs_count: int | None = None
    error_message: str | None = None
    created_at: datetime | None = None

    @property
    def key(self) -> str:
        return str(self.task_id or self.id)

    @property
    def slugs(self) -> list[str]:
        return [self.evaluator_slug] if self.evaluator_slug else list(self.evaluator_slugs)

    @property
    def state(self) -> Literal["completed", "failed", "running"]:
        status = (self.status or "").lower()
        if status in FINISHED_OK:
            return "completed"
        if status in FINISHED_BAD:
            return "failed"
        return "running"


class RunEvalResponse(_Response):
    """The create response: SPEC run_eval_on_dataset_response.py (`created_tasks`) or DOCS (a run)."""

    created_tasks: list[EvalTask] | None = None
    errors: dict[str, Any] | None = None

    def tasks(self) -> list[EvalTask]:
        if self.created_tasks is not None:
            return list(self.created_tasks)
        return [EvalTask.model_validate(self.model_dump())]


# -- evaluators, prompts, request logs ----------------------------------------------------------------------
class Evaluator(_Response):
    """Keywords-AI/Keywords-AI-Docs@dffa0de341e0e71eae546aef24a9fe4ca6c251ea:
    api-endpoints/evaluate/evaluators/list.mdx."""

    id: str
    name: str
    evaluator_slug: str
    type: str | None = None
    score_value_type: str | None = None
    description: str | None = None


class PromptVersionObj(_Response):
    """SPEC prompts/types/list_prompt_versions_response_results_item.py."""

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


class CurrentVersion(_Response):
    """SPEC prompts/types/list_prompts_response_results_item_current_version.py."""

    version: int | None = None
    updated_at: datetime | None = None


class Prompt(_Response):
    """SPEC prompts/types/list_prompts_response_results_item.py: `id` and `current_version.version`.
    (`prompt_id` is read too when a server sends it, unconfirmed.)"""

    id: Any = None
    prompt_id: str | None = None
    name: str | None = None
    description: str | None = None
    prompt_slug: str | None = None
    current_version: CurrentVersion | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return str(self.prompt_id or self.id)

    @property
    def latest_version(self) -> int | None:
        return self.current_version.version if self.current_version else None


class RequestLog(_Response):
    """DOCS apis/observe/logs/logs-list-endpoint.mdx (fields of a span)."""

    unique_id: str
    input: Any = None
    output: Any = None
    model: str | None = None
    status_code: int | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None


_MOVED = {"KeywordsAIClient": ("dagster_evals.backends.keywordsai.client", "KeywordsAIClient"),
          "EvalReportRun": ("dagster_evals.backends.keywordsai.models", "EvalTask")}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Deprecated names: `KeywordsAIClient` moved to `client.py`; `EvalReportRun` is now `EvalTask`."""
    if name in _MOVED:
        import importlib
        import warnings

        module, new = _MOVED[name]
        warnings.warn(
            f"dagster_evals.backends.keywordsai.models.{name} is deprecated; use {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), new)
    raise AttributeError(name)
