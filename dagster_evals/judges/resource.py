"""`OpenAIJudgeResource`: the judge endpoint as Dagster configuration."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import dagster as dg
from pydantic import Field, model_validator

from dagster_evals.judges.settings import (
    API_KEY_ENV,
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_MODEL,
    JudgeSettings,
    check_prices,
)


def _plain(value: Any) -> Any:
    """An `EnvVar` read now (a resource used outside a run keeps the unresolved `EnvVar`)."""
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def _env_name(value: Any) -> str | None:
    return value.env_var_name if isinstance(value, dg.EnvVar) else None


class OpenAIJudgeResource(dg.ConfigurableResource):
    """Any OpenAI-compatible endpoint for LLM judges and prompt-version tasks.

    Unset `base_url` / `api_key` fall back to `OPENAI_BASE_URL` / the env var named by `api_key_env`
    (default `OPENAI_API_KEY`), read when the run starts, so the key never enters the resource's config.
    Bind it under a resource key and name that key on the suite (`EvalSuite(judge_resource_key="judge")`)
    to make it the endpoint of the suite's judges and prompt tasks.

    Examples:
        .. code-block:: python

            import dagster as dg
            from dagster_evals import OpenAIJudgeResource, judge

            endpoint = OpenAIJudgeResource(
                api_key=dg.EnvVar("MY_GATEWAY_KEY"),
                base_url="https://api.keywordsai.co/api",
                model="gpt-4o-mini",
                max_concurrency=20,
            )
            scorers = [judge("factuality", endpoint=endpoint), judge("closed_qa", endpoint=endpoint)]
    """

    api_key: str | None = Field(default=None, description="Bearer key; default: $OPENAI_API_KEY.")
    base_url: str | None = Field(default=None, description="API root with /v1; default: $OPENAI_BASE_URL.")
    model: str = Field(default=DEFAULT_MODEL, description="Chat model of judges and prompt tasks.")
    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, description="Model of embedding scorers.")
    organization: str | None = Field(default=None, description="Optional OpenAI-Organization header.")
    max_concurrency: int = Field(default=10, description="Calls in flight at once.")
    requests_per_minute: float | None = Field(default=None, description="Client-side pacing.")
    timeout_s: float = Field(default=60.0, description="Per-attempt timeout in seconds.")
    max_retries: int = Field(default=5, description="Retries of 408/429/5xx (Retry-After honoured).")
    cache: bool = Field(default=True, description="Reuse stored scores for identical judge calls.")
    max_cost_usd: float | None = Field(
        default=None,
        description="Budget per run in USD; a call that cannot be priced stops a run with a budget.",
    )
    price_per_million_input_usd: float | None = Field(
        default=None,
        description="USD per million input tokens, instead of the genai-prices table (give both prices).",
    )
    price_per_million_output_usd: float | None = Field(
        default=None, description="USD per million output tokens, instead of the genai-prices table."
    )
    max_answer_bytes: int = Field(
        default=DEFAULT_MAX_ANSWER_BYTES,
        description="Largest answer read, in bytes (default 16 MiB); a larger one is the row's error.",
    )
    api_key_env: str = Field(
        default=API_KEY_ENV,
        description="Env var holding the key when api_key is unset; named in auth error messages.",
    )

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "api_key" and value else value)

    @model_validator(mode="after")
    def _check_prices(self) -> OpenAIJudgeResource:
        """A price override is checked when the resource is built (code location load), not at run time."""
        check_prices(self.price_per_million_input_usd, self.price_per_million_output_usd)
        return self

    def settings(self) -> JudgeSettings:
        """The resolved `JudgeSettings` (environment fallbacks applied)."""
        return JudgeSettings.from_env(
            api_key=_plain(self.api_key) or os.environ.get(self.api_key_env) or None,
            base_url=_plain(self.base_url) or None,
            model=self.model,
            embedding_model=self.embedding_model,
            organization=_plain(self.organization) or None,
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.requests_per_minute,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            cache=self.cache,
            max_cost_usd=self.max_cost_usd,
            max_answer_bytes=self.max_answer_bytes,
            price_per_million_input_usd=self.price_per_million_input_usd,
            price_per_million_output_usd=self.price_per_million_output_usd,
            api_key_env=self.api_key.env_var_name
            if isinstance(self.api_key, dg.EnvVar)
            else self.api_key_env,
        )


JudgeResource = OpenAIJudgeResource
"""`OpenAIJudgeResource` by a shorter name: the judge endpoint bound as a Dagster resource (`judge_resource_key`)."""
