"""Sensors that run an eval when a new prompt version or release lands, and nightly schedules.

Each new prompt version / release becomes a dynamic partition of the suite's eval report and gets exactly
one run (`run_key` from the prompt id + version, or the tag + commit). Cursors are JSON, survive restarts,
and are left unchanged when the platform or the repository cannot be reached (the tick is skipped with the
reason), so nothing is missed or run twice after an outage.
"""

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

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
from dagster_evals.lineage import build_prompt_asset, build_release_asset
from dagster_evals.suite import EvalSuite

__all__ = [
    "build_eval_schedule",
    "build_prompt_asset",
    "build_prompt_version_sensor",
    "build_release_asset",
    "build_release_sensor",
]

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
