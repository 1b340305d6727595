"""Keywords AI prompt versions as platform-neutral `PromptVersion`s.

A prompt list item carries its `id` and `current_version.version` (respanai/respan-python-api
src/respan/prompts/types/list_prompts_response_results_item.py and
list_prompts_response_results_item_current_version.py); versions are numbered 1…n.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from dagster_evals.backends.keywordsai.client import KeywordsAIClient
from dagster_evals.engine.models import PromptVersion


class PromptOps:
    """Prompt operations of `KeywordsAIPlatform` (a mixin)."""

    client: KeywordsAIClient
    page_size: int

    def list_prompt_versions(
        self,
        *,
        project: str | None = None,
        slug: str | None = None,
        newer_than: Mapping[str, str] | None = None,
        latest_only: bool = False,
    ) -> list[PromptVersion]:
        """Every version of every prompt (or of the prompt whose slug, id or name is `slug`), oldest first.

        Requests: one per 100 prompts, plus one per 100 versions of each prompt listed. A prompt whose
        current version is not newer than `newer_than[prompt id]` is not listed (no request); with
        `latest_only`, a prompt missing from `newer_than` contributes its current version without a request.
        """
        versions: list[PromptVersion] = []
        for prompt in self.client.iter_prompts(page_size=self.page_size):
            prompt_id = prompt.key
            prompt_slug = prompt.prompt_slug or prompt_id
            if slug is not None and slug not in (prompt_slug, prompt_id, prompt.name):
                continue
            latest = prompt.latest_version
            if latest == 0:
                continue
            known = (newer_than or {}).get(prompt_id)
            if known is not None and known.isdigit() and latest is not None and latest <= int(known):
                continue
            if latest_only and known is None and latest:
                versions.append(
                    PromptVersion(
                        platform="keywordsai",
                        project=None,
                        prompt_id=prompt_id,
                        slug=prompt_slug,
                        version=str(latest),
                        created_at=(prompt.current_version.updated_at if prompt.current_version else None)
                        or prompt.updated_at,
                    )
                )
                continue
            for version in self.client.iter_prompt_versions(prompt_id, page_size=self.page_size):
                content = version.model_dump(
                    mode="json",
                    exclude_none=True,
                    exclude={"id", "prompt_version_id", "version", "created_at", "updated_at"},
                )
                versions.append(
                    PromptVersion(
                        platform="keywordsai",
                        project=None,
                        prompt_id=prompt_id,
                        slug=prompt_slug,
                        version=str(version.version),
                        created_at=version.created_at,
                        content=content,
                    )
                )
        versions.sort(
            key=lambda v: (v.created_at is None, v.created_at or datetime.min, v.slug, int(v.version))
        )
        return versions
