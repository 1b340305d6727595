"""Braintrust as an `EvalPlatform`: datasets, pinned versions, experiments, `/v1/eval` and prompts.

- Datasets live in a project (created on first use). Rows are inserted with their own ids, so a retried or
  repeated insert replaces rows instead of duplicating them; removed rows get `_object_delete`.
- A version is a Braintrust transaction id (`_xact_id`): reading with `version=` returns the dataset exactly
  as it was then. Because a delete is a transaction too, every delete is followed by a no-op merge of one
  remaining row, so the newest live row always carries the head transaction id.
- `run_eval` with a `PlatformFunction` task launches `POST /v1/eval` over the pinned dataset version; with a
  Python callable it runs locally and records the rows as an experiment (pinned to the dataset version,
  compared with the baseline experiment).
"""

from __future__ import annotations

import importlib

from dagster_evals.backends.braintrust.evals import BraintrustEvals, function_ref, git_repo_info
from dagster_evals.backends.braintrust.prompts import BraintrustPrompts
from dagster_evals.backends.braintrust.session import EMPTY_VERSION


class BraintrustPlatform(BraintrustEvals, BraintrustPrompts):
    """`EvalPlatform` on the Braintrust REST API (datasets, evals, reports and prompts by module).

    Examples:
        .. code-block:: python

            from dagster_evals import BraintrustPlatform

            platform = BraintrustPlatform(api_key="...", project="support-bot")
            dataset = platform.ensure_dataset("qa")
            print(platform.current_version(dataset))
    """


def __getattr__(name: str) -> object:
    if name == "BraintrustResource":  # kept importable from here; it lives in resources.py
        # Loaded by name: the resource module builds on this one, so an import statement here would be a
        # cycle (and would load Dagster with the platform).
        return importlib.import_module("dagster_evals.backends.braintrust.resources").BraintrustResource
    raise AttributeError(name)


__all__ = ["EMPTY_VERSION", "BraintrustPlatform", "function_ref", "git_repo_info"]
