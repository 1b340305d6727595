"""Regenerate dagster_evals/testing/keywordsai/spec/respan_api.json from the Fern-generated Respan client.

The extract lists, for every endpoint the Keywords AI fake serves, the HTTP method, path, query parameters
and JSON body fields (with their Python type and whether they are required) of
`src/respan/<resource>/raw_client.py`, and the fields of the response types under
`src/respan/<resource>/types/`. Usage:

    git clone https://github.com/respanai/respan-python-api /tmp/respan-python-api
    python scripts/extract_keywordsai_spec.py /tmp/respan-python-api [commit]

The fake (`dagster_evals.testing.keywordsai`) validates every request against this file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = "respanai/respan-python-api"
OUT = Path(__file__).resolve().parents[1] / "dagster_evals/testing/keywordsai/spec/respan_api.json"
# (resource, method name in raw_client.py)
ENDPOINTS = [
    ("datasets", "create_dataset"),
    ("datasets", "list_datasets"),
    ("datasets", "retrieve_dataset"),
    ("datasets", "update_dataset"),
    ("datasets", "delete_dataset"),
    ("datasets", "create_dataset_log"),
    ("datasets", "bulk_create_dataset_logs"),
    ("datasets", "list_dataset_logs"),
    ("datasets", "delete_dataset_log"),
    ("datasets", "import_dataset_logs"),
    ("datasets", "remove_dataset_logs"),
    ("datasets", "run_eval_on_dataset"),
    ("datasets", "list_dataset_eval_runs"),
    ("prompts", "list_prompts"),
    ("prompts", "list_prompt_versions"),
]
TYPES = [
    ("datasets", "bulk_create_dataset_logs_request_logs_item"),
    ("datasets", "bulk_create_dataset_logs_response"),
    ("datasets", "bulk_create_dataset_logs_response_errors_item"),
    ("datasets", "create_dataset_response"),
    ("datasets", "create_dataset_log_response"),
    ("datasets", "import_dataset_logs_response"),
    ("datasets", "remove_dataset_logs_response"),
    ("datasets", "run_eval_on_dataset_response"),
    ("datasets", "run_eval_on_dataset_response_created_tasks_item"),
    ("datasets", "list_dataset_eval_runs_response"),
    ("datasets", "list_dataset_eval_runs_response_results_item"),
    ("datasets", "list_dataset_logs_response_count"),
    ("datasets", "list_dataset_logs_response_count_results_item"),
    ("datasets", "list_datasets_response"),
    ("datasets", "list_datasets_response_results_item"),
    ("prompts", "list_prompts_response_results_item"),
    ("prompts", "list_prompts_response_results_item_current_version"),
    ("prompts", "list_prompt_versions_response_results_item"),
]
FIELD = re.compile(r"^\s{4}(\w+): (.+?)(?: = .*)?$")


def show(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def kind(annotation: str) -> str:
    """A JSON kind for a Python annotation: string, integer, number, boolean, object, array or any."""
    inner = annotation.replace("typing.Optional[", "").rstrip("]")
    for prefix, name in (
        ("typing.Dict", "object"),
        ("typing.Sequence", "array"),
        ("typing.List", "array"),
        ("str", "string"),
        ("int", "integer"),
        ("float", "number"),
        ("bool", "boolean"),
        ("dt.datetime", "string"),
    ):
        if inner.startswith(prefix):
            return name
    return "any"


def endpoint(source: str, name: str) -> dict[str, object]:
    start = source.index(f"    def {name}(")
    block = source[start : source.index("\n    def ", start + 10)]
    signature = block[: block.index(") ->")]
    params: dict[str, dict[str, object]] = {}
    for line in signature.splitlines()[1:]:
        match = re.match(r"\s+(\w+): (.+?)(,| = )", line)
        if match and match.group(1) not in ("self", "request_options"):
            required = "= OMIT" not in line and "= None" not in line
            params[match.group(1)] = {"kind": kind(match.group(2)), "required": required}
    call = re.search(r'request\(\s+f?"([^"]+)",\s+method="(\w+)"', block)
    assert call, name
    path = re.sub(r"\{jsonable_encoder\((\w+)\)\}", r"{\1}", call.group(1))

    def keys(section: str) -> list[str]:
        found = re.search(section + r"=\{(.*?)\n            \}", block, re.S)
        return re.findall(r'"(\w+)":', found.group(1)) if found else []

    return {
        "method": call.group(2),
        "path": "/" + path,
        "query": {k: params[k] for k in keys("params") if k in params},
        "body": {k: params[k] for k in keys("json") if k in params},
    }


def fields(source: str) -> dict[str, str]:
    out = {}
    for line in source.splitlines():
        match = FIELD.match(line)
        if match and match.group(1) != "model_config":
            out[match.group(1)] = kind(match.group(2))
    return out


def main(repo: Path, commit: str) -> None:
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", commit], check=True, capture_output=True, text=True
    ).stdout.strip()
    clients = {r: show(repo, commit, f"src/respan/{r}/raw_client.py") for r in {r for r, _ in ENDPOINTS}}
    extract = {
        "source": {
            "repo": REPO,
            "commit": commit,
            "paths": [f"src/respan/{r}/raw_client.py" for r in clients],
        },
        "endpoints": {name: endpoint(clients[r], name) for r, name in ENDPOINTS},
        "types": {
            name: {
                "path": f"src/respan/{r}/types/{name}.py",
                "fields": fields(show(repo, commit, f"src/respan/{r}/types/{name}.py")),
            }
            for r, name in TYPES
        },
    }
    OUT.write_text(json.dumps(extract, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} from {REPO}@{commit}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "HEAD")
