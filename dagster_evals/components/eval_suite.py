"""`EvalSuiteComponent`: declare an eval suite in YAML (a Dagster component), no Python wiring needed.

Scaffold one with `dg scaffold defs dagster_evals.EvalSuiteComponent support_bot`, then edit:

.. code-block:: yaml

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
      resource:                            # the backend, bound under resource_key (default "evals")
        type: braintrust
        config:
          api_key: "{{ env.BRAINTRUST_API_KEY }}"
          project: support-bot
      judge_resource:                      # LLM judge endpoint, bound under judge_resource_key ("judge")
        api_key_env: OPENAI_API_KEY        # read at run time: the key never enters the config
        base_url: https://api.openai.com/v1
        model: gpt-4o-mini
      prompt: support_bot_system           # observable prompt asset; the report depends on it
      translation:                         # shape the assets' specs (props: suite, backend, role)
        owners: [team:ml]
        automation_condition: "{{ dg.AutomationCondition.eager() }}"
      partitions: support_bot_versions     # optional: one partition per prompt version / release
      prompt_sensor: {prompt_slugs: [support_bot_system]}
      release_sensor: {repo: "https://github.com/acme/bot.git", tag_pattern: "v*"}
      schedule: {cron_schedule: "0 2 * * *"}

Every plain field of `EvalSuite` is an attribute (the list is read from `EvalSuite`, so new suite fields
show up here with their descriptions); `source`, `task`, `scorers`, `partitions` and `translation` take the
YAML forms above. Attributes are typed strictly: `true`/`false` are not numbers, strings are not booleans
or numbers (`dg check yaml` names the file and line); a value out of range, a threshold on a scorer the
suite does not have, or a task that is not a callable fail `dg check defs` with one error naming the
file and the field.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
import pydantic
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from pydantic import Field

from dagster_evals.assets import build_eval_suite_definitions
from dagster_evals.backends.base import EvalPlatformResource
from dagster_evals.components.fields import arg_descriptions, one_error_for_number_or_word, yaml_type
from dagster_evals.components.scaffolder import EvalSuiteScaffolder
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.scorers import BUILTIN_SCORERS
from dagster_evals.judges.binding import DEFAULT_JUDGE_RESOURCE_KEY, judge_resource_from_config
from dagster_evals.sensors import build_eval_schedule, build_prompt_version_sensor, build_release_sensor
from dagster_evals.suite import EvalSuite
from dagster_evals.translator import AssetSource, DagsterEvalsTranslator, EvalAssetProps, backend_of

# EvalSuite fields that take a YAML-specific form on the component (declared below, not copied).
YAML_FORMS = frozenset(
    {"source", "task", "scorers", "partitions_def", "translator", "retry_policy", "automation_condition"}
)


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


def _import_task(reference: str) -> Any:
    """The callable `module:attribute` names; anything else is a `ConfigError` saying what it is instead."""
    task = import_object(reference, "task")
    if not callable(task):
        raise ConfigError(
            f"task {reference!r} is a {type(task).__name__}, not a callable: point at a function taking the "
            "row's input, e.g. 'my_project.bot:answer'"
        )
    return task


def _yaml_suite_fields() -> dict[str, Any]:
    """Pydantic field definitions for every `EvalSuite` field that YAML can carry as it is."""
    hints = typing.get_type_hints(EvalSuite)
    described = arg_descriptions(EvalSuite.__doc__ or "")
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(EvalSuite):
        if item.name in YAML_FORMS:
            continue
        hint = one_error_for_number_or_word(yaml_type(hints[item.name]))
        try:
            pydantic.TypeAdapter(hint).json_schema()
        except Exception:  # not representable in YAML: left to Python users
            continue
        if item.default is not dataclasses.MISSING:
            default = list(item.default) if isinstance(item.default, tuple) else item.default
            info = Field(default=default, description=described.get(item.name))
        elif item.default_factory is not dataclasses.MISSING:
            info = Field(default_factory=item.default_factory, description=described.get(item.name))
        else:
            info = Field(description=described.get(item.name))
        fields[item.name] = (hint, info)
    return fields


class StrictModel(dg.Model):
    """Attributes validated strictly: YAML `true`/`false` are not numbers, and strings are not booleans."""

    model_config = pydantic.ConfigDict(strict=True)


SuiteFields = pydantic.create_model("SuiteFields", __base__=StrictModel, **_yaml_suite_fields())
SUITE_FIELD_NAMES = tuple(SuiteFields.model_fields)


class AssetSourceConfig(dg.Model):
    """Rows read from an existing asset: the dataset asset depends on `asset_key`."""

    asset_key: str = Field(description="Upstream asset key, '/'-separated (e.g. 'analytics/tickets').")
    loader: str = Field(description="'module:attribute' of a callable returning the rows.")


class BackendResourceConfig(dg.Model):
    """The eval backend resource, bound under the suite's `resource_key`."""

    type: Literal["local", "braintrust", "keywordsai"] = Field(description="Which backend.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The resource's fields; secrets as '{{ env.BRAINTRUST_API_KEY }}'.",
    )

    def build(self) -> EvalPlatformResource:
        from dagster_evals.resources import BraintrustResource, KeywordsAIResource, LocalResource

        cls: type[EvalPlatformResource] = {
            "local": LocalResource,
            "braintrust": BraintrustResource,
            "keywordsai": KeywordsAIResource,
        }[self.type]
        unknown = sorted(set(self.config) - set(cls.model_fields))
        if unknown:
            raise ConfigError(
                f"resource of type {self.type!r}: unknown field(s) {', '.join(unknown)}; "
                f"{cls.__name__} has {', '.join(sorted(cls.model_fields))}"
            )
        try:
            return cls(**self.config)
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"resource of type {self.type!r}: {problems}") from None


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


