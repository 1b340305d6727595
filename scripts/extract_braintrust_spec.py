"""Regenerate the vendored extract of Braintrust's published OpenAPI spec used by the Braintrust fake.

Usage (from a checkout of github.com/braintrustdata/braintrust-openapi):

    python scripts/extract_braintrust_spec.py /path/to/braintrust-openapi \
        > dagster_evals/testing/braintrust/spec/openapi_extract.json

The extract keeps only the paths the fake serves and every schema, parameter and response they reach
(`$ref` closure), and records the source repository, commit and path in `x-source`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

REPO = "braintrustdata/braintrust-openapi"
SPEC_PATH = "openapi/spec.json"
PATHS = [
    "/v1/project",
    "/v1/project/{project_id}",
    "/v1/project_logs/{project_id}/insert",
    "/v1/project_logs/{project_id}/fetch",
    "/v1/experiment",
    "/v1/experiment/{experiment_id}",
    "/v1/experiment/{experiment_id}/insert",
    "/v1/experiment/{experiment_id}/fetch",
    "/v1/experiment/{experiment_id}/summarize",
    "/v1/dataset",
    "/v1/dataset/{dataset_id}",
    "/v1/dataset/{dataset_id}/insert",
    "/v1/dataset/{dataset_id}/fetch",
    "/v1/dataset/{dataset_id}/summarize",
    "/v1/prompt",
    "/v1/prompt/{prompt_id}",
    "/v1/function",
    "/v1/function/{function_id}",
    "/v1/function/{function_id}/invoke",
    "/v1/eval",
]


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def strip_docs(node: Any) -> Any:
    """Drop prose (descriptions, examples) to keep the extract small; the shapes stay exact."""
    if isinstance(node, dict):
        return {
            k: strip_docs(v)
            for k, v in node.items()
            if not (k in ("description", "summary", "example") and isinstance(v, str))
        }
    if isinstance(node, list):
        return [strip_docs(v) for v in node]
    return node


def extract(spec: dict[str, Any], commit: str) -> dict[str, Any]:
    paths = {p: spec["paths"][p] for p in PATHS}
    components: dict[str, dict[str, Any]] = {}
    todo = refs(paths)
    done: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in done:
            continue
        done.add(ref)
        _, _, section, name = ref.split("/", 3)
        node = spec["components"][section][name]
        components.setdefault(section, {})[name] = node
        todo |= refs(node) - done
    return strip_docs(
        {
            "x-source": {"repo": REPO, "commit": commit, "path": SPEC_PATH},
            "openapi": spec["openapi"],
            "paths": paths,
            "components": {s: dict(sorted(c.items())) for s, c in sorted(components.items())},
        }
    )


def main(checkout: str) -> None:
    commit = subprocess.run(
        ["git", "-C", checkout, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    raw = subprocess.run(
        ["git", "-C", checkout, "show", f"{commit}:{SPEC_PATH}"], check=True, capture_output=True, text=True
    ).stdout
    json.dump(extract(json.loads(raw), commit), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
