"""What an eval run is about — a prompt version or a release — carried from sensors to the eval report.

Sensors put run tags on the runs they request; the eval report asset reads them back (or, for a run
launched by hand, parses the partition key: `<prompt slug>@<version>` for a prompt version, anything else
is a release tag) and records them as lineage in the report's metadata and in the platform's experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_evals.engine.errors import DagsterEvalsError
from dagster_evals.engine.git import Release, resolve_commit
from dagster_evals.engine.models import PromptVersion
from dagster_evals.engine.platform import EvalPlatform

TAG_PREFIX = "dagster-evals/"
TAG_TRIGGER = TAG_PREFIX + "trigger"
TAG_PROMPT_ID = TAG_PREFIX + "prompt_id"
TAG_PROMPT_SLUG = TAG_PREFIX + "prompt_slug"
TAG_PROMPT_VERSION = TAG_PREFIX + "prompt_version"
TAG_RELEASE_TAG = TAG_PREFIX + "release_tag"
TAG_GIT_COMMIT = TAG_PREFIX + "git_commit"


def prompt_run_tags(prompt: PromptVersion) -> dict[str, str]:
    return {
        TAG_TRIGGER: "prompt_version",
        TAG_PROMPT_ID: prompt.prompt_id,
        TAG_PROMPT_SLUG: prompt.slug,
        TAG_PROMPT_VERSION: prompt.version,
    }


def release_run_tags(release: Release) -> dict[str, str]:
    return {TAG_TRIGGER: "release", TAG_RELEASE_TAG: release.tag, TAG_GIT_COMMIT: release.commit}


def release_partition_key(release: Release) -> str:
    return release.tag


@dataclass(frozen=True)
class Trigger:
    """The prompt version and/or release an eval run evaluates."""

    prompt: PromptVersion | None = None
    release: Release | None = None

    def metadata(self) -> dict[str, Any]:
        """Lineage entries for the report's metadata and the platform's experiment metadata."""
        entries: dict[str, Any] = {}
        if self.prompt is not None:
            entries.update(
                prompt_slug=self.prompt.slug,
                prompt_version=self.prompt.version,
                prompt_id=self.prompt.prompt_id,
            )
        if self.release is not None:
            entries["release_tag"] = self.release.tag
            if self.release.commit:
                entries["git_commit"] = self.release.commit
        return entries


def find_prompt_version(
    platform: EvalPlatform, project: str | None, slug: str, version: str
) -> PromptVersion:
    """The prompt version `slug@version` on the platform, or an error listing the versions it has."""
    found = platform.get_prompt_version(slug, version, project=project)
    if found is not None:
        return found
    versions = platform.list_prompt_versions(project=project, slug=slug)
    known = ", ".join(v.version for v in versions[-10:]) or "none"
    raise DagsterEvalsError(
        f"prompt {slug!r} has no version {version!r} on {platform.platform} (latest versions: {known})"
    )


def resolve_trigger(
    tags: dict[str, str],
    partition_key: str | None,
    platform: EvalPlatform,
    project: str | None,
    git_repo: str | Path | None,
) -> Trigger:
    """Work out the prompt version / release of a run from its tags, else from its partition key."""
    prompt = None
    release = None
    if TAG_PROMPT_SLUG in tags and TAG_PROMPT_VERSION in tags:
        prompt = find_prompt_version(platform, project, tags[TAG_PROMPT_SLUG], tags[TAG_PROMPT_VERSION])
    if TAG_RELEASE_TAG in tags:
        release = Release(tag=tags[TAG_RELEASE_TAG], commit=tags.get(TAG_GIT_COMMIT, ""))
    if prompt is None and release is None and partition_key:
        if "@" in partition_key:
            slug, _, version = partition_key.rpartition("@")
            prompt = find_prompt_version(platform, project, slug, version)
        else:
            commit = resolve_commit(git_repo, partition_key) if git_repo else None
            release = Release(tag=partition_key, commit=commit or "")
    if release is not None and not release.commit and git_repo:
        release = Release(tag=release.tag, commit=resolve_commit(git_repo, release.tag) or "")
    return Trigger(prompt=prompt, release=release)
