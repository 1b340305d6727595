"""Keywords AI (Respan) as an `EvalPlatform`: datasets of logs, evaluators run as eval runs, prompts.

The facade holds the settings; the work is done by the mixins, one per job: `datasets.DatasetOps` (rows,
exact writes, background removals), `eval_runs.EvalRunOps` (start/wait/read eval runs), `evals.EvalOps`
(running an `EvalRequest`), `prompts.PromptOps`. Wire shapes are in `models.py`, HTTP calls in `client.py`.

- **Rows are dataset logs** (`rows.py`); a version is the content digest of the rows (Keywords AI keeps
  no server-side versions), and `run_eval` refuses a dataset changed since its snapshot.
- **Rate limits.** Requests are paced below `rate_limit_per_minute` (60 per minute documented); 429s are
  retried after the server's `Retry-After`.
"""

from __future__ import annotations

import importlib
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.backends.keywordsai.client import KeywordsAIClient
from dagster_evals.backends.keywordsai.datasets import DatasetChangedError, DatasetOps, version_of
from dagster_evals.backends.keywordsai.eval_runs import EvalRunFailed, EvalRunOps
from dagster_evals.backends.keywordsai.evals import EvalOps
from dagster_evals.backends.keywordsai.models import (
    DEFAULT_BASE_URL,
    ENV_VAR,
    MAX_PAGE_SIZE,
    CreateDatasetRequest,
    EvalTask,
    Evaluator,
    ImportLogsRequest,
    RequestLog,
)
from dagster_evals.backends.keywordsai.prompts import PromptOps
from dagster_evals.backends.keywordsai.shapes import ServerShapes
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.http import HttpClient, RetryPolicy
from dagster_evals.engine.models import DatasetRef

if TYPE_CHECKING:
    from dagster_evals.backends.keywordsai.resources import KeywordsAIResource

DEFAULT_APP_URL = "https://platform.keywordsai.co"
DEFAULT_BATCH_SIZE = 100
# Largest bulk-insert body sent: Django's default request body limit (DATA_UPLOAD_MAX_MEMORY_SIZE).
DEFAULT_MAX_REQUEST_BYTES = 2_621_440
# Share of the configured rate limit the client uses (the server counts in a sliding window).
PACING_HEADROOM = 0.9

__all__ = [
    "PACING_HEADROOM",
    "DatasetChangedError",
    "EvalRunFailed",
    "KeywordsAIPlatform",
    "KeywordsAIResource",
    "version_of",
]


