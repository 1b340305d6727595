"""Braintrust prompts: versions of a project's prompts, a prompt as it was at a version."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dagster_evals.backends.braintrust.session import BraintrustSession
from dagster_evals.errors import (
    NotFoundError,
)
from dagster_evals.models import (
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
        """A prompt as it was at `version` (an `_xact_id`), also after it was saved again."""
        project_name = project or self.default_project
        try:
            p = self.client.get_prompt_by_slug(project_name, slug, version=version)
        except NotFoundError:
            return None
        return PromptVersion(
            platform="braintrust",
            project=project_name,
            prompt_id=p.id,
            slug=p.slug,
            version=version,
            created_at=p.created,  # type: ignore[arg-type]
            content=p.prompt_data or {},
        )
