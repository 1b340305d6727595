"""Prompt versions on the local backend: one new version per content change, numbered 1, 2, 3…"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.backends.local.store import insert, prompt_versions, prompts, write_transaction
from dagster_evals.engine.models import PromptVersion, canonical_json, content_hash, utcnow


class LocalPrompts(EvalPlatform):
    """Prompt operations of `LocalPlatform` (mixed into it)."""

    engine: Engine

    def push_prompt_version(
        self, slug: str, content: dict[str, Any], *, project: str | None = None, name: str | None = None
    ) -> PromptVersion:
        """Create the prompt if needed and record `content` as its new version (unchanged content: no new
        version, the current one is returned)."""
        project = project or self.default_project
        digest = content_hash(content, None, {}, [])
        p, v = prompts.c, prompt_versions.c
        now = utcnow().isoformat()
        with write_transaction(self.engine) as conn:
            conn.execute(
                insert(conn, prompts)
                .values(id=uuid.uuid4().hex, project=project, slug=slug, name=name or slug, created_at=now)
                .on_conflict_do_nothing(index_elements=["project", "slug"])
            )
            # Locking the prompt row orders concurrent pushes of the same prompt (PostgreSQL; SQLite's
            # write transaction already does).
            prompt_id = conn.execute(
                sa.select(p.id).where((p.project == project) & (p.slug == slug)).with_for_update()
            ).scalar_one()
            latest = conn.execute(
                sa.select(v.version, v.content_hash, v.created_at)
                .where(v.prompt_id == prompt_id)
                .order_by(v.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.content_hash == digest:
                version, created = int(latest.version), latest.created_at
            else:
                version, created = (int(latest.version) if latest else 0) + 1, now
                conn.execute(
                    sa.insert(prompt_versions).values(
                        prompt_id=prompt_id,
                        version=version,
                        content=canonical_json(content),
                        content_hash=digest,
                        created_at=now,
                    )
                )
        return PromptVersion(
            platform="local",
            project=project,
            prompt_id=prompt_id,
            slug=slug,
            version=str(version),
            created_at=created,  # type: ignore[arg-type]
            content=content,
        )

    def list_prompt_versions(
        self,
        *,
        project: str | None = None,
        slug: str | None = None,
        newer_than: Mapping[str, str] | None = None,
        latest_only: bool = False,
    ) -> list[PromptVersion]:
        project = project or self.default_project
        p, v = prompts.c, prompt_versions.c
        query = (
            sa.select(p.id, p.slug, v.version, v.content, v.created_at)
            .join_from(prompts, prompt_versions, v.prompt_id == p.id)
            .where(p.project == project)
        )
        if slug is not None:
            query = query.where(p.slug == slug)
        query = query.order_by(v.created_at, p.slug, v.version)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            PromptVersion(
                platform="local",
                project=project,
                prompt_id=r.id,
                slug=r.slug,
                version=str(r.version),
                created_at=r.created_at,
                content=json.loads(r.content),
            )
            for r in rows
        ]
