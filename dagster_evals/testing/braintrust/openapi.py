"""Request validation from Braintrust's published OpenAPI spec (the vendored extract in `spec/`).

The extract comes from braintrustdata/braintrust-openapi `openapi/spec.json` (commit in its `x-source`);
`scripts/extract_braintrust_spec.py` regenerates it. Validation follows OpenAPI 3.0 for the subset the
spec uses (`$ref`, `type`, `nullable`, `enum`, `properties`, `required`, `additionalProperties`,
`anyOf`/`oneOf`/`allOf`, `items`, `minimum`/`maximum`, `minLength`, `format: uuid`). Objects that list
their `properties` and say nothing about `additionalProperties` are treated as closed, so a misspelt field
is answered with 400 as the real API (zod schemas) does for the write endpoints.
"""

from __future__ import annotations

import json
import uuid
from functools import cache
from importlib import resources
from typing import Any

SPEC_FILE = "openapi_extract.json"

_NULLABLE_STRING = {"type": "string", "nullable": True}
# Fields the pinned `braintrust` SDK (0.48.1, `braintrust/_generated_types.py` and
# `braintrust/api/_generated/models/*.py`) publishes but the OpenAPI spec extract does not. Where the two
# published sources disagree the fake accepts both.
SDK_ADDITIONS: dict[str, dict[str, Any]] = {
    "CreateProject": {"project_group_name": _NULLABLE_STRING},  # models/projects.py CreateProject
    "SpanAttributes": {"log_level": _NULLABLE_STRING},  # _generated_types.py SpanAttributes
    "CreatePrompt": {  # models/prompts.py CreatePrompt
        "environment_slugs": {"type": "array", "nullable": True, "items": {"type": "string"}}
    },
    "RunEval": {"endpoint_name": _NULLABLE_STRING},  # _generated_types.py RunEval
    "InvokeApi": {"endpoint_name": _NULLABLE_STRING},  # _generated_types.py InvokeFunctionInvokeFunction7
}
# _generated_types.py RunEvalData2 (`source_dataset_id`) and RunEvalData3 (`experiment_name`).
SDK_DATA_ROWS_ADDITIONS = {"source_dataset_id": _NULLABLE_STRING}
SDK_EXPERIMENT_DATA = {
    "type": "object",
    "properties": {"experiment_name": {"type": "string"}},
    "required": ["experiment_name"],
    "title": "experiment_name (SDK only)",
}


@cache
def published_spec() -> dict[str, Any]:
    """The vendored extract exactly as published (parsed once)."""
    text = resources.files("dagster_evals.testing.braintrust.spec").joinpath(SPEC_FILE).read_text("utf-8")
    return json.loads(text)


@cache
def spec() -> dict[str, Any]:
    """The extract plus the SDK-only fields in `SDK_ADDITIONS`: what the fake accepts."""
    merged = json.loads(json.dumps(published_spec()))
    schemas = merged["components"]["schemas"]
    for name, extra in SDK_ADDITIONS.items():
        schemas[name].setdefault("properties", {}).update(extra)
    data = schemas["RunEval"]["properties"]["data"]["anyOf"]
    for branch in data:
        if branch.get("title") == "dataset_rows":
            branch["properties"].update(SDK_DATA_ROWS_ADDITIONS)
    data.append(SDK_EXPERIMENT_DATA)
    return merged


def source() -> dict[str, str]:
    """`{"repo", "commit", "path"}` of the spec the extract was cut from."""
    return dict(published_spec()["x-source"])


def schema(name: str, *, published: bool = False) -> dict[str, Any]:
    """A component schema by name, e.g. `schema("RunEval")` (`published=True`: without SDK additions)."""
    return (published_spec() if published else spec())["components"]["schemas"][name]


def resolve(node: dict[str, Any], *, published: bool = False) -> dict[str, Any]:
    """Follow `$ref`s; sibling keys of a `$ref` (e.g. `nullable`) are kept."""
    while "$ref" in node:
        _, _, section, name = node["$ref"].split("/", 3)
        target = (published_spec() if published else spec())["components"][section][name]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def request_schema(method: str, path: str) -> dict[str, Any] | None:
    """The JSON request body schema of an operation, e.g. `("post", "/v1/dataset")`."""
    operation = spec()["paths"].get(path, {}).get(method.lower())
    if operation is None or "requestBody" not in operation:
        return None
    return operation["requestBody"]["content"]["application/json"]["schema"]


