"""dagster-evals: LLM evaluation as Dagster assets, asset checks, sensors and schedules."""

import warnings
from typing import Any

from dagster_shared.libraries import DagsterLibraryRegistry

from dagster_evals import assets as _assets
from dagster_evals.assets import EvalSuite, build_eval_suite_definitions
from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource
from dagster_evals.backends.braintrust import BraintrustPlatform, BraintrustResource
from dagster_evals.backends.keywordsai import KeywordsAIPlatform, KeywordsAIResource
from dagster_evals.backends.local import LocalPlatform
from dagster_evals.backends.local import platform as _local
from dagster_evals.component import EvalSuiteComponent
from dagster_evals.errors import (
    AuthError,
    ConfigError,
    CountMismatchError,
    DagsterEvalsError,
    InputError,
    NotFoundError,
    PlatformError,
    RateLimitedError,
)
from dagster_evals.judges import (
    JudgeResource,
    JudgeSettings,
    OpenAIJudgeResource,
    judge,
    rubric_judge,
    rubric_judges_from_yaml,
)
from dagster_evals.models import (
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
from dagster_evals.prompt_task import prompt_task
from dagster_evals.release_gate import GateApproval, GateClosedError, require_passing_gates
from dagster_evals.resources import LocalResource
from dagster_evals.runner import run_eval_locally
from dagster_evals.scorers import BUILTIN_SCORERS, Scorer
from dagster_evals.sensors import (
    build_eval_schedule,
    build_prompt_asset,
    build_prompt_version_sensor,
    build_release_asset,
    build_release_sensor,
)
from dagster_evals.sources import CsvSource, IterableSource, JsonlSource, RowSource, load_rows
from dagster_evals.sync import sync_rows
from dagster_evals.translator import AssetSource, DagsterEvalsTranslator, EvalAssetProps, backend_of
from dagster_evals.version import __version__

DagsterLibraryRegistry.register("dagster-evals", __version__, is_dagster_package=False)

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
_DEPRECATED: dict[str, tuple[Any, str]] = {
    "LocalEvalResource": (_local.LocalEvalResource, "LocalResource"),
    "build_dataset_asset": (_assets.build_dataset_asset, "build_eval_suite_definitions(suite)"),
    "build_snapshot_asset": (_assets.build_snapshot_asset, "build_eval_suite_definitions(suite)"),
    "build_eval_report_asset": (_assets.build_eval_report_asset, "build_eval_suite_definitions(suite)"),
    "build_eval_suite_assets": (
        _assets.build_eval_suite_assets,
        "build_eval_suite_definitions(suite).assets",
    ),
    "build_eval_suite_job": (_assets.build_eval_suite_job, "build_eval_suite_definitions(suite).jobs"),
}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        value, replacement = _DEPRECATED[name]
        warnings.warn(
            f"dagster_evals.{name} is deprecated: use dagster_evals.{replacement}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value
    raise AttributeError(f"module 'dagster_evals' has no attribute {name!r}")
