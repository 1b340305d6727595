"""Report a release to a running Dagster deployment from CI, through Dagster's own GraphQL API.

`report_release` adds the release tag as a partition of the eval report's dynamic partitions, launches the
eval job for it with the tag and commit as run tags (so the report records them), and optionally waits for
the run: with a blocking gate, a failed check fails the run, so CI can stop the release on it.

    dagster-evals report-release --url http://dagster:3000 --job support_bot_versions_job \\
        --partitions support_bot_versions --tag "$GIT_TAG" --commit "$GIT_SHA" --wait
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from dagster_evals.engine.errors import DagsterEvalsError
from dagster_evals.engine.triggers import TAG_GIT_COMMIT, TAG_RELEASE_TAG, TAG_TRIGGER

TERMINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

REPOSITORIES = """
query { repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name } jobs { name } } } ... on PythonError { message } } }
"""

ADD_PARTITION = """
mutation($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message }
  }
}
"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

RUN_STATUS = """
query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""


@dataclass(frozen=True)
class ReleaseRun:
    run_id: str
    status: str | None
    url: str


def _graphql(client: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}})
    if response.status_code != 200:
        raise DagsterEvalsError(
            f"Dagster GraphQL answered HTTP {response.status_code}: {response.text[:500]}"
        )
    body = response.json()
    if body.get("errors"):
        raise DagsterEvalsError(f"Dagster GraphQL error: {body['errors'][0].get('message')}")
    return body["data"]


def report_release(
    url: str,
    *,
    job: str,
    partitions_def: str,
    tag: str,
    commit: str = "",
    wait: bool = False,
    timeout_s: float = 3600.0,
    poll_s: float = 2.0,
) -> ReleaseRun:
    """Add `tag` as a partition, launch `job` for it with the release tags, and optionally wait."""
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as client:
        repos = _graphql(client, REPOSITORIES)["repositoriesOrError"]
        if repos["__typename"] != "RepositoryConnection":
            raise DagsterEvalsError(f"could not list repositories: {repos.get('message')}")
        matches = [r for r in repos["nodes"] if any(j["name"] == job for j in r["jobs"])]
        if not matches:
            known = sorted({j["name"] for r in repos["nodes"] for j in r["jobs"]})
            raise DagsterEvalsError(f"no job {job!r} in the deployment; jobs: {', '.join(known)}")
        selector = {
            "repositoryLocationName": matches[0]["location"]["name"],
            "repositoryName": matches[0]["name"],
        }
        added = _graphql(client, ADD_PARTITION, {"selector": selector, "name": partitions_def, "key": tag})
        outcome = added["addDynamicPartition"]
        if outcome["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise DagsterEvalsError(
                f"could not add partition {tag!r}: {outcome.get('message', outcome['__typename'])}"
            )
        tags = {"dagster/partition": tag, TAG_TRIGGER: "release", TAG_RELEASE_TAG: tag}
        if commit:
            tags[TAG_GIT_COMMIT] = commit
        params = {
            "selector": {**selector, "jobName": job},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        launched = _graphql(client, LAUNCH_RUN, {"params": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            raise DagsterEvalsError(f"could not launch {job!r}: {launched}")
        run_id = launched["run"]["runId"]
        status = None
        deadline = time.monotonic() + timeout_s
        while wait:
            run = _graphql(client, RUN_STATUS, {"runId": run_id})["runOrError"]
            status = run.get("status")
            if status in TERMINAL_STATUSES:
                break
            if time.monotonic() > deadline:
                raise DagsterEvalsError(
                    f"run {run_id} did not finish within {timeout_s:.0f}s (status {status})"
                )
            time.sleep(poll_s)
        return ReleaseRun(run_id=run_id, status=status, url=f"{url.rstrip('/')}/runs/{run_id}")
