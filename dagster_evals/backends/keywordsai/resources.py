"""`KeywordsAIResource`: the Dagster resource that hands out a `KeywordsAIPlatform`."""

from __future__ import annotations

from typing import cast

from pydantic import Field

from dagster_evals.backends.base import STATE_DATABASE_HELP
from dagster_evals.backends.keywordsai.models import DEFAULT_BASE_URL, MAX_PAGE_SIZE
from dagster_evals.backends.keywordsai.platform import (
    DEFAULT_APP_URL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_REQUEST_BYTES,
    KeywordsAIPlatform,
)
from dagster_evals.backends.platform_resource import EvalPlatformResource, state_database_from_field
from dagster_evals.backends.urls import KEYWORDSAI_BASE_URL_ENVS, resolve_base_url, without_api_suffix
from dagster_evals.engine.http import RetryPolicy


class KeywordsAIResource(EvalPlatformResource):
    """Keywords AI (Respan): datasets of logs, evaluators, eval runs and prompts.

    Examples:
        .. code-block:: python

            import dagster as dg
            from dagster_evals import KeywordsAIResource

            defs = dg.Definitions(
                resources={
                    "evals": KeywordsAIResource(
                        api_key=dg.EnvVar("KEYWORDSAI_API_KEY"),
                        # Optional: default $KEYWORDSAI_BASE_URL, else https://api.keywordsai.co.
                        base_url="https://api.respan.ai",
                    )
                }
            )
    """

    api_key: str = Field(
        description="Keywords AI API key; pass dg.EnvVar('KEYWORDSAI_API_KEY').",
        json_schema_extra={"dagster__is_secret": True},
    )
    base_url: str | None = Field(
        default=None,
        description=f"API base URL (Respan: https://api.respan.ai; a fake server in tests); default: "
        f"${KEYWORDSAI_BASE_URL_ENVS[0]}, else ${KEYWORDSAI_BASE_URL_ENVS[1]}, else {DEFAULT_BASE_URL}. "
        "A trailing /api (the SDKs' form) is accepted.",
    )
    app_url: str = Field(default=DEFAULT_APP_URL, description="Web app base URL, for links in metadata.")
    timeout_s: float = Field(default=30.0, description="Timeout of one HTTP request, in seconds.")
    max_retries: int = Field(default=5, description="Retries of a failed request (429, 5xx, timeouts).")
    backoff_base_s: float = Field(default=0.5, description="First retry delay; doubles each retry.")
    rate_limit_per_minute: float | None = Field(
        default=60,
        description="The organization's request limit (60/minute documented). The client paces at 90% of it.",
    )
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description="Logs per bulk insert request.")
    max_request_bytes: int = Field(
        default=DEFAULT_MAX_REQUEST_BYTES,
        description="Largest bulk insert body, in bytes; a longer row fails the sync naming the row.",
    )
    page_size: int = Field(default=MAX_PAGE_SIZE, description="Logs per list page (at most 100).")
    eval_poll_interval_s: float = Field(default=2.0, description="First wait between eval run polls.")
    eval_timeout_s: float = Field(default=1800.0, description="Longest wait for an eval run to finish.")
    settle_delay_s: float = Field(
        default=2.0,
        description="Wait between the listings that confirm a write whose outcome was unknown has settled.",
    )
    settle_timeout_s: float = Field(
        default=120.0,
        description="Longest wait for removed logs to disappear (removal runs in the background).",
    )

    def get_platform(self) -> KeywordsAIPlatform:
        return cast(KeywordsAIPlatform, super().get_platform())

    state_database_url: str | None = Field(default=None, description=STATE_DATABASE_HELP)

    def state_database(self) -> str:
        return state_database_from_field(self, self.state_database_url)

    def resolved_base_url(self) -> str:
        """The API base URL requests go to: `base_url`, else `$KEYWORDSAI_BASE_URL`, else
        `$RESPAN_BASE_URL`, else the public API; without a trailing `/api`."""
        resolved = resolve_base_url(
            self.base_url,
            KEYWORDSAI_BASE_URL_ENVS,
            DEFAULT_BASE_URL,
            field="base_url",
            resource="KeywordsAIResource",
        )
        return without_api_suffix(resolved.url)

    def connect(self) -> KeywordsAIPlatform:
        return KeywordsAIPlatform.connect(
            self.api_key,
            base_url=self.resolved_base_url(),
            timeout_s=self.timeout_s,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base_s=self.backoff_base_s),
            rate_limit_per_minute=self.rate_limit_per_minute,
            app_url=self.app_url,
            batch_size=self.batch_size,
            max_request_bytes=self.max_request_bytes,
            page_size=self.page_size,
            eval_poll_interval_s=self.eval_poll_interval_s,
            eval_timeout_s=self.eval_timeout_s,
            settle_delay_s=self.settle_delay_s,
            settle_timeout_s=self.settle_timeout_s,
        )