class KeywordsAIPlatform(DatasetOps, EvalRunOps, EvalOps, PromptOps, EvalPlatform):
    """`EvalPlatform` on the Keywords AI REST API. Build it with `KeywordsAIResource` or `connect()`.

    Examples:
        .. code-block:: python

            from dagster_evals.backends.keywordsai import KeywordsAIPlatform

            platform = KeywordsAIPlatform.connect("kw-...", base_url="https://api.keywordsai.co")
            dataset = platform.ensure_dataset("support-qa")
    """

    platform = "keywordsai"

    def __init__(
        self,
        client: KeywordsAIClient,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        page_size: int = MAX_PAGE_SIZE,
        app_url: str = DEFAULT_APP_URL,
        eval_poll_interval_s: float = 2.0,
        eval_poll_max_interval_s: float = 30.0,
        eval_timeout_s: float = 1800.0,
        max_batch_attempts: int = 5,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        settle_delay_s: float = 2.0,
        settle_timeout_s: float = 120.0,
        max_reconcile_rounds: int = 8,
    ) -> None:
        if batch_size < 1 or page_size < 1:
            raise ConfigError(
                f"batch_size and page_size must be at least 1, got {batch_size} and {page_size}"
            )
        if max_request_bytes < 1024:
            raise ConfigError(f"max_request_bytes must be at least 1024, got {max_request_bytes}")
        if settle_delay_s < 0 or settle_timeout_s < 0:
            raise ConfigError("settle_delay_s and settle_timeout_s must not be negative")
        self.client = client
        self.batch_size = batch_size
        self.max_request_bytes = max_request_bytes
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.app_url = app_url.rstrip("/")
        self.eval_poll_interval_s = eval_poll_interval_s
        self.eval_poll_max_interval_s = eval_poll_max_interval_s
        self.eval_timeout_s = eval_timeout_s
        self.max_create_attempts = max_batch_attempts
        self.settle_delay_s = settle_delay_s
        self.settle_timeout_s = settle_timeout_s
        self.max_reconcile_rounds = max_reconcile_rounds
        self._foreign_ids: dict[str, set[str]] = {}
        self._insert_failures: Counter[str] = Counter()
        self._evaluator_slugs: dict[str, str] = {}
        self._shapes = ServerShapes()  # what the server accepts where the sources disagree
        self._rng = random.Random()

    @classmethod
    def connect(
        cls,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_limit_per_minute: float | None = 60,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> KeywordsAIPlatform:
        """A platform talking to `base_url` with this key, paced below `rate_limit_per_minute`."""
        if not api_key:
            raise ConfigError(f"no Keywords AI API key: set the {ENV_VAR} environment variable")
        http = HttpClient(
            platform="keywordsai",
            base_url=base_url,
            api_key=api_key,
            env_var=ENV_VAR,
            timeout_s=timeout_s,
            retry=retry,
            rate_limit_per_minute=rate_limit_per_minute * PACING_HEADROOM if rate_limit_per_minute else None,
            transport=transport,
        )
        return cls(KeywordsAIClient(http), **options)

    def __repr__(self) -> str:
        return f"KeywordsAIPlatform({self.client.http!r})"

    def close(self) -> None:
        self.client.close()

    @property
    def http(self) -> HttpClient:
        return self.client.http

    def dataset_url(self, dataset_id: str) -> str:
        """Link to the dataset in the Keywords AI app (URL pattern unconfirmed)."""
        return f"{self.app_url}/platform/datasets/{dataset_id}"

    def _ref(self, dataset_id: str, name: str) -> DatasetRef:
        return DatasetRef(platform="keywordsai", id=dataset_id, name=name, url=self.dataset_url(dataset_id))

    # -- production logs ------------------------------------------------------------------------------------
    def create_dataset_from_logs(
        self,
        name: str,
        *,
        start_time: datetime,
        end_time: datetime,
        filters: Mapping[str, Any] | None = None,
        sampling_percentage: int = 100,
        description: str | None = None,
    ) -> DatasetRef:
        """A new dataset holding `sampling_percentage` % of the request logs between `start_time` and
        `end_time` matching `filters` (request-log syntax, e.g. `metadata_filter("env", "prod")`)."""
        request = CreateDatasetRequest(
            name=name,
            description=description,
            is_empty=False,
            start_time=start_time,
            end_time=end_time,
            initial_log_filters=dict(filters) if filters else None,
            sampling=sampling_percentage,
        )
        created = self._create_once(
            lambda: self._ref(*(lambda d: (d.id, d.name))(self.client.create_dataset(request))),
            lambda: self.find_dataset(name),
        )
        return created

    def import_request_logs(
        self,
        dataset: DatasetRef,
        *,
        start_time: datetime,
        end_time: datetime,
        filters: Mapping[str, Any] | None = None,
        sampling_percentage: int | None = None,
    ) -> dict[str, Any]:
        """Add request logs from a time range (filtered, sampled) to an existing dataset (background)."""
        request = ImportLogsRequest(
            start_time=start_time,
            end_time=end_time,
            filters=dict(filters) if filters else None,
            sampling_percentage=sampling_percentage,
        )
        return self.client.import_request_logs(dataset.id, request)

    def iter_request_logs(
        self,
        *,
        start_time: datetime,
        end_time: datetime,
        filters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Iterator[RequestLog]:
        """Stream request logs between `start_time` and `end_time` matching `filters` (the server lists only
        the last hour when no window is given, so the window is required here)."""
        return self.client.iter_request_logs(
            start_time=start_time, end_time=end_time, filters=filters, **kwargs
        )

    def list_evaluators(self, *, search: str | None = None) -> list[Evaluator]:
        """Evaluators of the organization; their `evaluator_slug` is what `PlatformFunction.name` takes."""
        return list(self.client.iter_evaluators(search=search, page_size=self.page_size))

    def list_eval_runs(self, dataset: DatasetRef) -> list[EvalTask]:
        """Eval runs (or per-evaluator tasks) on a dataset, newest first."""
        return list(self.client.iter_eval_tasks(dataset.id, page_size=self.page_size))


def __getattr__(name: str) -> object:
    if name == "KeywordsAIResource":  # kept importable from here; it lives in resources.py
        # Loaded by name: the resource module builds on this one, so an import statement here would be a
        # cycle (and would load Dagster with the platform).
        return importlib.import_module("dagster_evals.backends.keywordsai.resources").KeywordsAIResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
