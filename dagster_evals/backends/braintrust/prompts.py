"""Braintrust prompts: versions of a project's prompts, a prompt as it was at a version."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dagster_evals.backends.braintrust.session import BraintrustSession
from dagster_evals.engine.errors import (
    PlatformError,
)
from dagster_evals.engine.models import (
    PromptVersion,
)

logger = logging.getLogger("dagster_evals.braintrust")


class BraintrustPrompts(BraintrustSession):
    """Prompt versions (`_xact_id`s) of a project."""

    def list_prompt_versions(
        self,
        *,
        project: str | None = None,
        slug: str | None = None,
        newer_than: Mapping[str, str] | None = None,
        latest_only: bool = False,
    ) -> list[PromptVersion]:
        """The current version of every prompt of the project (optionally one slug), oldest first.

        A prompt's version is its `_xact_id`: a new one appears whenever the prompt is saved. One paginated
        listing serves every prompt, so `newer_than` saves no request here.
        """
        project_name = project or self.default_project
        filters: dict[str, Any] = {"project_name": project_name}
        if slug is not None:
            filters["slug"] = slug
        prompts = list(self.client.iter_prompts(**filters))
        prompts.sort(key=lambda p: (int(p.xact_id) if p.xact_id.isdigit() else 0, p.slug))
        return [
            PromptVersion(
                platform="braintrust",
                project=project_name,
                prompt_id=p.id,
                slug=p.slug,
                version=p.xact_id,
                created_at=p.created,  # type: ignore[arg-type]
                content=p.prompt_data or {},
            )
            for p in prompts
        ]

    def get_prompt_version(
        self, slug: str, version: str, *, project: str | None = None
    ) -> PromptVersion | None:
        """A prompt as it was at `version` (an `_xact_id`), also after it was saved again; None when the
        project has no such prompt at that version.

        `GET /v1/prompt?slug=…&version=…` answers 200 with `objects: []` for an unknown slug or a version
        before the prompt existed (braintrustdata/braintrust-openapi `openapi/spec.json`, `GET /v1/prompt`).
        """
        project_name = project or self.default_project
        found = self.client.list_prompts(project_name=project_name, slug=slug, version=version)
        if not found:
            return None
        if len(found) > 1:
            raise PlatformError(
                "braintrust",
                409,
                "GET",
                "/v1/prompt",
                f"{len(found)} prompts have slug {slug!r} in project {project_name!r}",
            )
        p = found[0]
        return PromptVersion(
            platform="braintrust",
            project=project_name,
            prompt_id=p.id,
            slug=p.slug,
            version=version,
            created_at=p.created,  # type: ignore[arg-type]
            content=p.prompt_data or {},
        )
