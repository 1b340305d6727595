"""Braintrust REST API wire models: function references, `POST /v1/eval` (+ its server-sent events),
prompts and functions.

Sources: braintrustdata/braintrust-openapi `openapi/spec.json` (schemas `FunctionId`, `RunEval`,
`CreatePrompt`, `PatchPrompt`, `Prompt`, `CreateFunction`, `PatchFunction`, `Function`, `InvokeApi`);
`endpoint_name`, `environment_slugs` and the `experiment_name` data form are published only by the
`braintrust` SDK (`braintrust/_generated_types.py` RunEval / RunEvalData3, InvokeFunctionInvokeFunction7;
`braintrust/api/_generated/models/prompts.py` CreatePrompt). The stream's event names are not published
(unconfirmed: `start`, `progress`, `summary`, `error`, `done` are accepted).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from dagster_evals.backends.braintrust.models import (
    BtRequest,
    BtResponse,
    ExperimentSummary,
    GitMetadataSettings,
    McpAuth,
    Parent,
    RepoInfo,
)
from dagster_evals.engine.errors import PlatformError

__all__ = [
    "CreateFunction",
    "CreatePrompt",
    "DatasetIdData",
    "DatasetRowsData",
    "EvalStreamCutShort",
    "EvalStreamResult",
    "ExperimentNameData",
    "Function",
    "FunctionIdRef",
    "FunctionRef",
    "FunctionType",
    "GlobalFunctionRef",
    "InlineCodeRef",
    "InlineContext",
    "InlineFunctionRef",
    "InlinePromptRef",
    "InvokeFunction",
    "PatchFunction",
    "PatchPrompt",
    "ProjectDatasetNameData",
    "ProjectSlugRef",
    "Prompt",
    "PromptSessionRef",
    "RunEval",
    "RunEvalData",
    "SseEvent",
    "eval_stream_result",
    "parse_sse",
    "summary_from_event",
]

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


class EvalStreamCutShort(PlatformError):
    """A streamed `POST /v1/eval` sent its `start` event (the run exists) but ended without a summary or an
    error: the run may still be going. `started` is the summary the `start` event carried."""

    def __init__(self, started: ExperimentSummary, events: str) -> None:
        super().__init__(
            "braintrust", None, "POST", "/v1/eval",
            f"the event stream ended after `start` without a summary event (events: {events})",
        )  # fmt: skip
        self.started = started


def eval_stream_result(events: list[SseEvent], status: int) -> EvalStreamResult:
    """The events of a streamed `POST /v1/eval` with their final summary; an `error` event raises
    `PlatformError`, a stream that ended after `start` without a summary `EvalStreamCutShort`."""
    summary: ExperimentSummary | None = None
    for event in events:
        if event.event == "error":
            raise PlatformError("braintrust", status, "POST", "/v1/eval", event.data)
        if event.event == "summary":
            summary = summary_from_event(event.data)
    if summary is None:
        names = ", ".join(e.event for e in events) or "none"
        start = next((e for e in events if e.event == "start"), None)
        if start is not None:  # the run started: the caller waits for it rather than start another
            raise EvalStreamCutShort(summary_from_event(start.data), names)
        message = f"the event stream ended without a summary event (events: {names})"
        raise PlatformError("braintrust", status, "POST", "/v1/eval", message)
    return EvalStreamResult(events=events, summary=summary)


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
