"""Which published Braintrust schema each client request model is checked against, and why the spec
fields a model does not send are left out.

The rule (`test_models_match_the_published_types`): every field the client sends exists in the published
spec (braintrustdata/braintrust-openapi `openapi/spec.json`, vendored extract) or in the other published
source named in `other_sources` (the pinned `braintrust` SDK's `_generated_types.py`, where the two
disagree); every spec field the client does not send is listed in `unused` with the reason
(`SUPPORTED`: reachable another way; `UNSUPPORTED`: deliberately not offered). A regenerated spec
extract or a new SDK release therefore shows up as a readable list of fields to classify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from dagster_evals.backends.braintrust import api
from dagster_evals.testing.braintrust import openapi

SUPPORTED = "supported: passed through unchanged from the caller's spec/body"
UNSUPPORTED = "deliberately unsupported: not needed by dagster-evals"


@dataclass(frozen=True)
class SpecRule:
    model: type[BaseModel]
    schema: tuple[Any, ...] | None
    unused: dict[str, str] = field(default_factory=dict)
    sdk_only: frozenset[str] = frozenset()
    sdk_type: str | None = None
    sdk_unused: dict[str, str] = field(default_factory=dict)


def spec_node(path: tuple[Any, ...]) -> dict[str, Any]:
    """A published schema by component name, then property names / `anyOf` indexes, e.g.
    ("RunEval", "data", 2)."""
    node = openapi.schema(path[0], published=True)
    for step in path[1:]:
        node = openapi.resolve(node, published=True)
        if step == "items" and "items" in node:
            node = node["items"]
        elif isinstance(step, int):
            node = (node.get("anyOf") or node.get("oneOf"))[step]
        else:
            node = node["properties"][step]
    return openapi.resolve(node, published=True)


def our_fields(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    names = {f.alias or n for n, f in model.model_fields.items()}
    required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
    return names, required


SPEC_RULES: list[SpecRule] = [
    SpecRule(
        api.CreateProject,
        ("CreateProject",),
        sdk_only=frozenset({"project_group_name"}),
        sdk_type="braintrust.api._generated.models.projects:CreateProject",
    ),
    SpecRule(api.PatchProject, ("PatchProject",)),
    SpecRule(api.CreateDataset, ("CreateDataset",)),
    SpecRule(api.PatchDataset, ("PatchDataset",)),
    SpecRule(api.InsertDatasetEvent, ("InsertDatasetEvent",)),
    SpecRule(api.FetchEventsRequest, ("FetchEventsRequest",)),
    SpecRule(api.CreateExperiment, ("CreateExperiment",)),
    SpecRule(api.InsertExperimentEvent, ("InsertExperimentEvent",)),
    SpecRule(
        api.SpanAttributes,
        ("SpanAttributes",),
        sdk_only=frozenset({"log_level"}),
        sdk_type="braintrust._generated_types:SpanAttributes",
    ),
    SpecRule(
        api.CreatePrompt,
        ("CreatePrompt",),
        sdk_only=frozenset({"environment_slugs"}),
        sdk_type="braintrust.api._generated.models.prompts:CreatePrompt",
    ),
    SpecRule(api.PatchPrompt, ("PatchPrompt",)),
    SpecRule(api.CreateFunction, ("CreateFunction",)),
    SpecRule(api.PatchFunction, ("PatchFunction",)),
    SpecRule(
        api.InvokeFunction,
        ("InvokeApi",),
        sdk_only=frozenset({"endpoint_name"}),
        sdk_type="braintrust._generated_types:InvokeFunctionInvokeFunction7",
    ),
    SpecRule(
        api.RunEval,
        ("RunEval",),
        sdk_only=frozenset({"endpoint_name"}),
        sdk_type="braintrust._generated_types:RunEval",
    ),
    SpecRule(api.DatasetIdData, ("RunEval", "data", 0)),
    SpecRule(api.ProjectDatasetNameData, ("RunEval", "data", 1)),
    SpecRule(
        api.DatasetRowsData,
        ("RunEval", "data", 2),
        sdk_type="braintrust._generated_types:RunEvalData2",
        # New in SDK 0.48: the dataset the rows were copied from (display only); not in the spec.
        sdk_unused={"source_dataset_id": UNSUPPORTED},
    ),
    SpecRule(
        api.ExperimentNameData,
        None,  # only in the SDK: _generated_types.py RunEvalData3
        sdk_only=frozenset({"experiment_name"}),
        sdk_type="braintrust._generated_types:RunEvalData3",
    ),
    SpecRule(api.FunctionIdRef, ("FunctionId", 0)),
    SpecRule(api.ProjectSlugRef, ("FunctionId", 1)),
    SpecRule(api.GlobalFunctionRef, ("FunctionId", 2)),
    SpecRule(api.PromptSessionRef, ("FunctionId", 3)),
    SpecRule(api.InlineCodeRef, ("FunctionId", 4)),
    SpecRule(api.InlineContext, ("FunctionId", 4, "inline_context")),
    SpecRule(api.InlineFunctionRef, ("FunctionId", 5)),
    SpecRule(api.InlinePromptRef, ("FunctionId", 6)),
    SpecRule(api.RepoInfo, ("RepoInfo",)),
    SpecRule(api.GitMetadataSettings, ("GitMetadataSettings",)),
    SpecRule(api.ArrayDelete, ("InsertDatasetEvent", "_array_delete", "items")),
    SpecRule(api.Parent, ("InvokeParent", 0)),
    SpecRule(api.ParentRowIds, ("InvokeParent", 0, "row_ids")),
    SpecRule(api.ObjectReference, ("ObjectReferenceNullish",)),
]
