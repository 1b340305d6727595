"""Sensors that run an eval when a new prompt version or release lands, and nightly schedules.

Each new prompt version / release becomes a dynamic partition of the suite's eval report and gets exactly
one run (`run_key` from the prompt id + version, or the tag + commit). Cursors are JSON, survive restarts,
and are left unchanged when the platform or the repository cannot be reached (the tick is skipped with the
reason), so nothing is missed or run twice after an outage.
"""

import json
import sqlite3
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from dagster_evals.assets import EvalSuite
from dagster_evals.backends.base import EvalPlatformResource
from dagster_evals.engine.errors import ConfigError, DagsterEvalsError
from dagster_evals.engine.git import list_tags
from dagster_evals.engine.new_versions import InitialRuns, new_prompt_versions, new_releases
from dagster_evals.engine.triggers import (
    TAG_TRIGGER,
    prompt_run_tags,
    release_partition_key,
    release_run_tags,
)
from dagster_evals.step_failures import dagster_failures
from dagster_evals.translator import suite_asset_spec

DEFAULT_MINIMUM_INTERVAL_S = 60
OUTAGE_ERRORS = (DagsterEvalsError, httpx.HTTPError, OSError, sqlite3.Error)


def _partitions_def(suite: EvalSuite, what: str) -> dg.DynamicPartitionsDefinition:
    if suite.partitions_def is None:
        raise ConfigError(
            f"suite {suite.name!r} has no partitions_def: give it "
            f"partitions_def=dg.DynamicPartitionsDefinition(name=...) to run one eval per {what}"
        )
    return suite.partitions_def


def _load_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        loaded = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _resource(context: dg.SensorEvaluationContext, key: str) -> EvalPlatformResource:
    resource = getattr(context.resources, key, None)
    if not isinstance(resource, EvalPlatformResource):
        raise ConfigError(f"resource {key!r} must be an EvalPlatformResource, got {type(resource).__name__}")
    return resource


def build_prompt_version_sensor(
    suite: EvalSuite,
    *,
    prompt_slugs: Sequence[str] | None = None,
    project: str | None = None,
    name: str | None = None,
    minimum_interval_seconds: int = DEFAULT_MINIMUM_INTERVAL_S,
    initial: InitialRuns = "latest",
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    job_name: str | None = None,
) -> dg.SensorDefinition:
    """Sensor that runs the suite's eval once for every new version of the prompts it follows.

    Args:
        suite: A suite with a `partitions_def`; each new version becomes the partition `<slug>@<version>`.
        prompt_slugs: Prompts to follow; default: every prompt of the project.
        project: Platform project (default: the suite's, else the resource's).
        initial: On the first tick (or for a prompt never seen before): run its `latest` version only,
            `all` of its versions, or `none` (just start following).
        job_name: Job to run (default: the suite's eval job); e.g. a job that also materializes a gate.
    """
    partitions = _partitions_def(suite, "prompt version")
    slugs = list(prompt_slugs) if prompt_slugs else None
    latest_only = initial != "all"

    @dg.sensor(
        name=name or f"{suite.name}_prompt_version_sensor",
        job_name=job_name or suite.job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        required_resource_keys={suite.resource_key},
        default_status=default_status,
        description=f"Runs suite {suite.name!r} on every new version of "
        + (", ".join(slugs) if slugs else "every prompt of its project")
        + ".",
    )
    def _sensor(context: dg.SensorEvaluationContext, **resources: Any) -> dg.SensorResult | dg.SkipReason:
        resource = resources.get(suite.resource_key) or _resource(context, suite.resource_key)
        where = project or suite.project
        cursor = _load_cursor(context.cursor)
        known: dict[str, str] = dict(cursor.get("prompts", {}))
        platform = None
        try:
            platform = resource.get_platform()
            if slugs is None:
                versions = platform.list_prompt_versions(
                    project=where, newer_than=known, latest_only=latest_only
                )
            else:
                versions = [
                    v
                    for slug in slugs
                    for v in platform.list_prompt_versions(
                        project=where, slug=slug, newer_than=known, latest_only=latest_only
                    )
                ]
        except OUTAGE_ERRORS as exc:
            return dg.SkipReason(f"could not list prompt versions ({type(resource).__name__}): {exc}")
        finally:
            if platform is not None:
                platform.close()
        fresh, advanced = new_prompt_versions(versions, cursor, initial)
        serialized = json.dumps(advanced, sort_keys=True)
        if not fresh:
            context.update_cursor(serialized)
            return dg.SkipReason(f"no new prompt versions ({len(versions)} known)")
        keys = list(dict.fromkeys(v.partition_key for v in fresh))
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"prompt:{v.prompt_id}:{v.version}",
                    partition_key=v.partition_key,
                    tags=prompt_run_tags(v),
                )
                for v in fresh
            ],
            dynamic_partitions_requests=[partitions.build_add_request(keys)],
            cursor=serialized,
        )

    return _sensor


