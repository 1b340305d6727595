"""`BraintrustResource`: the Dagster resource that hands out a `BraintrustPlatform`."""

from __future__ import annotations

import logging
from typing import cast

from pydantic import Field

from dagster_evals.backends.base import STATE_DATABASE_HELP
from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.platform import BraintrustPlatform
from dagster_evals.backends.braintrust.session import (
    DEFAULT_EVAL_TIMEOUT_S,
    DEFAULT_INSERT_BATCH_SIZE,
    DEFAULT_INSERT_MAX_BYTES,
    DEFAULT_LAUNCH_SETTLE_S,
    DEFAULT_PROJECT,
    DEFAULT_REQUEST_CONCURRENCY,
)
from dagster_evals.backends.platform_resource import EvalPlatformResource, state_database_from_field
from dagster_evals.backends.urls import BRAINTRUST_API_URL_ENV, BRAINTRUST_APP_URL_ENV, resolve_base_url
from dagster_evals.engine.http import RetryPolicy

logger = logging.getLogger("dagster_evals.braintrust")


class BraintrustResource(EvalPlatformResource):
    """Braintrust: datasets, experiments, `/v1/eval` and prompts through the REST API.

    Examples:
        .. code-block:: python

            import dagster as dg
            from dagster_evals import BraintrustResource

            defs = dg.Definitions(
                resources={
                    "evals": BraintrustResource(
                        api_key=dg.EnvVar("BRAINTRUST_API_KEY"),
                        project="support-bot",
                        # Optional: default $BRAINTRUST_API_URL, else https://api.braintrust.dev.
                        api_url="https://braintrust.internal.example.com",
                    )
                }
            )
    """

    api_key: str = Field(
        description="Braintrust API key; pass dg.EnvVar('BRAINTRUST_API_KEY').",
        json_schema_extra={"dagster__is_secret": True},
    )
    api_url: str | None = Field(
        default=None,
        description=f"REST API base URL; default: ${BRAINTRUST_API_URL_ENV}, else {api.DEFAULT_API_URL}.",
    )
    app_url: str | None = Field(
        default=None,
        description=f"Web app URL (for links); default: ${BRAINTRUST_APP_URL_ENV}, else {api.DEFAULT_APP_URL}.",
    )
    org_name: str | None = Field(default=None, description="Organization, when the key has several.")
    project: str = Field(default=DEFAULT_PROJECT, description="Project of datasets and experiments.")
    timeout_s: float = Field(default=60.0, description="Timeout of one HTTP request, in seconds.")
    max_retries: int = Field(default=5, description="Retries of a failed request that is safe to repeat.")
    backoff_base_s: float = Field(default=0.5, description="First retry delay; doubles each retry.")
    rate_limit_per_minute: float | None = Field(default=None, description="Client-side request pacing.")
    insert_batch_size: int = Field(default=DEFAULT_INSERT_BATCH_SIZE, description="Max rows per insert.")
    insert_max_bytes: int = Field(default=DEFAULT_INSERT_MAX_BYTES, description="Max bytes per insert.")
    request_concurrency: int = Field(
        default=DEFAULT_REQUEST_CONCURRENCY, description="Insert requests in flight at once."
    )
    stream_evals: bool = Field(default=False, description="Use stream: true for POST /v1/eval.")
    collect_git: bool = Field(default=True, description="Send the local git state as repo_info.")
    eval_timeout_s: float = Field(
        default=DEFAULT_EVAL_TIMEOUT_S,
        description="How long to wait for a POST /v1/eval run to finish once launched, in seconds.",
    )
    launch_settle_s: float = Field(
        default=DEFAULT_LAUNCH_SETTLE_S,
        description="After a launch fails without a clear answer, how long to look for the experiment it "
        "may have created before sending it again, in seconds.",
    )

    def get_platform(self) -> BraintrustPlatform:
        return cast(BraintrustPlatform, super().get_platform())

    state_database_url: str | None = Field(default=None, description=STATE_DATABASE_HELP)

    def state_database(self) -> str:
        return state_database_from_field(self, self.state_database_url)

    def resolved_api_url(self) -> str:
        """The REST API base URL requests go to: `api_url`, else `$BRAINTRUST_API_URL`, else the public API."""
        return resolve_base_url(
            self.api_url,
            (BRAINTRUST_API_URL_ENV,),
            api.DEFAULT_API_URL,
            field="api_url",
            resource="BraintrustResource",
        ).url

    def resolved_app_url(self) -> str:
        """The web app URL of links: `app_url`, else `$BRAINTRUST_APP_URL`, else the public app."""
        return resolve_base_url(
            self.app_url,
            (BRAINTRUST_APP_URL_ENV,),
            api.DEFAULT_APP_URL,
            field="app_url",
            resource="BraintrustResource",
        ).url

    def connect(self) -> BraintrustPlatform:
        return BraintrustPlatform(
            api_key=self.api_key,
            api_url=self.resolved_api_url(),
            app_url=self.resolved_app_url(),
            org_name=self.org_name,
            project=self.project,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base_s=self.backoff_base_s),
            rate_limit_per_minute=self.rate_limit_per_minute,
            insert_batch_size=self.insert_batch_size,
            insert_max_bytes=self.insert_max_bytes,
            request_concurrency=self.request_concurrency,
            stream_evals=self.stream_evals,
            collect_git=self.collect_git,
            eval_timeout_s=self.eval_timeout_s,
            launch_settle_s=self.launch_settle_s,
        )