def properties(node: dict[str, Any], *, published: bool = False) -> dict[str, Any]:
    """Every property an object schema (or any branch of its `anyOf`/`oneOf`/`allOf`) can carry."""
    node = resolve(node, published=published)
    found = dict(node.get("properties") or {})
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(key) or []:
            found.update(properties(branch, published=published))
    return found


class SpecError(ValueError):
    """A value that the published schema rejects; `str()` names the field path."""


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def validate(value: Any, node: dict[str, Any], where: str = "body", *, closed: bool = True) -> None:
    """Raise `SpecError` naming the first field of `value` that `node` does not allow."""
    node = resolve(node)
    if value is None:
        if node.get("nullable") or not node or (node.get("type") is None and not _has_branches(node)):
            return
        if "anyOf" not in node and "oneOf" not in node:
            raise SpecError(f"{where}: may not be null")
    for key in ("anyOf", "oneOf"):
        if key in node:
            errors = []
            for branch in node[key]:
                try:
                    validate(value, branch, where, closed=closed)
                    break
                except SpecError as exc:
                    errors.append(str(exc))
            else:
                best = min(errors, key=len) if errors else f"{where}: no alternative"
                raise SpecError(f"{where}: matches none of the {len(node[key])} accepted shapes ({best})")
            if value is None:
                return
    for branch in node.get("allOf") or []:
        validate(value, branch, where, closed=False)
    kind = node.get("type")
    if kind is not None and not _is_type(value, kind):
        raise SpecError(f"{where}: expected {kind}, got {type(value).__name__}")
    if "enum" in node and value not in node["enum"]:
        raise SpecError(f"{where}: {value!r} is not one of {[v for v in node['enum'] if v is not None]}")
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            raise SpecError(f"{where}: shorter than {node['minLength']} characters")
        if node.get("format") == "uuid":
            try:
                uuid.UUID(value)
            except ValueError:
                raise SpecError(f"{where}: {value!r} is not a UUID") from None
    if _is_type(value, "number"):
        if "minimum" in node and value < node["minimum"]:
            raise SpecError(f"{where}: {value} is below the minimum {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            raise SpecError(f"{where}: {value} is above the maximum {node['maximum']}")
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            validate(item, node["items"], f"{where}[{i}]", closed=closed)
    if isinstance(value, dict) and (kind == "object" or "properties" in node):
        _validate_object(value, node, where, closed)


def _has_branches(node: dict[str, Any]) -> bool:
    return any(k in node for k in ("anyOf", "oneOf", "allOf", "properties", "enum"))


def _validate_object(value: dict[str, Any], node: dict[str, Any], where: str, closed: bool) -> None:
    props = node.get("properties") or {}
    for name in node.get("required") or []:
        if name not in value:
            raise SpecError(f"{where}.{name}: field required")
    extra = node.get("additionalProperties")
    for name, item in value.items():
        if name in props:
            validate(item, props[name], f"{where}.{name}", closed=closed)
        elif isinstance(extra, dict):
            validate(item, extra, f"{where}.{name}", closed=closed)
        elif extra is False or (extra is None and props and closed):
            raise SpecError(f"{where}.{name}: unknown field")


class Body(dict):
    """A validated request body read as attributes: `body.project_id`, None when absent.

    Nested objects are `Body`s too; a leading underscore of a spec field may be left out
    (`body.is_merge` reads `_is_merge`).
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = self.get(name, self.get("_" + name))
        return wrap(value)

    def has(self, *names: str) -> bool:
        return all(n in self for n in names)


def wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Body):
        return Body(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


def parse(body: Any, node: dict[str, Any] | str, *, closed: bool = True) -> Body:
    """Validate a JSON request body against a schema (or a component name) and return it as a `Body`."""
    if isinstance(node, str):
        node = schema(node)
    if not isinstance(body, dict):
        raise SpecError("body: request body must be a JSON object")
    validate(body, node, "body", closed=closed)
    return Body(body)