def build_release_sensor(
    suite: EvalSuite,
    *,
    repo: str | Path,
    tag_pattern: str = "v*",
    name: str | None = None,
    minimum_interval_seconds: int = DEFAULT_MINIMUM_INTERVAL_S,
    initial: InitialRuns = "latest",
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    job_name: str | None = None,
) -> dg.SensorDefinition:
    """Sensor that runs the suite's eval once for every new release tag of a git repository.

    Args:
        suite: A suite with a `partitions_def`; each new tag becomes a partition named after the tag.
        repo: A local path or anything `git ls-remote` can read.
        tag_pattern: Glob the tags must match (default `v*`).
        initial: On the first tick: run the `latest` tag only, `all` tags, or `none`.
        job_name: Job to run (default: the suite's eval job).
    """
    partitions = _partitions_def(suite, "release")

    @dg.sensor(
        name=name or f"{suite.name}_release_sensor",
        job_name=job_name or suite.job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Runs suite {suite.name!r} on every new tag matching {tag_pattern!r} in {repo}.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        try:
            releases = list_tags(repo, tag_pattern)
        except DagsterEvalsError as exc:
            return dg.SkipReason(f"could not read tags of {repo}: {exc}")
        fresh, advanced = new_releases(releases, _load_cursor(context.cursor), initial)
        serialized = json.dumps(advanced, sort_keys=True)
        if not fresh:
            context.update_cursor(serialized)
            return dg.SkipReason(f"no new releases matching {tag_pattern!r} ({len(releases)} known)")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"release:{r.tag}:{r.commit}",
                    partition_key=release_partition_key(r),
                    tags=release_run_tags(r),
                )
                for r in fresh
            ],
            dynamic_partitions_requests=[
                partitions.build_add_request([release_partition_key(r) for r in fresh])
            ],
            cursor=serialized,
        )

    return _sensor


