"""dagster-evals: LLM evaluation as Dagster assets, asset checks, sensors and schedules.

Every public name is importable from here as before, but is loaded on first use (PEP 562): importing
`dagster_evals` (or its engine modules, backends and `dagster_evals.airflow`) does not import Dagster; the
first Dagster name used (`EvalSuite`, a resource, a sensor factory…) does.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import TYPE_CHECKING, Any

from dagster_evals._moved_modules import install_moved_module_aliases
from dagster_evals.engine.version import __version__
from dagster_evals.judges.prompt_tasks import prompt_task

# Old import paths of modules that moved (`dagster_evals.runner` -> `dagster_evals.engine.runner`, ...) keep
# working, with a DeprecationWarning naming the new path.
install_moved_module_aliases()

if TYPE_CHECKING:
    from dagster_evals.assets import build_eval_suite_definitions
    from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource
    from dagster_evals.backends.braintrust import BraintrustPlatform, BraintrustResource
    from dagster_evals.backends.keywordsai import KeywordsAIPlatform, KeywordsAIResource
    from dagster_evals.backends.local import LocalPlatform
    from dagster_evals.components import EvalSuiteComponent
    from dagster_evals.engine.errors import (
        AuthError,
        ConfigError,
        CountMismatchError,
        DagsterEvalsError,
        InputError,
        NotFoundError,
        PlatformError,
        RateLimitedError,
    )
    from dagster_evals.engine.models import (
        DatasetRef,
        DatasetRow,
        EvalReport,
        EvalRequest,
        PlatformFunction,
        PromptVersion,
        RowResult,
        ScoreSummary,
        Snapshot,
        SyncResult,
    )
    from dagster_evals.engine.runner import run_eval_locally
    from dagster_evals.engine.scorers import BUILTIN_SCORERS, Scorer
    from dagster_evals.engine.sources import CsvSource, IterableSource, JsonlSource, RowSource, load_rows
    from dagster_evals.engine.sync import sync_rows
    from dagster_evals.judges import (
        JudgeResource,
        JudgeSettings,
        OpenAIJudgeResource,
        judge,
        rubric_judge,
        rubric_judges_from_yaml,
    )
    from dagster_evals.lineage import build_prompt_asset, build_release_asset
    from dagster_evals.release_gate import GateApproval, GateClosedError, require_passing_gates
    from dagster_evals.resources import LocalResource
    from dagster_evals.sensors import build_eval_schedule, build_prompt_version_sensor, build_release_sensor
    from dagster_evals.suite import EvalSuite
    from dagster_evals.translator import AssetSource, DagsterEvalsTranslator, EvalAssetProps, backend_of

# Public name -> the module that defines it, imported when the name is first used.
_LAZY: dict[str, str] = {
    "EvalSuite": "dagster_evals.suite",
    "build_eval_suite_definitions": "dagster_evals.assets",
    "EvalPlatform": "dagster_evals.backends.base",
    "EvalPlatformResource": "dagster_evals.backends.base",
    "BraintrustPlatform": "dagster_evals.backends.braintrust",
    "BraintrustResource": "dagster_evals.backends.braintrust",
    "KeywordsAIPlatform": "dagster_evals.backends.keywordsai",
    "KeywordsAIResource": "dagster_evals.backends.keywordsai",
    "LocalPlatform": "dagster_evals.backends.local",
    "EvalSuiteComponent": "dagster_evals.components",
    "AuthError": "dagster_evals.engine.errors",
    "ConfigError": "dagster_evals.engine.errors",
    "CountMismatchError": "dagster_evals.engine.errors",
    "DagsterEvalsError": "dagster_evals.engine.errors",
    "InputError": "dagster_evals.engine.errors",
    "NotFoundError": "dagster_evals.engine.errors",
    "PlatformError": "dagster_evals.engine.errors",
    "RateLimitedError": "dagster_evals.engine.errors",
    "JudgeResource": "dagster_evals.judges",
    "JudgeSettings": "dagster_evals.judges",
    "OpenAIJudgeResource": "dagster_evals.judges",
    "judge": "dagster_evals.judges",
    "rubric_judge": "dagster_evals.judges",
    "rubric_judges_from_yaml": "dagster_evals.judges",
    "DatasetRef": "dagster_evals.engine.models",
    "DatasetRow": "dagster_evals.engine.models",
    "EvalReport": "dagster_evals.engine.models",
    "EvalRequest": "dagster_evals.engine.models",
    "PlatformFunction": "dagster_evals.engine.models",
    "PromptVersion": "dagster_evals.engine.models",
    "RowResult": "dagster_evals.engine.models",
    "ScoreSummary": "dagster_evals.engine.models",
    "Snapshot": "dagster_evals.engine.models",
    "SyncResult": "dagster_evals.engine.models",
    "GateApproval": "dagster_evals.release_gate",
    "GateClosedError": "dagster_evals.release_gate",
    "require_passing_gates": "dagster_evals.release_gate",
    "LocalResource": "dagster_evals.resources",
    "run_eval_locally": "dagster_evals.engine.runner",
    "BUILTIN_SCORERS": "dagster_evals.engine.scorers",
    "Scorer": "dagster_evals.engine.scorers",
    "build_eval_schedule": "dagster_evals.sensors",
    "build_prompt_asset": "dagster_evals.lineage",
    "build_prompt_version_sensor": "dagster_evals.sensors",
    "build_release_asset": "dagster_evals.lineage",
    "build_release_sensor": "dagster_evals.sensors",
    "CsvSource": "dagster_evals.engine.sources",
    "IterableSource": "dagster_evals.engine.sources",
    "JsonlSource": "dagster_evals.engine.sources",
    "RowSource": "dagster_evals.engine.sources",
    "load_rows": "dagster_evals.engine.sources",
    "sync_rows": "dagster_evals.engine.sync",
    "AssetSource": "dagster_evals.translator",
    "DagsterEvalsTranslator": "dagster_evals.translator",
    "EvalAssetProps": "dagster_evals.translator",
    "backend_of": "dagster_evals.translator",
}

__all__ = [
    "BUILTIN_SCORERS",
    "AssetSource",
    "AuthError",
    "BraintrustPlatform",
    "BraintrustResource",
    "ConfigError",
    "CountMismatchError",
    "CsvSource",
    "DagsterEvalsError",
    "DagsterEvalsTranslator",
    "DatasetRef",
    "DatasetRow",
    "EvalAssetProps",
    "EvalPlatform",
    "EvalPlatformResource",
    "EvalReport",
    "EvalRequest",
    "EvalSuite",
    "EvalSuiteComponent",
    "GateApproval",
    "GateClosedError",
    "InputError",
    "IterableSource",
    "JsonlSource",
    "JudgeResource",
    "JudgeSettings",
    "KeywordsAIPlatform",
    "KeywordsAIResource",
    "LocalPlatform",
    "LocalResource",
    "NotFoundError",
    "OpenAIJudgeResource",
    "PlatformError",
    "PlatformFunction",
    "PromptVersion",
    "RateLimitedError",
    "RowResult",
    "RowSource",
    "ScoreSummary",
    "Scorer",
    "Snapshot",
    "SyncResult",
    "__version__",
    "backend_of",
    "build_eval_schedule",
    "build_eval_suite_definitions",
    "build_prompt_asset",
    "build_prompt_version_sensor",
    "build_release_asset",
    "build_release_sensor",
    "judge",
    "load_rows",
    "prompt_task",
    "require_passing_gates",
    "rubric_judge",
    "rubric_judges_from_yaml",
    "run_eval_locally",
    "sync_rows",
]

# Deprecated names: still importable, with a warning naming what replaces them.
_DEPRECATED: dict[str, tuple[str, str, str]] = {
    "LocalEvalResource": ("dagster_evals.backends.local.resources", "LocalEvalResource", "LocalResource"),
    "build_dataset_asset": (
        "dagster_evals.assets",
        "build_dataset_asset",
        "build_eval_suite_definitions(suite)",
    ),
    "build_snapshot_asset": (
        "dagster_evals.assets",
        "build_snapshot_asset",
        "build_eval_suite_definitions(suite)",
    ),
    "build_eval_report_asset": (
        "dagster_evals.assets",
        "build_eval_report_asset",
        "build_eval_suite_definitions(suite)",
    ),
    "build_eval_suite_assets": (
        "dagster_evals.assets",
        "build_eval_suite_assets",
        "build_eval_suite_definitions(suite).assets",
    ),
    "build_eval_suite_job": (
        "dagster_evals.assets",
        "build_eval_suite_job",
        "build_eval_suite_definitions(suite).jobs",
    ),
}
_registered = False


def _register_with_dagster() -> None:
    """Tell Dagster's library registry about this package, once Dagster is loaded (as the eager import did)."""
    global _registered
    if _registered or sys.modules.get("dagster_shared") is None:
        return
    from dagster_shared.libraries import DagsterLibraryRegistry

    DagsterLibraryRegistry.register("dagster-evals", __version__, is_dagster_package=False)
    _registered = True


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        _register_with_dagster()
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _DEPRECATED:
        module, attribute, replacement = _DEPRECATED[name]
        warnings.warn(
            f"dagster_evals.{name} is deprecated: use dagster_evals.{replacement}",
            DeprecationWarning,
            stacklevel=2,
        )
        value = getattr(importlib.import_module(module), attribute)
        _register_with_dagster()
        return value
    raise AttributeError(f"module 'dagster_evals' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
