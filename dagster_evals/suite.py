"""`EvalSuite`: one declaration of an eval suite, validated when it is built.

The suite names where its rows come from, what runs on them and what must hold; the Dagster surface
(`dagster_evals.assets`, `sensors`, `components`) builds assets, checks, sensors and schedules from it. Every
field is checked here, at load, so a bad suite fails when the code location loads, naming the suite and field.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from dagster_evals.baselines import BASELINE_DEFAULT
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.models import PlatformFunction
from dagster_evals.engine.scorers import resolve_scorer
from dagster_evals.engine.sources import RowSource
from dagster_evals.sharding.shards import validate_sharding
from dagster_evals.suite_config import check_scorer_names, validate_suite
from dagster_evals.translator import BACKENDS, DagsterEvalsTranslator

SourceLike = RowSource | str | Path | Callable[[], Iterable[Any]]
__all__ = ["EvalSuite", "SourceLike", "validate_dagster_fields"]


@dataclass(frozen=True)
class EvalSuite:
    """Declares one eval suite: where its rows come from, what runs on them, and what must hold.

    Args:
        name: Suite name; used for the dataset name, asset keys, group and job names.
        source: A `.jsonl`/`.csv` path, a `RowSource`, or a callable returning an iterable of row dicts.
        task: The application under test: a Python callable (sync or async) taking the row's input (or
            keyword arguments `input`, `expected`, `metadata`, `row_id`, `trial`), or a `PlatformFunction`.
        scorers: Built-in scorer names (`levenshtein`, `exact_match`, `numeric_diff`, `json_diff`, …),
            callables returning a score in [0, 1] or None, or `PlatformFunction`s.
        key_field: Top-level field holding each row's stable key; default: ids derived from row content.
        row_timeout_s: Longest one task call may take; a row past it is recorded as timed out.
        scorer_timeout_s: Longest one scorer call may take; past it the row records a scorer error.
            Default `"auto"`: the row timeout when set, at most 300 s (None: no limit).
        isolation: `"process"` runs each call of a sync task in a worker process that is killed when the
            call times out (for tasks that can wedge a thread); default `"thread"`.
        thresholds: Minimum mean score per scorer name; each becomes an asset check.
        max_regression: Largest allowed drop of a scorer's mean against the baseline (one number for all
            scorers, or per scorer name); becomes the `no_regression` check.
        max_errored_rows: Rows allowed to error (task or scorer) before the completeness check fails.
        blocking: Whether failed checks stop downstream assets (e.g. a release) in the same run.
        baseline: What `no_regression` compares with. `"last_passing"` (default: the latest earlier
            report, any partition, whose checks all passed — a blocked regression never becomes the
            baseline, so re-running it cannot approve it), `"previous"` (the latest earlier report even if
            it failed its gate), `"previous_partition"` (the latest report of the partition added before
            this one), a pinned report id, or None for no baseline.
        allow_missing_baseline: By default a baseline recorded in Dagster that the backend can no longer
            read (deleted, or a step on another backend) fails `no_regression`; True compares with the
            newest readable one instead (or none), with a warning.
        partitions_def: Dynamic partitions of the eval report, one per prompt version / release; the
            prompt-version and release sensors add partitions to it.
        git_repo: Local git checkout used to resolve a release tag's commit and to record the repository
            state of unpartitioned runs.
        shards: Dagster steps the eval report runs across (default 1). With N > 1 a plan step, N shard
            steps (each scoring the rows whose row-id hash falls in its shard) and a combine step that
            builds one report, equal to an unsharded run's, and emits the checks. Needs a Python task.
        resume: Checkpoint each scored row in the suite's state database (the resource's `url` or
            `state_database_url`, else `DAGSTER_EVALS_DATABASE_URL`) so a run re-executed from failure
            scores only the rows not yet scored (default True; required with shards > 1).
        judge_resource_key: Key of an `OpenAIJudgeResource` (e.g. "judge") that the LLM judges and
            `prompt_task()` of this suite call, unless built with their own `endpoint=`; None (default):
            `OPENAI_BASE_URL` / `OPENAI_API_KEY`.
    """

    name: str
    source: SourceLike
    task: Any
    scorers: Sequence[Any]
    key_field: str | None = None
    dataset_name: str | None = None
    project: str | None = None
    description: str | None = None
    trial_count: int = 1
    max_concurrency: int | None = 10
    row_timeout_s: float | None = 60.0
    scorer_timeout_s: float | Literal["auto"] | None = "auto"
    isolation: Literal["thread", "process"] = "thread"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    max_regression: float | Mapping[str, float] | None = None
    max_errored_rows: int = 0
    blocking: bool = True
    baseline: str | None = BASELINE_DEFAULT
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    resource_key: str = "evals"
    key_prefix: Sequence[str] | None = None
    group_name: str | None = None
    partitions_def: dg.DynamicPartitionsDefinition | None = None
    git_repo: str | Path | None = None
    allow_missing_baseline: bool = False
    row_tags: Sequence[str] = ()
    backend: str | None = None
    translator: DagsterEvalsTranslator | None = None
    prompt: str | None = None
    owners: Sequence[str] = ()
    asset_tags: Mapping[str, str] = field(default_factory=dict)
    op_tags: Mapping[str, Any] = field(default_factory=dict)
    pool: str | None = None
    retry_policy: dg.RetryPolicy | None = None
    code_version: str | None = None
    automation_condition: dg.AutomationCondition | None = None
    shards: int = 1
    resume: bool = True
    judge_resource_key: str | None = None

    def __post_init__(self) -> None:
        validate_suite(self)  # first: checks `tags` as given, before it is mapped onto `row_tags`
        validate_dagster_fields(self)
        validate_sharding(self)
        names = self.scorer_names
        check_scorer_names(self.name, names)
        unknown = sorted(set(self.thresholds) - set(names))
        if unknown:
            raise ConfigError(
                f"suite {self.name!r}: thresholds name unknown scorer(s) {', '.join(unknown)}; "
                f"the suite's scorers are {', '.join(names)}"
            )
        unknown = sorted(set(self.regression_limits) - set(names))
        if unknown:
            raise ConfigError(
                f"suite {self.name!r}: max_regression names unknown scorer(s) {', '.join(unknown)}; "
                f"the suite's scorers are {', '.join(names)}"
            )

    @property
    def scorer_names(self) -> list[str]:
        return [s.name if isinstance(s, PlatformFunction) else resolve_scorer(s).name for s in self.scorers]

    @property
    def regression_limits(self) -> dict[str, float]:
        if self.max_regression is None:
            return {}
        if isinstance(self.max_regression, int | float):
            return {name: float(self.max_regression) for name in self.scorer_names}
        return {k: float(v) for k, v in self.max_regression.items()}

    @property
    def prefix(self) -> list[str]:
        return list(self.key_prefix) if self.key_prefix is not None else ["evals", self.name]

    @property
    def dataset_key(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "dataset"])

    @property
    def snapshot_key(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "dataset_snapshot"])

    @property
    def eval_report_key(self) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, "eval_report"])

    @property
    def job_name(self) -> str:
        return f"{self.name.replace('-', '_')}_eval_job"


def validate_dagster_fields(suite: EvalSuite) -> None:
    """Check the suite's Dagster-facing fields; map the deprecated `tags` onto `row_tags`."""
    if suite.tags and suite.row_tags and list(suite.tags) != list(suite.row_tags):
        raise ConfigError(f"suite {suite.name!r}: give row_tags only (tags is its deprecated name)")
    if suite.tags and not suite.row_tags:
        warnings.warn(
            "EvalSuite(tags=...) is deprecated: use row_tags=... (tags stored on the platform's rows); "
            "Dagster asset tags are asset_tags=...",
            DeprecationWarning,
            stacklevel=4,
        )
        object.__setattr__(suite, "row_tags", tuple(suite.tags))
    object.__setattr__(suite, "tags", tuple(suite.row_tags))
    if suite.backend is not None and suite.backend not in BACKENDS:
        raise ConfigError(
            f"suite {suite.name!r}: backend {suite.backend!r} is not one of {', '.join(BACKENDS)}"
        )
    if suite.translator is not None and not isinstance(suite.translator, DagsterEvalsTranslator):
        raise ConfigError(
            f"suite {suite.name!r}: translator must be a DagsterEvalsTranslator, "
            f"got {type(suite.translator).__name__}"
        )