def build_eval_schedule(
    suite: EvalSuite,
    *,
    cron_schedule: str = "0 2 * * *",
    execution_timezone: str = "UTC",
    name: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    job_name: str | None = None,
) -> dg.ScheduleDefinition:
    """Nightly (by default 02:00 UTC) run of the suite's eval job.

    A partitioned suite re-evaluates its newest partition (the latest prompt version or release), so
    nightly runs line up with sensor-triggered ones in the same partitioned history.
    """

    @dg.schedule(
        cron_schedule=cron_schedule,
        job_name=job_name or suite.job_name,
        execution_timezone=execution_timezone,
        name=name or f"{suite.name}_nightly",
        default_status=default_status,
        description=f"Runs suite {suite.name!r} on schedule {cron_schedule} ({execution_timezone}).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tags = {TAG_TRIGGER: "schedule"}
        if suite.partitions_def is None:
            return dg.RunRequest(tags=tags)
        keys = context.instance.get_dynamic_partitions(suite.partitions_def.name or "")
        if not keys:
            return dg.SkipReason(f"suite {suite.name!r} has no prompt version or release partition yet")
        return dg.RunRequest(partition_key=keys[-1], tags=tags)

    return _schedule


def _op_name(suite: EvalSuite) -> str:
    return "__".join(suite.prefix).replace("-", "_")


def _numeric(version: str) -> dict[str, int | float]:
    """`{"version_number": n}` when a version is a plain number (so the UI can plot it), else `{}`."""
    try:
        number = float(version)
    except ValueError:
        return {}
    return {"version_number": int(number) if number.is_integer() else number}


def _observable(spec: dg.AssetSpec, name: str, **kwargs: Any) -> Any:
    """An observable source asset for `spec` (kinds, owners and tags kept; its beta notice not repeated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.multi_observable_source_asset(specs=[spec], name=name, **kwargs)


def build_prompt_asset(suite: EvalSuite) -> Any:
    """Observable source asset of the prompt the suite evaluates; its data version is the prompt version.

    Observing it (from a job, a schedule, or the UI's "Observe sources") asks the suite's resource — local,
    Braintrust or Keywords AI — for the newest version of `suite.prompt`. The eval report depends on it, so
    `AutomationCondition.eager()` on the suite runs the eval when a new prompt version is observed.

    Examples:
        >>> from dagster_evals import EvalSuite
        >>> suite = EvalSuite(name="bot", source="rows.jsonl", task=str.upper, scorers=["exact_match"],
        ...                   prompt="bot_system")
        >>> build_prompt_asset(suite).key.to_user_string()
        'evals/bot/prompt'
    """
    if suite.prompt is None:
        raise ConfigError(f"suite {suite.name!r} names no prompt: give it prompt='<prompt slug>'")
    slug = suite.prompt
    spec = suite_asset_spec(suite, "prompt")

    @_observable(spec, f"{_op_name(suite)}_prompt", required_resource_keys={suite.resource_key})
    @dagster_failures
    def _prompt(context: dg.AssetExecutionContext) -> dg.ObserveResult:
        resource = getattr(context.resources, suite.resource_key, None)
        if not isinstance(resource, EvalPlatformResource):
            raise ConfigError(
                f"resource {suite.resource_key!r} must be an EvalPlatformResource, got {type(resource).__name__}"
            )
        platform = resource.get_platform()
        versions = platform.list_prompt_versions(project=suite.project, slug=slug, latest_only=True)
        if not versions:
            raise DagsterEvalsError(
                f"prompt {slug!r} has no versions on {platform.platform}"
                + (f" in project {suite.project!r}" if suite.project else "")
            )
        latest = versions[-1]
        context.log.info(f"prompt {slug!r} on {platform.platform}: version {latest.version}")
        return dg.ObserveResult(
            asset_key=spec.key,
            data_version=dg.DataVersion(latest.version),
            metadata={
                "prompt_slug": slug,
                "prompt_id": latest.prompt_id,
                "prompt_version": latest.version,
                "platform": platform.platform,
                **_numeric(latest.version),
            },
        )

    return _prompt


def build_release_asset(suite: EvalSuite, *, repo: str | Path, tag_pattern: str = "v*") -> Any:
    """Observable source asset of a repository's releases; its data version is the newest `tag@commit`.

    Examples:
        >>> from dagster_evals import EvalSuite
        >>> suite = EvalSuite(name="bot", source="rows.jsonl", task=str.upper, scorers=["exact_match"])
        >>> build_release_asset(suite, repo=".").key.to_user_string()
        'evals/bot/release'
    """
    base = suite_asset_spec(suite, "prompt")
    spec = base.replace_attributes(
        key=dg.AssetKey([*suite.prefix, "release"]),
        description=f"Release tags matching {tag_pattern!r} in {repo}; the data version is the newest tag.",
    )

    @_observable(spec, f"{_op_name(suite)}_release")
    @dagster_failures
    def _release(context: dg.AssetExecutionContext) -> dg.ObserveResult:
        releases = list_tags(repo, tag_pattern)
        if not releases:
            raise DagsterEvalsError(f"no tags matching {tag_pattern!r} in {repo}")
        latest = releases[-1]
        context.log.info(f"newest release of {repo}: {latest.tag} ({latest.commit[:12]})")
        return dg.ObserveResult(
            asset_key=spec.key,
            data_version=dg.DataVersion(f"{latest.tag}@{latest.commit}"),
            metadata={"release_tag": latest.tag, "git_commit": latest.commit},
        )

    return _release
