"""What Airflow's providers manager reads (entry point `apache_airflow_provider`): the connection types.

Imports nothing from Airflow: the providers manager loads it while Airflow itself is starting.
"""

from __future__ import annotations

from typing import Any

_HOOKS = "dagster_evals.airflow.hooks"


def get_provider_info() -> dict[str, Any]:
    """The provider's description and its three connection types (one hook each)."""
    return {
        "package-name": "dagster-evals",
        "name": "dagster-evals",
        "description": "LLM evals, gates and lineage on Braintrust, Keywords AI or an embedded database.",
        "connection-types": [
            {
                "hook-class-name": f"{_HOOKS}.LocalEvalsHook",
                "connection-type": "dagster_evals_local",
                "hook-name": "dagster-evals: embedded backend",
            },
            {
                "hook-class-name": f"{_HOOKS}.BraintrustHook",
                "connection-type": "dagster_evals_braintrust",
                "hook-name": "dagster-evals: Braintrust",
            },
            {
                "hook-class-name": f"{_HOOKS}.KeywordsAIHook",
                "connection-type": "dagster_evals_keywordsai",
                "hook-name": "dagster-evals: Keywords AI",
            },
        ],
    }
