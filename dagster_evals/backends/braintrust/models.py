"""Braintrust REST API wire models: shared pieces, projects, datasets, experiments, project logs.

Field names follow Braintrust's published OpenAPI spec exactly (braintrustdata/braintrust-openapi
`openapi/spec.json`, schemas named in each class docstring; the commit checked against is in
`docs/api-versions.md`); fields only the pinned `braintrust` SDK publishes (`braintrust/_generated_types.py`)
are marked. Request models reject unknown fields, so a misspelt field fails on the client instead of
being silently dropped by the server. Response models keep unknown fields, so a newer server never breaks
an older client. Function references, `/v1/eval`, prompts and functions are in `eval_models.py`;
`api.py` holds both in one namespace.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ENV_API_KEY = "BRAINTRUST_API_KEY"
DEFAULT_API_URL = "https://api.braintrust.dev"
DEFAULT_APP_URL = "https://www.braintrust.dev"
DEFAULT_FETCH_LIMIT = 1000


class BtRequest(BaseModel):
    """A request body: unknown fields are rejected, unset fields are not sent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class BtResponse(BaseModel):
    """A response object: unknown fields are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# -- shared pieces ----------------------------------------------------------------------------------
GitField = Literal[
    "commit",
    "branch",
    "tag",
    "dirty",
    "author_name",
    "author_email",
    "commit_message",
    "commit_time",
    "git_diff",
]


class RepoInfo(BtRequest):
    """State of the git checkout an experiment ran from."""

    commit: str | None = None
    branch: str | None = None
    tag: str | None = None
    dirty: bool | None = None
    author_name: str | None = None
    author_email: str | None = None
    commit_message: str | None = None
    commit_time: str | None = None
    git_diff: str | None = None


class GitMetadataSettings(BtRequest):
    collect: Literal["all", "none", "some"]
    fields: list[GitField] | None = None


class ParentRowIds(BtRequest):
    id: str
    span_id: str
    root_span_id: str


class Parent(BtRequest):
    """Span parent of an eval or function call (where its trace is logged)."""

    object_type: Literal["project_logs", "experiment", "playground_logs"]
    object_id: str
    row_ids: ParentRowIds | None = None
    propagated_event: dict[str, Any] | None = None


class ObjectReference(BtRequest):
    """Where an event came from, e.g. the dataset row an experiment row evaluated."""

    object_type: Literal["project_logs", "experiment", "dataset", "prompt", "function", "prompt_session"]
    object_id: str
    id: str
    xact_id: str | None = Field(default=None, alias="_xact_id")
    created: str | None = None


class ArrayDelete(BtRequest):
    path: list[str]
    delete: list[Any]


class McpAuth(BtRequest):
    oauth_token: str | None = None


# -- projects --------------------------------------------------------------------------------------
class CreateProject(BtRequest):
    name: str
    org_name: str | None = None
    description: str | None = None
    project_group_name: str | None = None


class PatchProject(BtRequest):
    name: str | None = None
    description: str | None = None
    settings: dict[str, Any] | None = None
    user_id: str | None = None


class Project(BtResponse):
    id: str
    org_id: str
    name: str
    description: str | None = None
    created: str | None = None
    deleted_at: str | None = None
    user_id: str | None = None
    settings: dict[str, Any] | None = None


# -- datasets --------------------------------------------------------------------------------------
class CreateDataset(BtRequest):
    project_id: str
    name: str
    description: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None


class PatchDataset(BtRequest):
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None


class Dataset(BtResponse):
    id: str
    project_id: str
    name: str
    url_slug: str | None = None
    description: str | None = None
    created: str | None = None
    deleted_at: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None


class _EventWrite(BtRequest):
    """Fields every inserted event (dataset, experiment, project logs) may carry."""

    id: str | None = None
    input: Any = None
    expected: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    created: str | None = None
    origin: ObjectReference | None = None
    facets: dict[str, str | None] | None = None
    span_id: str | None = None
    root_span_id: str | None = None
    span_parents: list[str] | None = None
    is_merge: bool | None = Field(default=None, alias="_is_merge")
    merge_paths: list[list[str]] | None = Field(default=None, alias="_merge_paths")
    object_delete: bool | None = Field(default=None, alias="_object_delete")
    array_delete: list[ArrayDelete] | None = Field(default=None, alias="_array_delete")
    parent_id: str | None = Field(default=None, alias="_parent_id")


class InsertDatasetEvent(_EventWrite):
    """A dataset row to insert; with `id`, a rerun replaces the row instead of adding a copy."""


class InsertDatasetEventRequest(BtRequest):
    events: list[InsertDatasetEvent]


class InsertEventsResponse(BtResponse):
    row_ids: list[str]


class FetchEventsRequest(BtRequest):
    """A page of events: `limit` counts traces, `cursor` continues, `version` pins a transaction id."""

    limit: int | None = Field(default=None, ge=0)
    cursor: str | None = None
    max_xact_id: str | None = None
    max_root_span_id: str | None = None
    version: str | None = None


class DatasetEvent(BtResponse):
    id: str
    xact_id: str = Field(alias="_xact_id")
    created: str
    dataset_id: str
    project_id: str
    span_id: str
    root_span_id: str
    input: Any = None
    expected: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    is_root: bool | None = None
    origin: dict[str, Any] | None = None


class FetchEventsResponse(BtResponse):
    events: list[dict[str, Any]]
    cursor: str | None = None


class DataSummary(BtResponse):
    total_records: int


class SummarizeDatasetResponse(BtResponse):
    project_name: str
    dataset_name: str
    project_url: str
    dataset_url: str
    data_summary: DataSummary | None = None


# -- experiments -----------------------------------------------------------------------------------
class CreateExperiment(BtRequest):
    project_id: str
    name: str | None = None
    description: str | None = None
    base_exp_id: str | None = None
    dataset_id: str | None = None
    dataset_version: str | None = None
    parameters_id: str | None = None
    parameters_version: str | None = None
    public: bool | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    repo_info: RepoInfo | None = None
    internal_metadata: dict[str, Any] | None = None
    ensure_new: bool | None = None


class Experiment(BtResponse):
    id: str
    project_id: str
    name: str
    public: bool = False
    created: str | None = None
    deleted_at: str | None = None
    description: str | None = None
    base_exp_id: str | None = None
    dataset_id: str | None = None
    dataset_version: str | None = None
    commit: str | None = None
    repo_info: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    user_id: str | None = None


class SpanAttributes(BtRequest):
    name: str | None = None
    type: str | None = None
    purpose: Literal["scorer"] | None = None
    log_level: str | None = None


class InsertExperimentEvent(_EventWrite):
    """One evaluated row of an experiment: input, output, expected, scores, metrics."""

    output: Any = None
    error: Any = None
    scores: dict[str, float | None] | None = None
    metrics: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    span_attributes: SpanAttributes | None = None


class InsertExperimentEventRequest(BtRequest):
    events: list[InsertExperimentEvent]


class ScoreSummary(BtResponse):
    name: str
    score: float
    diff: float | None = None
    improvements: int
    regressions: int


class MetricSummary(BtResponse):
    name: str
    metric: float
    unit: str
    diff: float | None = None
    improvements: int
    regressions: int


class ExperimentSummary(BtResponse):
    """Summary of an experiment (`/v1/experiment/{id}/summarize` and `POST /v1/eval`)."""

    project_name: str
    experiment_name: str
    project_url: str
    experiment_url: str
    comparison_experiment_name: str | None = None
    scores: dict[str, ScoreSummary] | None = None
    metrics: dict[str, MetricSummary] | None = None


# -- project logs ----------------------------------------------------------------------------------
class InsertProjectLogsEvent(InsertExperimentEvent):
    """A production log event (same fields as an experiment event)."""


class InsertProjectLogsEventRequest(BtRequest):
    events: list[InsertProjectLogsEvent]


class ObjectList(BtResponse):
    objects: list[dict[str, Any]]


# The POST /v1/eval, prompt and function shapes live in eval_models (which builds on this module); they were
# importable from here, and still are, with a warning naming `dagster_evals.backends.braintrust.api`.
_EVAL_MODELS = "dagster_evals.backends.braintrust.eval_models"


def __getattr__(name: str) -> Any:
    if name == "BraintrustClient":
        moved_to = module = "dagster_evals.backends.braintrust.client"
    elif not name.startswith("_") and name in importlib.import_module(_EVAL_MODELS).__all__:
        moved_to, module = "dagster_evals.backends.braintrust.api", _EVAL_MODELS
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"dagster_evals.backends.braintrust.models.{name} moved: import it from {moved_to}",
        DeprecationWarning,
        stacklevel=2,
    )
    # Loaded by name, not an import statement: both modules import this one.
    return getattr(importlib.import_module(module), name)
