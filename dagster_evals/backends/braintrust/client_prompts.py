"""Prompt and function endpoints of the Braintrust REST client (`/v1/prompt`, `/v1/function`). Paths and
parameters: braintrustdata/braintrust-openapi `openapi/spec.json` (see `docs/api-versions.md` for the commit)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dagster_evals.backends.braintrust.client_base import BraintrustClientBase
from dagster_evals.backends.braintrust.client_base import query_params as _params
from dagster_evals.backends.braintrust.eval_models import (
    CreateFunction,
    CreatePrompt,
    Function,
    InvokeFunction,
    PatchFunction,
    PatchPrompt,
    Prompt,
    parse_sse,
)
from dagster_evals.engine.errors import PlatformError

__all__ = ["PromptsAndFunctions"]


class PromptsAndFunctions(BraintrustClientBase):
    """Create, patch, list, get and invoke prompts and functions."""

    # -- prompts -----------------------------------------------------------------------------------
    def create_prompt(self, body: CreatePrompt) -> Prompt:
        return Prompt.model_validate(self.http.post("/v1/prompt", json=body.body(), idempotent=True))

    def patch_prompt(self, prompt_id: str, body: PatchPrompt) -> Prompt:
        return Prompt.model_validate(self.http.patch(f"/v1/prompt/{prompt_id}", json=body.body()))

    def list_prompts(
        self,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
        prompt_name: str | None = None,
        slug: str | None = None,
        version: str | None = None,
        environment: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Prompt]:
        params = _params(
            project_id=project_id,
            project_name=project_name,
            prompt_name=prompt_name,
            slug=slug,
            version=version,
            environment=environment,
            org_name=self.org_name,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            ids=list(ids) if ids else None,
        )
        return [Prompt.model_validate(o) for o in self._list("/v1/prompt", params)]

    def iter_prompts(self, *, page_size: int = 100, **filters: Any) -> Iterator[Prompt]:
        params = _params(org_name=self.org_name, **filters)
        for obj in self.iter_objects("/v1/prompt", params, page_size=page_size):
            yield Prompt.model_validate(obj)

    def get_prompt(self, prompt_id: str, *, version: str | None = None) -> Prompt:
        return Prompt.model_validate(
            self.http.get(f"/v1/prompt/{prompt_id}", params=_params(version=version))
        )

    def get_prompt_by_slug(self, project_name: str, slug: str, *, version: str | None = None) -> Prompt:
        found = self.list_prompts(project_name=project_name, slug=slug, version=version)
        if len(found) != 1:
            raise PlatformError(
                "braintrust",
                404 if not found else 409,
                "GET",
                "/v1/prompt",
                f"expected one prompt with slug {slug!r} in project {project_name!r}, found {len(found)}",
            )
        return found[0]

    # -- functions ---------------------------------------------------------------------------------
    def create_function(self, body: CreateFunction) -> Function:
        return Function.model_validate(self.http.post("/v1/function", json=body.body(), idempotent=True))

    def patch_function(self, function_id: str, body: PatchFunction) -> Function:
        return Function.model_validate(self.http.patch(f"/v1/function/{function_id}", json=body.body()))

    def list_functions(
        self,
        *,
        project_id: str | None = None,
        project_name: str | None = None,
        function_name: str | None = None,
        slug: str | None = None,
        version: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Function]:
        params = _params(
            project_id=project_id,
            project_name=project_name,
            function_name=function_name,
            slug=slug,
            version=version,
            org_name=self.org_name,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
            ids=list(ids) if ids else None,
        )
        return [Function.model_validate(o) for o in self._list("/v1/function", params)]

    def get_function(self, function_id: str, *, version: str | None = None) -> Function:
        return Function.model_validate(
            self.http.get(f"/v1/function/{function_id}", params=_params(version=version))
        )

    def invoke_function(self, function_id: str, body: InvokeFunction) -> Any:
        """Call a function and return its output (any JSON value). Never retried."""
        path = f"/v1/function/{function_id}/invoke"
        if body.stream:
            response = self.http.post(path, json=body.body(), parse_json=False)
            return parse_sse(response.text)
        return self.http.post(path, json=body.body())
