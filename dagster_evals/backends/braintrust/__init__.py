"""Braintrust backend: `BraintrustResource` and the `EvalPlatform` it hands out.

Modules by job: `resources.py` (the Dagster resource), `platform.py` (the facade), `session.py`
(connection, projects, batched inserts), `datasets.py`, `evals.py`, `reports.py`, `prompts.py`,
`client.py` (HTTP calls) and `models.py` / `eval_models.py` (wire shapes, each citing its source).
Importing this package loads no Dagster; `BraintrustResource` loads it on first use.
"""

from typing import TYPE_CHECKING, Any

from dagster_evals.backends.braintrust.platform import BraintrustPlatform

if TYPE_CHECKING:
    from dagster_evals.backends.braintrust.resources import BraintrustResource


def __getattr__(name: str) -> Any:
    if name == "BraintrustResource":
        from dagster_evals.backends.braintrust.resources import BraintrustResource

        return BraintrustResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BraintrustPlatform", "BraintrustResource"]
