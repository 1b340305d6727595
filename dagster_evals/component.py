"""`EvalSuiteComponent`: declare an eval suite in YAML (a Dagster component), no Python wiring needed.

    # defs/support_bot/defs.yaml
    type: dagster_evals.EvalSuiteComponent
    attributes:
      name: support_bot
      source: support_bot.jsonl            # relative to this folder
      key_field: id
      task: my_project.bot:answer          # "module:attribute" of a Python callable
      scorers: [exact_match, levenshtein, "my_project.scorers:mentions_facts"]
      thresholds: {levenshtein: 0.7}
      max_regression: 0.05
      partitions: support_bot_versions      # optional: one partition per prompt version / release
      prompt_sensor: {prompt_slugs: [support_bot_system]}
      release_sensor: {repo: "https://github.com/acme/bot.git", tag_pattern: "v*"}
      schedule: {cron_schedule: "0 2 * * *"}

The component builds the suite's assets, checks and job (plus the sensors and schedule it names); the
platform comes from the resource under `resource_key` (default `evals`), defined with your other resources.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from dagster_evals.assets import BASELINE_DEFAULT, EvalSuite, build_eval_suite_definitions
from dagster_evals.errors import ConfigError
from dagster_evals.scorers import BUILTIN_SCORERS
from dagster_evals.sensors import build_eval_schedule, build_prompt_version_sensor, build_release_sensor


def import_object(reference: str, what: str) -> Any:
    """The object named by `module:attribute` (dots allowed in the attribute)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{what} {reference!r} must look like 'package.module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} {reference!r}: cannot import module {module_name!r} ({exc})") from exc
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{what} {reference!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


class PromptSensorConfig(dg.Model):
    prompt_slugs: list[str] | None = Field(default=None, description="Prompts to follow; default: all.")
    project: str | None = None
    minimum_interval_seconds: int = 60
    initial: Literal["latest", "all", "none"] = "latest"


class ReleaseSensorConfig(dg.Model):
    repo: str = Field(description="A local path or anything `git ls-remote` can read.")
    tag_pattern: str = "v*"
    minimum_interval_seconds: int = 60
    initial: Literal["latest", "all", "none"] = "latest"


class ScheduleConfig(dg.Model):
    cron_schedule: str = "0 2 * * *"
    execution_timezone: str = "UTC"


class EvalSuiteComponent(dg.Component, dg.Model, dg.Resolvable):
    """An eval suite — dataset → snapshot → eval report with blocking checks — declared in YAML."""

    name: str = Field(description="Suite name: dataset name, asset key prefix evals/<name>/, group, job.")
    source: str = Field(description="Rows file (.jsonl / .csv), relative to the component's folder.")
    task: str | None = Field(
        default=None, description="The application under test, as 'module:attribute' of a Python callable."
    )
    scorers: list[str] = Field(
        description=f"Built-in scorer names ({', '.join(sorted(BUILTIN_SCORERS))}) or 'module:attribute'."
    )
    key_field: str | None = None
    dataset_name: str | None = None
    project: str | None = None
    description: str | None = None
    trial_count: int = 1
    max_concurrency: int | None = 10
    row_timeout_s: float | None = 60.0
    thresholds: dict[str, float] = Field(default_factory=dict)
    max_regression: float | dict[str, float] | None = None
    max_errored_rows: int = 0
    blocking: bool = True
    baseline: str | None = BASELINE_DEFAULT
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    resource_key: str = "evals"
    partitions: str | None = Field(default=None, description="Name of the eval report's dynamic partitions.")
    git_repo: str | None = None
    prompt_sensor: PromptSensorConfig | None = None
    release_sensor: ReleaseSensorConfig | None = None
    schedule: ScheduleConfig | None = None

    def build_suite(self, folder: Path) -> EvalSuite:
        source = Path(self.source)
        scorers = [
            s if s in BUILTIN_SCORERS or ":" not in s else import_object(s, "scorer") for s in self.scorers
        ]
        return EvalSuite(
            name=self.name,
            source=source if source.is_absolute() else folder / source,
            task=import_object(self.task, "task") if self.task else None,
            scorers=scorers,
            key_field=self.key_field,
            dataset_name=self.dataset_name,
            project=self.project,
            description=self.description,
            trial_count=self.trial_count,
            max_concurrency=self.max_concurrency,
            row_timeout_s=self.row_timeout_s,
            thresholds=self.thresholds,
            max_regression=self.max_regression,
            max_errored_rows=self.max_errored_rows,
            blocking=self.blocking,
            baseline=self.baseline,
            metadata=self.metadata,
            tags=self.tags,
            resource_key=self.resource_key,
            partitions_def=dg.DynamicPartitionsDefinition(name=self.partitions) if self.partitions else None,
            git_repo=self.git_repo,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        suite = self.build_suite(Path(context.path))
        sensors: list[dg.SensorDefinition] = []
        if self.prompt_sensor is not None:
            sensors.append(
                build_prompt_version_sensor(
                    suite,
                    prompt_slugs=self.prompt_sensor.prompt_slugs,
                    project=self.prompt_sensor.project,
                    minimum_interval_seconds=self.prompt_sensor.minimum_interval_seconds,
                    initial=self.prompt_sensor.initial,
                )
            )
        if self.release_sensor is not None:
            sensors.append(
                build_release_sensor(
                    suite,
                    repo=self.release_sensor.repo,
                    tag_pattern=self.release_sensor.tag_pattern,
                    minimum_interval_seconds=self.release_sensor.minimum_interval_seconds,
                    initial=self.release_sensor.initial,
                )
            )
        schedules = []
        if self.schedule is not None:
            schedules.append(
                build_eval_schedule(
                    suite,
                    cron_schedule=self.schedule.cron_schedule,
                    execution_timezone=self.schedule.execution_timezone,
                )
            )
        return dg.Definitions.merge(
            build_eval_suite_definitions(suite), dg.Definitions(sensors=sensors, schedules=schedules)
        )
