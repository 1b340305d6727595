"""Which prompt versions and releases are new since a cursor: shared by the Dagster and Airflow sensors.

A prompt cursor maps prompt id → the newest version already picked up; a release cursor maps tag → the
commit it pointed to. Each version (each tag at a commit) is picked up once. Imports no orchestrator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from dagster_evals.engine.git import Release, version_key
from dagster_evals.engine.models import PromptVersion

InitialRuns = Literal["latest", "all", "none"]


def initial_pick(items: list[Any], initial: InitialRuns) -> list[Any]:
    """What a first look at `items` (oldest first) picks up: the `latest`, `all` of them, or `none`."""
    if initial == "all":
        return items
    if initial == "latest":
        return items[-1:]
    return []


def new_prompt_versions(
    versions: Sequence[PromptVersion], cursor: dict[str, Any], initial: InitialRuns
) -> tuple[list[PromptVersion], dict[str, Any]]:
    """Versions newer than the cursor's, per prompt, and the advanced cursor.

    The cursor maps prompt id → the newest version seen. A prompt seen for the first time contributes per
    `initial`: its latest version, all of its versions, or none.
    """
    seen: dict[str, str] = dict(cursor.get("prompts", {}))
    by_prompt: dict[str, list[PromptVersion]] = {}
    for version in versions:
        by_prompt.setdefault(version.prompt_id, []).append(version)
    fresh: list[PromptVersion] = []
    advanced = dict(seen)
    for prompt_id, items in by_prompt.items():
        items.sort(key=lambda v: version_key(v.version))
        if prompt_id in seen:
            floor = version_key(seen[prompt_id])
            fresh.extend(v for v in items if version_key(v.version) > floor)
        else:
            fresh.extend(initial_pick(items, initial))
        known = [v.version for v in items] + ([seen[prompt_id]] if prompt_id in seen else [])
        advanced[prompt_id] = max(known, key=version_key)
    fresh.sort(key=lambda v: (v.created_at is None, v.created_at, v.slug, version_key(v.version)))
    return fresh, {"prompts": advanced}


def new_releases(
    releases: Sequence[Release], cursor: dict[str, Any], initial: InitialRuns
) -> tuple[list[Release], dict[str, Any]]:
    """Tags (oldest first) that are new or point to another commit than in the cursor, and the new cursor.

    On the first look (no cursor) the tags picked are per `initial`.
    """
    seen: dict[str, str] = dict(cursor.get("tags", {}))
    if "tags" in cursor:
        fresh = [r for r in releases if seen.get(r.tag) != r.commit]
    else:
        fresh = initial_pick(list(releases), initial)
    return fresh, {"tags": {r.tag: r.commit for r in releases}}