class YamlTranslator(DagsterEvalsTranslator):
    """The default translator followed by a component's YAML `translation`."""

    def __init__(self, translation: TranslationFn[EvalAssetProps]) -> None:
        self.translation = translation

    def get_asset_spec(self, props: EvalAssetProps) -> dg.AssetSpec:
        return self.translation(super().get_asset_spec(props), props)


@functools.cache
def _strict_attributes(model: type[pydantic.BaseModel]) -> type[pydantic.BaseModel]:
    """Dagster's attributes model, validated strictly, and with the suite's fields taking their own type
    only: Dagster lets every field also be a string (for `{{ }}` templates), which would accept `"no"` for
    a bool and report two errors for one wrong value."""
    own = {
        name: (info.annotation, info)
        for name, info in SuiteFields.model_fields.items()
        if name in model.model_fields and info.annotation is not str
    }
    strict = pydantic.create_model(model.__name__, __base__=model, **own)  # type: ignore[call-overload]
    strict.model_config["strict"] = True
    strict.model_rebuild(force=True)
    return strict


@dg.scaffold_with(EvalSuiteScaffolder)
class EvalSuiteComponent(dg.Component, SuiteFields, dg.Resolvable):  # type: ignore[misc, valid-type]
    """An eval suite — dataset → snapshot → eval report with blocking checks — declared in YAML.

    Examples:
        .. code-block:: yaml

            type: dagster_evals.EvalSuiteComponent
            attributes:
              name: support_bot
              source: rows.jsonl
              task: my_project.bot:answer
              scorers: [exact_match]
              thresholds: {exact_match: 0.9}
              resource: {type: local, config: {path: evals.sqlite}}
    """

    source: str | None = Field(
        default=None, description="Rows file (.jsonl / .csv), relative to the component's folder."
    )
    source_asset: AssetSourceConfig | None = Field(
        default=None, description="Instead of `source`: rows read from an existing (upstream) asset."
    )
    task: str | None = Field(
        default=None, description="The application under test, as 'module:attribute' of a Python callable."
    )
    scorers: list[str] = Field(
        description=f"Built-in scorer names ({', '.join(sorted(BUILTIN_SCORERS))}) or 'module:attribute'."
    )
    partitions: str | None = Field(default=None, description="Name of the eval report's dynamic partitions.")
    resource: BackendResourceConfig | None = Field(
        default=None, description="The backend resource; default: defined elsewhere under resource_key."
    )
    judge_resource: dict[str, Any] | None = Field(
        default=None,
        description="The LLM judge endpoint: OpenAIJudgeResource fields (the key through api_key_env, read at "
        "run time), bound under judge_resource_key (default 'judge').",
    )
    translation: (
        Annotated[
            TranslationFn[EvalAssetProps],
            TranslationFnResolver(template_vars_for_translation_fn=lambda props: {"props": props}),
        ]
        | None
    ) = None
    prompt_sensor: PromptSensorConfig | None = None
    release_sensor: ReleaseSensorConfig | None = None
    schedule: ScheduleConfig | None = None

    @classmethod
    def get_model_cls(cls) -> type[pydantic.BaseModel] | None:
        model = super().get_model_cls()
        return None if model is None else _strict_attributes(model)

    def build_suite(self, folder: Path) -> EvalSuite:
        """The `EvalSuite` these attributes declare; relative paths are read from `folder`."""
        plain: dict[str, Any] = {name: getattr(self, name) for name in SUITE_FIELD_NAMES}
        if (self.source is None) == (self.source_asset is None):
            raise ConfigError(f"suite {plain['name']!r}: give exactly one of source and source_asset")
        source: Any
        if self.source_asset is not None:
            source = AssetSource(
                self.source_asset.asset_key,
                import_object(self.source_asset.loader, "loader"),
                key_field=plain["key_field"],
            )
        else:
            path = Path(str(self.source))
            source = path if path.is_absolute() else folder / path
        scorers = [
            s if s in BUILTIN_SCORERS or ":" not in s else import_object(s, "scorer") for s in self.scorers
        ]
        if not plain.get("tags"):
            plain.pop("tags", None)
        if self.resource is not None and plain.get("backend") is None:
            plain["backend"] = self.resource.type
        if self.judge_resource is not None and plain.get("judge_resource_key") is None:
            plain["judge_resource_key"] = DEFAULT_JUDGE_RESOURCE_KEY
        return EvalSuite(
            **plain,
            source=source,
            task=_import_task(self.task) if self.task else None,
            scorers=scorers,
            partitions_def=dg.DynamicPartitionsDefinition(name=self.partitions) if self.partitions else None,
            translator=YamlTranslator(self.translation) if self.translation is not None else None,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        folder = Path(context.path)
        try:
            return self._build_defs(folder)
        except ConfigError as exc:
            where = next((folder / n for n in ("defs.yaml", "defs.yml") if (folder / n).exists()), folder)
            suite = "" if exc.message.startswith("suite ") else f"suite {dict(self)['name']!r}: "
            raise ConfigError(f"{where}: {suite}{exc.message}") from None

    def _build_defs(self, folder: Path) -> dg.Definitions:
        suite = self.build_suite(folder)
        resources: dict[str, Any] = {}
        if self.resource is not None:
            resource = self.resource.build()
            resources[suite.resource_key] = resource
            if suite.backend is None:
                suite = dataclasses.replace(suite, backend=backend_of(resource))
        if self.judge_resource is not None and suite.judge_resource_key is not None:
            resources[suite.judge_resource_key] = judge_resource_from_config(self.judge_resource)
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
            build_eval_suite_definitions(suite),
            dg.Definitions(sensors=sensors, schedules=schedules, resources=resources),
        )
