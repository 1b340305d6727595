"""dagster-evals: LLM evaluation as Dagster assets, asset checks, sensors and schedules."""

from dagster_shared.libraries import DagsterLibraryRegistry

from dagster_evals.assets import (
    EvalSuite,
    build_dataset_asset,
    build_eval_report_asset,
    build_eval_suite_assets,
    build_eval_suite_definitions,
    build_eval_suite_job,
    build_snapshot_asset,
)
from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource
from dagster_evals.backends.braintrust import BraintrustPlatform, BraintrustResource
from dagster_evals.backends.keywordsai import KeywordsAIPlatform, KeywordsAIResource
from dagster_evals.backends.local import LocalEvalResource, LocalPlatform
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
    "InputError",
    "IterableSource",
    "JsonlSource",
    "KeywordsAIPlatform",
    "KeywordsAIResource",
    "LocalEvalResource",
    "LocalPlatform",
    "NotFoundError",
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
    "build_dataset_asset",
    "build_eval_report_asset",
    "build_eval_schedule",
    "build_eval_suite_assets",
    "build_eval_suite_definitions",
    "build_eval_suite_job",
    "build_prompt_asset",
    "build_prompt_version_sensor",
    "build_release_asset",
    "build_release_sensor",
    "build_snapshot_asset",
    "load_rows",
    "run_eval_locally",
    "sync_rows",
]
