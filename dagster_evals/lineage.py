"""Lineage of an eval report beyond its dataset: the prompt it evaluates and the releases it gates.

`build_prompt_asset` and `build_release_asset` are observable source assets whose data versions are the
newest prompt version and release tag; `lineage_assets` adds a suite's prompt asset to its definitions, and
`with_observed_prompt` makes a run that names no prompt evaluate (and record) the last observed version.
"""

# No `from __future__ import annotations`: Dagster reads the `context` annotation of an asset function.
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource
from dagster_evals.engine.errors import ConfigError, DagsterEvalsError
from dagster_evals.engine.git import list_tags
from dagster_evals.engine.triggers import Trigger, find_prompt_version
from dagster_evals.report_metadata import observed_prompt_version
from dagster_evals.step_failures import dagster_failures
from dagster_evals.suite import EvalSuite
from dagster_evals.translator import suite_asset_spec

__all__ = ["build_prompt_asset", "build_release_asset", "lineage_assets", "with_observed_prompt"]


def lineage_assets(suite: EvalSuite) -> list[dg.AssetsDefinition]:
    """The observable prompt asset of a suite that names the prompt it evaluates (else nothing)."""
    if suite.prompt is None:
        return []
    return [build_prompt_asset(suite)]


def with_observed_prompt(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    suite: EvalSuite,
    platform: EvalPlatform,
    trigger: Trigger,
) -> Trigger:
    """The trigger, with the suite's prompt at its last observed version when the run names no prompt.

    So an eval started by an automation condition (after a new prompt version was observed) evaluates —
    and records — that version.
    """
    if trigger.prompt is not None or suite.prompt is None:
        return trigger
    version = observed_prompt_version(context.instance, suite)
    if version is None:
        return trigger
    prompt = find_prompt_version(platform, suite.project, suite.prompt, version)
    return dataclasses.replace(trigger, prompt=prompt)


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
