"""The Airflow provider of dagster-evals: the same engine as the Dagster integration, as Airflow hooks,
operators, deferrable triggers and sensors (`pip install 'dagster-evals[airflow]'`, Airflow 3).

- Hooks (`hooks.py`): an Airflow Connection per backend → the engine's `EvalPlatform`.
- Operators: `SyncDatasetOperator` → `PinSnapshotOperator` → `RunEvalOperator` → `EvalGateOperator`;
  each returns a small JSON summary (XCom) and OpenLineage facets; the sync and eval tasks update Airflow
  Assets (`dataset_asset`, `report_asset`).
- Deferrable waits (`triggers.py`) and sensors for new prompt versions and releases (`sensors.py`).

Names load on first use (PEP 562), so Airflow's providers manager can read `provider_info` while Airflow
is starting. Nothing here imports Dagster (an import-linter contract and a test hold that).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dagster_evals.airflow.provider_info import get_provider_info

if TYPE_CHECKING:
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

_LAZY = {
    "RunEvalOperator": "eval_operator",
    "BraintrustHook": "hooks",
    "EvalsHook": "hooks",
    "KeywordsAIHook": "hooks",
    "LocalEvalsHook": "hooks",
    "EvalGateFailed": "operators",
    "EvalGateOperator": "operators",
    "PinSnapshotOperator": "operators",
    "SyncDatasetOperator": "operators",
    "dataset_asset": "reports",
    "report_asset": "reports",
    "NewPromptVersionsSensor": "sensors",
    "NewReleasesSensor": "sensors",
    "KeywordsAIEvalRunTrigger": "triggers",
    "PromptVersionTrigger": "triggers",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "airflow":
            raise ImportError(
                f"dagster_evals.airflow.{name} needs Apache Airflow 3: pip install 'dagster-evals[airflow]'"
            ) from exc
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
