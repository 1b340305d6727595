"""The Airflow provider of dagster-evals: the same engine as the Dagster integration, as Airflow hooks,
operators, deferrable triggers and sensors (`pip install 'dagster-evals[airflow]'`, Airflow 3).

- Hooks (`hooks.py`): an Airflow Connection per backend → the engine's `EvalPlatform`.
- Operators: `SyncDatasetOperator` → `PinSnapshotOperator` → `RunEvalOperator` → `EvalGateOperator`;
  each returns a small JSON summary (XCom) and OpenLineage facets; the sync and eval tasks update Airflow
  Assets (`dataset_asset`, `report_asset`).
- Deferrable waits (`triggers.py`) and sensors for new prompt versions and releases (`sensors.py`).

Nothing here imports Dagster (an import-linter contract and a test hold that).
"""

from __future__ import annotations

try:
    import airflow.sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "dagster_evals.airflow needs Apache Airflow 3: pip install 'dagster-evals[airflow]'"
    ) from exc

from dagster_evals.airflow.eval_operator import RunEvalOperator
from dagster_evals.airflow.hooks import BraintrustHook, EvalsHook, KeywordsAIHook, LocalEvalsHook
from dagster_evals.airflow.operators import (
    EvalGateFailed,
    EvalGateOperator,
    PinSnapshotOperator,
    SyncDatasetOperator,
)
from dagster_evals.airflow.reports import dataset_asset, report_asset
from dagster_evals.airflow.sensors import NewPromptVersionsSensor, NewReleasesSensor
from dagster_evals.airflow.triggers import KeywordsAIEvalRunTrigger, PromptVersionTrigger


def get_provider_info() -> dict[str, object]:
    """What Airflow's providers manager reads (entry point `apache_airflow_provider`): the connection types."""
    return {
        "package-name": "dagster-evals",
        "name": "dagster-evals",
        "description": "LLM evals, gates and lineage on Braintrust, Keywords AI or an embedded database.",
        "connection-types": [
            {
                "hook-class-name": f"{hook.__module__}.{hook.__qualname__}",
                "connection-type": hook.conn_type,
                "hook-name": hook.hook_name,
            }
            for hook in (LocalEvalsHook, BraintrustHook, KeywordsAIHook)
        ],
    }


__all__ = [
    "BraintrustHook",
    "EvalGateFailed",
    "EvalGateOperator",
    "EvalsHook",
    "KeywordsAIEvalRunTrigger",
    "KeywordsAIHook",
    "LocalEvalsHook",
    "NewPromptVersionsSensor",
    "NewReleasesSensor",
    "PinSnapshotOperator",
    "PromptVersionTrigger",
    "RunEvalOperator",
    "SyncDatasetOperator",
    "dataset_asset",
    "get_provider_info",
    "report_asset",
]
