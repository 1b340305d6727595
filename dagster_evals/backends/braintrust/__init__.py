"""Braintrust backend: `BraintrustResource` and the `EvalPlatform` it hands out.

Modules by job: `resources.py` (the Dagster resource), `platform.py` (the facade), `session.py`
(connection, projects, batched inserts), `datasets.py`, `evals.py`, `reports.py`, `prompts.py`,
`client.py` (HTTP calls) and `models.py` / `eval_models.py` (wire shapes, each citing its source).
"""

from dagster_evals.backends.braintrust.platform import BraintrustPlatform
from dagster_evals.backends.braintrust.resources import BraintrustResource

__all__ = ["BraintrustPlatform", "BraintrustResource"]
