"""Errors raised by dagster-evals.

Plain exceptions (this module imports no orchestrator): the Dagster steps turn one into a `dagster.Failure`
as it leaves the step (`dagster_evals.step_failures`), so a run shows its description (and metadata) on the
run page; the Airflow operators let it fail the task. Messages name what to fix: the file and line or row id
and field for bad input, the env var for auth failures, the status, endpoint and platform message for
platform errors. No error text ever contains an API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DagsterEvalsError(Exception):
    """Base class of every error raised by dagster-evals.

    Attributes:
        message: What went wrong and what to do about it.
        metadata: Small facts about the error (status, endpoint…) shown next to it on a Dagster run page.
    """

    def __init__(self, message: str, metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, Any] = dict(metadata or {})

    def __str__(self) -> str:
        return self.message


class InputError(DagsterEvalsError):
    """Bad user input: a malformed source file, a row without a required field, duplicate keys."""


class ConfigError(DagsterEvalsError):
    """A suite, scorer or resource is configured wrongly (unknown scorer, bad threshold...)."""


class CountMismatchError(DagsterEvalsError):
    """After a sync or an eval, the counts on the platform do not match what was sent."""


class SyncConflictError(DagsterEvalsError):
    """Another sync published a new version of the dataset while this one was being staged.

    Raised by a stage's `publish()` when the version the sync diffed against is no longer current; nothing
    of the losing sync is published. `dagster_evals.engine.sync` rebases and retries on it.
    """


class PlatformError(DagsterEvalsError):
    """The platform answered with an error. Carries the status, the endpoint and the platform's message."""

    def __init__(self, platform: str, status: int | None, method: str, endpoint: str, message: str) -> None:
        self.platform = platform
        self.status = status
        self.method = method
        self.endpoint = endpoint
        self.platform_message = message
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(
            f"{platform} {method} {endpoint} failed ({status_text}): {message}",
            metadata={"status": status if status is not None else -1, "endpoint": f"{method} {endpoint}"},
        )


class AuthError(PlatformError):
    """The platform rejected the API key (401/403). Says which env var to set; never prints the key."""

    def __init__(
        self, platform: str, status: int, method: str, endpoint: str, message: str, env_var: str
    ) -> None:
        self.env_var = env_var
        super().__init__(
            platform,
            status,
            method,
            endpoint,
            f"{message} — check the API key: set the {env_var} environment variable to a valid key",
        )


class NotFoundError(PlatformError):
    """The platform has no object with that id (404)."""


class RateLimitedError(PlatformError):
    """The platform answered 429 and the request could not (or could no longer) be retried.

    `retry_after` holds the seconds the platform asked to wait, when it said.
    """

    retry_after: float | None = None


def pinned_dataset_gone(error: NotFoundError, dataset_name: str) -> NotFoundError:
    """`error` (a 404 for a snapshot's dataset) with what to do about it: pin a new snapshot."""
    return NotFoundError(
        error.platform,
        error.status or 404,
        error.method,
        error.endpoint,
        f"{error.platform_message} — dataset {dataset_name!r} of the pinned snapshot no longer exists: "
        "materialize the suite's dataset and dataset_snapshot assets again",
    )
