"""Braintrust REST API: request/response models and a low-level client with one method per endpoint.

Field names follow Braintrust's published OpenAPI types exactly. Request models reject unknown fields, so
a misspelt field fails on the client instead of being silently dropped by the server. Response models
keep unknown fields, so a newer server never breaks an older client.

Endpoints covered: projects, datasets (+ insert / fetch / summarize), experiments (+ insert / fetch /
summarize), prompts, functions (+ invoke), project logs (insert / fetch) and `POST /v1/eval`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from dagster_evals.errors import PlatformError
from dagster_evals.http import HttpClient

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
FunctionType = Literal[
    "llm",
    "scorer",
    "task",
    "tool",
    "custom_view",
    "preprocessor",
    "facet",
    "classifier",
    "tag",
    "parameters",
    "sandbox",
]
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


# -- function references (task / scores of an eval) -----------------------------------------------
class FunctionIdRef(BtRequest):
    """A saved function by id."""

    function_id: str
    version: str | None = None


class ProjectSlugRef(BtRequest):
    """A saved function by project name and slug."""

    project_name: str
    slug: str
    version: str | None = None


class GlobalFunctionRef(BtRequest):
    """A global function (the autoevals scorers, e.g. "Factuality", "Levenshtein")."""

    global_function: str
    function_type: FunctionType | None = None


class PromptSessionRef(BtRequest):
    """A function of a playground (prompt session)."""

    prompt_session_id: str
    prompt_session_function_id: str
    version: str | None = None


class InlineContext(BtRequest):
    runtime: Literal["node", "python", "browser", "quickjs"]
    version: str


class InlineCodeRef(BtRequest):
    """Code shipped in the request and run by Braintrust."""

    inline_context: InlineContext
    code: str
    function_type: FunctionType | None = None
    name: str | None = None


class InlineFunctionRef(BtRequest):
    """A function definition shipped in the request."""

    inline_function: dict[str, Any]
    inline_prompt: dict[str, Any] | None = None
    function_type: FunctionType | None = None
    name: str | None = None


class InlinePromptRef(BtRequest):
    """A prompt (PromptData) shipped in the request."""

    inline_prompt: dict[str, Any]
    function_type: FunctionType | None = None
    name: str | None = None


FunctionRef = (
    FunctionIdRef
    | ProjectSlugRef
    | GlobalFunctionRef
    | PromptSessionRef
    | InlineCodeRef
    | InlineFunctionRef
    | InlinePromptRef
)


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


# -- eval ------------------------------------------------------------------------------------------
class DatasetIdData(BtRequest):
    dataset_id: str
    dataset_version: str | None = None
    dataset_environment: str | None = None
    internal_btql: dict[str, Any] | None = Field(default=None, alias="_internal_btql")


class ProjectDatasetNameData(BtRequest):
    project_name: str
    dataset_name: str
    dataset_version: str | None = None
    dataset_environment: str | None = None
    internal_btql: dict[str, Any] | None = Field(default=None, alias="_internal_btql")


class DatasetRowsData(BtRequest):
    """Rows shipped in the request: each like {"input": ..., "expected": ..., "metadata": ..., "tags": ...}."""

    data: list[Any]


class ExperimentNameData(BtRequest):
    """The rows of an earlier experiment of the project."""

    experiment_name: str


RunEvalData = DatasetIdData | ProjectDatasetNameData | DatasetRowsData | ExperimentNameData


class RunEval(BtRequest):
    """`POST /v1/eval`: run `task` and `scores` on Braintrust over `data`."""

    project_id: str
    data: RunEvalData
    task: FunctionRef
    scores: list[FunctionRef]
    name: str | None = None
    parameters: dict[str, Any] | None = None
    experiment_name: str | None = None
    metadata: dict[str, Any] | None = None
    parent: Parent | None = None
    stream: bool | None = None
    trial_count: float | None = None
    is_public: bool | None = None
    timeout: float | None = None
    max_concurrency: float | None = None
    base_experiment_name: str | None = None
    base_experiment_id: str | None = None
    git_metadata_settings: GitMetadataSettings | None = None
    repo_info: RepoInfo | None = None
    strict: bool | None = None
    stop_token: str | None = None
    extra_messages: str | None = None
    tags: list[str] | None = None
    mcp_auth: dict[str, McpAuth] | None = None
    endpoint_name: str | None = None


class SseEvent(BtResponse):
    event: str
    data: str


class EvalStreamResult(BtResponse):
    """What a streamed `POST /v1/eval` sent: every event, and the final summary."""

    events: list[SseEvent]
    summary: ExperimentSummary


# -- prompts and functions -------------------------------------------------------------------------
class CreatePrompt(BtRequest):
    project_id: str
    name: str
    slug: str
    description: str | None = None
    prompt_data: dict[str, Any] | None = None
    tags: list[str] | None = None
    function_type: FunctionType | None = None
    environment_slugs: list[str] | None = None


class PatchPrompt(BtRequest):
    name: str | None = None
    slug: str | None = None
    description: str | None = None
    prompt_data: dict[str, Any] | None = None
    tags: list[str] | None = None


class Prompt(BtResponse):
    id: str
    xact_id: str = Field(alias="_xact_id")
    project_id: str
    org_id: str
    log_id: str = "p"
    name: str
    slug: str
    description: str | None = None
    created: str | None = None
    prompt_data: dict[str, Any] | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    function_type: str | None = None


class CreateFunction(BtRequest):
    project_id: str
    name: str
    slug: str
    function_data: dict[str, Any]
    description: str | None = None
    prompt_data: dict[str, Any] | None = None
    function_type: FunctionType | None = None
    function_schema: dict[str, Any] | None = None
    origin: dict[str, Any] | None = None
    tags: list[str] | None = None


class PatchFunction(BtRequest):
    name: str | None = None
    description: str | None = None
    prompt_data: dict[str, Any] | None = None
    function_data: dict[str, Any] | None = None
    tags: list[str] | None = None


class Function(Prompt):
    function_data: dict[str, Any]
    function_schema: dict[str, Any] | None = None
    origin: dict[str, Any] | None = None


class InvokeFunction(BtRequest):
    """`POST /v1/function/{id}/invoke`."""

    input: Any = None
    expected: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    messages: list[dict[str, Any]] | None = None
    parent: Parent | str | None = None
    stream: bool | None = None
    mode: Literal["auto", "parallel", "json", "text"] | None = None
    strict: bool | None = None
    mcp_auth: dict[str, McpAuth] | None = None
    overrides: dict[str, Any] | None = None
    version: str | None = None
    endpoint_name: str | None = None


# -- project logs ----------------------------------------------------------------------------------
class InsertProjectLogsEvent(InsertExperimentEvent):
    """A production log event (same fields as an experiment event)."""


class InsertProjectLogsEventRequest(BtRequest):
    events: list[InsertProjectLogsEvent]


class ObjectList(BtResponse):
    objects: list[dict[str, Any]]


# -- SSE -------------------------------------------------------------------------------------------
def parse_sse(text: str) -> list[SseEvent]:
    """Split a `text/event-stream` body into events (`event:` and `data:` lines, blank-line separated)."""
    events: list[SseEvent] = []
    name, data = "message", []
    for line in [*text.splitlines(), ""]:
        if not line:
            if data or name != "message":
                events.append(SseEvent(event=name, data="\n".join(data)))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:][1:] if line[5:].startswith(" ") else line[5:])
    return events


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def summary_from_event(data: str) -> ExperimentSummary:
    """An experiment summary from an SSE `summary`/`start` payload (snake_case or camelCase keys)."""
    payload = json.loads(data)
    if not isinstance(payload, dict):
        raise ValueError("the summary event does not hold a JSON object")
    return ExperimentSummary.model_validate({_snake(k): v for k, v in payload.items()})


# -- the client ------------------------------------------------------------------------------------
def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class BraintrustClient:
    """One method per Braintrust REST endpoint, on top of `HttpClient` (retries, pacing, redaction)."""

    def __init__(self, http: HttpClient, *, org_name: str | None = None) -> None:
        self.http = http
        self.org_name = org_name

    def __repr__(self) -> str:
        return f"BraintrustClient({self.http!r})"

    def close(self) -> None:
        self.http.close()

    # -- lists -------------------------------------------------------------------------------------
    def _list(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return ObjectList.model_validate(self.http.get(path, params=params)).objects

    def iter_objects(
        self, path: str, params: Mapping[str, Any], *, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every object of a `GET /v1/<object>` list, paging with `starting_after`."""
        after: str | None = None
        while True:
            page = self._list(path, {**params, "limit": page_size, **_params(starting_after=after)})
            yield from page
            if len(page) < page_size:
                return
            after = page[-1]["id"]

    # -- projects ----------------------------------------------------------------------------------
    def create_project(self, body: CreateProject) -> Project:
        """Create-or-get: an existing project of that name is returned unchanged."""
        if body.org_name is None and self.org_name:
            body = body.model_copy(update={"org_name": self.org_name})
        return Project.model_validate(self.http.post("/v1/project", json=body.body(), idempotent=True))

    def list_projects(
        self,
        *,
        project_name: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Project]:
        params = _params(
            project_name=project_name,
            org_name=self.org_name,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            ids=list(ids) if ids else None,
        )
        return [Project.model_validate(o) for o in self._list("/v1/project", params)]

    def get_project(self, project_id: str) -> Project:
        return Project.model_validate(self.http.get(f"/v1/project/{project_id}"))

    def patch_project(self, project_id: str, body: PatchProject) -> Project:
        return Project.model_validate(self.http.patch(f"/v1/project/{project_id}", json=body.body()))

    # -- datasets ----------------------------------------------------------------------------------
    def create_dataset(self, body: CreateDataset) -> Dataset:
        """Create-or-get by (project_id, name)."""
        return Dataset.model_validate(self.http.post("/v1/dataset", json=body.body(), idempotent=True))

    def list_datasets(
        self,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
        dataset_name: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Dataset]:
        params = _params(
            project_id=project_id,
            project_name=project_name,
            dataset_name=dataset_name,
            org_name=self.org_name,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            ids=list(ids) if ids else None,
        )
        return [Dataset.model_validate(o) for o in self._list("/v1/dataset", params)]

    def get_dataset(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(self.http.get(f"/v1/dataset/{dataset_id}"))

    def patch_dataset(self, dataset_id: str, body: PatchDataset) -> Dataset:
        return Dataset.model_validate(self.http.patch(f"/v1/dataset/{dataset_id}", json=body.body()))

    def delete_dataset(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(self.http.delete(f"/v1/dataset/{dataset_id}"))

    def _insert(self, path: str, events: Sequence[BtRequest], idempotent: bool) -> InsertEventsResponse:
        body = {"events": [e.body() for e in events]}
        return InsertEventsResponse.model_validate(self.http.post(path, json=body, idempotent=idempotent))

    def insert_raw(self, path: str, body: bytes, *, idempotent: bool) -> InsertEventsResponse:
        """POST an already-serialized `{"events": [...]}` body (the fast path for large syncs)."""
        response = self.http.post(
            path, content=body, headers={"Content-Type": "application/json"}, idempotent=idempotent
        )
        return InsertEventsResponse.model_validate(response)

    def insert_dataset_events(
        self, dataset_id: str, events: Sequence[InsertDatasetEvent]
    ) -> InsertEventsResponse:
        """Insert rows; retried on failure only when every event carries its own `id`."""
        return self._insert(f"/v1/dataset/{dataset_id}/insert", events, idempotent=all(e.id for e in events))

    def fetch_dataset(self, dataset_id: str, body: FetchEventsRequest) -> FetchEventsResponse:
        return self._fetch(f"/v1/dataset/{dataset_id}/fetch", body)

    def _fetch(self, path: str, body: FetchEventsRequest) -> FetchEventsResponse:
        return FetchEventsResponse.model_validate(self.http.post(path, json=body.body(), idempotent=True))

    def iter_events(
        self, path: str, *, version: str | None = None, page_size: int = DEFAULT_FETCH_LIMIT
    ) -> Iterator[dict[str, Any]]:
        """Every event of an object, page by page (newest first), each id once."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            request = FetchEventsRequest(limit=page_size, **_params(cursor=cursor, version=version))
            page = self._fetch(path, request)
            for event in page.events:
                event_id = event.get("id")
                if event_id in seen:
                    continue
                seen.add(event_id)
                yield event
            if not page.events or not page.cursor:
                return
            cursor = page.cursor

    def iter_dataset_events(
        self, dataset_id: str, *, version: str | None = None, page_size: int = DEFAULT_FETCH_LIMIT
    ) -> Iterator[dict[str, Any]]:
        return self.iter_events(f"/v1/dataset/{dataset_id}/fetch", version=version, page_size=page_size)

    def summarize_dataset(self, dataset_id: str, *, summarize_data: bool = True) -> SummarizeDatasetResponse:
        params = {"summarize_data": str(summarize_data).lower()}
        return SummarizeDatasetResponse.model_validate(
            self.http.get(f"/v1/dataset/{dataset_id}/summarize", params=params)
        )

    # -- experiments -------------------------------------------------------------------------------
    def create_experiment(self, body: CreateExperiment) -> Experiment:
        """Create an experiment (with `ensure_new`, a taken name gets a unique suffix). Never retried."""
        return Experiment.model_validate(self.http.post("/v1/experiment", json=body.body()))

    def list_experiments(
        self,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
        experiment_name: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Experiment]:
        params = _params(
            project_id=project_id,
            project_name=project_name,
            experiment_name=experiment_name,
            org_name=self.org_name,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            ids=list(ids) if ids else None,
        )
        return [Experiment.model_validate(o) for o in self._list("/v1/experiment", params)]

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment.model_validate(self.http.get(f"/v1/experiment/{experiment_id}"))

    def insert_experiment_events(
        self, experiment_id: str, events: Sequence[InsertExperimentEvent]
    ) -> InsertEventsResponse:
        return self._insert(
            f"/v1/experiment/{experiment_id}/insert", events, idempotent=all(e.id for e in events)
        )

    def fetch_experiment(self, experiment_id: str, body: FetchEventsRequest) -> FetchEventsResponse:
        return self._fetch(f"/v1/experiment/{experiment_id}/fetch", body)

    def iter_experiment_events(
        self, experiment_id: str, *, page_size: int = DEFAULT_FETCH_LIMIT
    ) -> Iterator[dict[str, Any]]:
        return self.iter_events(f"/v1/experiment/{experiment_id}/fetch", page_size=page_size)

    def summarize_experiment(
        self,
        experiment_id: str,
        *,
        summarize_scores: bool = True,
        comparison_experiment_id: str | None = None,
    ) -> ExperimentSummary:
        params = _params(
            summarize_scores=str(summarize_scores).lower(), comparison_experiment_id=comparison_experiment_id
        )
        return ExperimentSummary.model_validate(
            self.http.get(f"/v1/experiment/{experiment_id}/summarize", params=params)
        )

    # -- eval --------------------------------------------------------------------------------------
    def run_eval(self, body: RunEval) -> ExperimentSummary:
        """`POST /v1/eval` and wait for the summary (streamed or not). Never retried: it starts a run."""
        if body.stream:
            return self.run_eval_stream(body).summary
        return ExperimentSummary.model_validate(self.http.post("/v1/eval", json=body.body()))

    def run_eval_stream(self, body: RunEval) -> EvalStreamResult:
        """`POST /v1/eval` with `stream: true`: read the server-sent events until `done`.

        Events understood: `start` (summary so far), `progress`, `summary` (final summary), `error`
        (raises `PlatformError`), `done`; others are kept but ignored.
        """
        body = body.model_copy(update={"stream": True})
        response: httpx.Response = self.http.post(
            "/v1/eval", json=body.body(), headers={"Accept": "text/event-stream"}, parse_json=False
        )
        events = parse_sse(response.text)
        summary: ExperimentSummary | None = None
        for event in events:
            if event.event == "error":
                raise PlatformError("braintrust", response.status_code, "POST", "/v1/eval", event.data)
            if event.event == "summary":
                summary = summary_from_event(event.data)
        if summary is None:
            names = ", ".join(e.event for e in events) or "none"
            raise PlatformError(
                "braintrust",
                response.status_code,
                "POST",
                "/v1/eval",
                f"the event stream ended without a summary event (events: {names})",
            )
        return EvalStreamResult(events=events, summary=summary)

    # -- prompts -----------------------------------------------------------------------------------
    def create_prompt(self, body: CreatePrompt) -> Prompt:
        return Prompt.model_validate(self.http.post("/v1/prompt", json=body.body(), idempotent=True))

    def patch_prompt(self, prompt_id: str, body: PatchPrompt) -> Prompt:
        return Prompt.model_validate(self.http.patch(f"/v1/prompt/{prompt_id}", json=body.body()))

    def list_prompts(
        self,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
        prompt_name: str | None = None,
        slug: str | None = None,
        version: str | None = None,
        environment: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Prompt]:
        params = _params(
            project_id=project_id,
            project_name=project_name,
            prompt_name=prompt_name,
            slug=slug,
            version=version,
            environment=environment,
            org_name=self.org_name,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            ids=list(ids) if ids else None,
        )
        return [Prompt.model_validate(o) for o in self._list("/v1/prompt", params)]

    def iter_prompts(self, *, page_size: int = 100, **filters: Any) -> Iterator[Prompt]:
        params = _params(org_name=self.org_name, **filters)
        for obj in self.iter_objects("/v1/prompt", params, page_size=page_size):
            yield Prompt.model_validate(obj)

    def get_prompt(self, prompt_id: str, *, version: str | None = None) -> Prompt:
        return Prompt.model_validate(
            self.http.get(f"/v1/prompt/{prompt_id}", params=_params(version=version))
        )

    def get_prompt_by_slug(self, project_name: str, slug: str, *, version: str | None = None) -> Prompt:
        found = self.list_prompts(project_name=project_name, slug=slug, version=version)
        if len(found) != 1:
            raise PlatformError(
                "braintrust",
                404 if not found else 409,
                "GET",
                "/v1/prompt",
                f"expected one prompt with slug {slug!r} in project {project_name!r}, found {len(found)}",
            )
        return found[0]

    # -- functions ---------------------------------------------------------------------------------
    def create_function(self, body: CreateFunction) -> Function:
        return Function.model_validate(self.http.post("/v1/function", json=body.body(), idempotent=True))

    def patch_function(self, function_id: str, body: PatchFunction) -> Function:
        return Function.model_validate(self.http.patch(f"/v1/function/{function_id}", json=body.body()))

    def list_functions(
        self,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
        function_name: str | None = None,
        slug: str | None = None,
        version: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Function]:
        params = _params(
            project_id=project_id,
            project_name=project_name,
            function_name=function_name,
            slug=slug,
            version=version,
            org_name=self.org_name,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            ids=list(ids) if ids else None,
        )
        return [Function.model_validate(o) for o in self._list("/v1/function", params)]

    def get_function(self, function_id: str, *, version: str | None = None) -> Function:
        return Function.model_validate(
            self.http.get(f"/v1/function/{function_id}", params=_params(version=version))
        )

    def invoke_function(self, function_id: str, body: InvokeFunction) -> Any:
        """Call a function and return its output (any JSON value). Never retried."""
        path = f"/v1/function/{function_id}/invoke"
        if body.stream:
            response = self.http.post(path, json=body.body(), parse_json=False)
            return parse_sse(response.text)
        return self.http.post(path, json=body.body())

    # -- project logs ------------------------------------------------------------------------------
    def insert_project_logs(
        self, project_id: str, events: Sequence[InsertProjectLogsEvent]
    ) -> InsertEventsResponse:
        return self._insert(
            f"/v1/project_logs/{project_id}/insert", events, idempotent=all(e.id for e in events)
        )

    def fetch_project_logs(self, project_id: str, body: FetchEventsRequest) -> FetchEventsResponse:
        return self._fetch(f"/v1/project_logs/{project_id}/fetch", body)

    def iter_project_logs(
        self, project_id: str, *, version: str | None = None, page_size: int = DEFAULT_FETCH_LIMIT
    ) -> Iterator[dict[str, Any]]:
        return self.iter_events(f"/v1/project_logs/{project_id}/fetch", version=version, page_size=page_size)
