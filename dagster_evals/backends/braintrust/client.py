"""The low-level Braintrust REST client: one method per endpoint, one generic paginated list, on top of
`HttpClient` (retries, pacing, redaction). Paths and parameters: braintrustdata/braintrust-openapi
`openapi/spec.json` (see `docs/api-versions.md` for the commit)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from dagster_evals.backends.braintrust.eval_models import (
    CreateFunction,
    CreatePrompt,
    EvalStreamResult,
    Function,
    InvokeFunction,
    PatchFunction,
    PatchPrompt,
    Prompt,
    RunEval,
    eval_stream_result,
    parse_sse,
)
from dagster_evals.backends.braintrust.models import (
    DEFAULT_FETCH_LIMIT,
    BtRequest,
    CreateDataset,
    CreateExperiment,
    CreateProject,
    Dataset,
    Experiment,
    ExperimentSummary,
    FetchEventsRequest,
    FetchEventsResponse,
    InsertDatasetEvent,
    InsertEventsResponse,
    InsertExperimentEvent,
    InsertProjectLogsEvent,
    ObjectList,
    PatchDataset,
    PatchProject,
    Project,
    SummarizeDatasetResponse,
)
from dagster_evals.engine.errors import PlatformError
from dagster_evals.engine.http import HttpClient
from dagster_evals.engine.seen_ids import SeenIds


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
        seen = SeenIds()  # on disk past a bound: memory stays flat in the event count
        try:
            while True:
                request = FetchEventsRequest(limit=page_size, **_params(cursor=cursor, version=version))
                page = self._fetch(path, request)
                for event in page.events:
                    if seen.add(str(event.get("id"))):
                        yield event
                if not page.events or not page.cursor:
                    return
                cursor = page.cursor
        finally:
            seen.close()

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
        return eval_stream_result(parse_sse(response.text), response.status_code)

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
