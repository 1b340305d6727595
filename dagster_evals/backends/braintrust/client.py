"""The low-level Braintrust REST client: one method per endpoint, one generic paginated list, on top of
`HttpClient` (retries, pacing, redaction). Paths and parameters: braintrustdata/braintrust-openapi
`openapi/spec.json` (see `docs/api-versions.md` for the commit).

`BraintrustClient` is composed by object kind: the shared lists, inserts and fetches
(`client_base.BraintrustClientBase`), prompts and functions (`client_prompts.PromptsAndFunctions`), and here
projects, datasets, experiments, evals and project logs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from dagster_evals.backends.braintrust.client_base import query_params as _params
from dagster_evals.backends.braintrust.client_prompts import PromptsAndFunctions
from dagster_evals.backends.braintrust.eval_models import (
    EvalStreamResult,
    RunEval,
    eval_stream_result,
    parse_sse,
)
from dagster_evals.backends.braintrust.models import (
    DEFAULT_FETCH_LIMIT,
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
    PatchDataset,
    PatchProject,
    Project,
    SummarizeDatasetResponse,
)

__all__ = ["BraintrustClient"]


class BraintrustClient(PromptsAndFunctions):
    """One method per Braintrust REST endpoint, on top of `HttpClient` (retries, pacing, redaction)."""

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

    def insert_dataset_events(
        self, dataset_id: str, events: Sequence[InsertDatasetEvent]
    ) -> InsertEventsResponse:
        """Insert rows; retried on failure only when every event carries its own `id`."""
        return self._insert(f"/v1/dataset/{dataset_id}/insert", events, idempotent=all(e.id for e in events))

    def fetch_dataset(self, dataset_id: str, body: FetchEventsRequest) -> FetchEventsResponse:
        return self._fetch(f"/v1/dataset/{dataset_id}/fetch", body)

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
