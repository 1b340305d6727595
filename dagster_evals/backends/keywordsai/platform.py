"""Keywords AI (Respan) as an `EvalPlatform`: datasets of logs, evaluators run as eval reports, prompts.

How the platform-neutral model maps onto Keywords AI:

- **Rows are dataset logs.** `input` → `input`, `expected` → `expected_output`, `output` is `null` for
  curated rows. The row's id, content hash and tags travel in the log's metadata (`dagster_evals_row_id`,
  `dagster_evals_hash`, `dagster_evals_tags`), next to the row's own metadata, so re-reading a dataset gives
  back the same `DatasetRow`s and a sync can diff without any server-side upsert. Logs not written by
  dagster-evals (e.g. sampled from request logs) are read with their `unique_id` as the row id.
- **Writes** use the bulk endpoint (`batch_size` logs a request). A row to overwrite is deleted by a
  metadata filter, then added again. A bulk insert is not safe to repeat, so after an ambiguous failure
  (dropped connection, 5xx) the batch's rows are deleted by filter before it is sent again: a retried or
  re-run sync never duplicates a row.
- **Versions.** Keywords AI datasets have no server-side versions. A version here is the content digest of
  the rows (the first 16 hex digits of `rows_digest`); `snapshot()` pins it, and `run_eval` re-reads the
  dataset and refuses to run (`DatasetChangedError`) when its digest no longer matches the snapshot's.
- **Evals.** With a Python task, the task and local scorers run here (`run_request_locally`); each result is
  written as a log of a new dataset dedicated to that run (output, local scores and errors in metadata);
  the Keywords AI evaluators given as `PlatformFunction(platform="keywordsai", name=<evaluator slug>)` run
  over it as an eval report, polled with backoff until it finishes; per-evaluator scores are read from the
  logs and merged with the local ones. With `task=None` the evaluators run over the snapshot dataset's
  existing logs (e.g. production logs sampled into a dataset). A report id is
  `<dataset id>:<eval report id>` (just the dataset id when only local scorers ran).
- **Rate limits.** Requests are paced on the client below `rate_limit_per_minute` (the documented limit is
  60 per minute per organization), 429s are retried after the server's `retry_after`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import httpx
from pydantic import Field

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource, ProgressFn, _quiet, rows_digest
from dagster_evals.backends.keywordsai.models import (
    DEFAULT_BASE_URL,
    ENV_VAR,
    MAX_PAGE_SIZE,
    CreateDatasetRequest,
    DatasetLog,
    DatasetLogInput,
    EvalReportRun,
    Evaluator,
    ImportLogsRequest,
    KeywordsAIClient,
    RequestLog,
    where,
)
from dagster_evals.errors import (
    ConfigError,
    CountMismatchError,
    DagsterEvalsError,
    InputError,
    NotFoundError,
    PlatformError,
    RateLimitedError,
    pinned_dataset_gone,
)
from dagster_evals.http import HttpClient, RetryPolicy
from dagster_evals.models import (
    DatasetRef,
    DatasetRow,
    EvalReport,
    EvalRequest,
    PlatformFunction,
    PromptVersion,
    RowResult,
    ScoreSummary,
    Snapshot,
    canonical_json,
    content_hash,
)
from dagster_evals.runner import run_coroutine, run_request_locally
from dagster_evals.scorers import Scorer, resolve_local_scorers
from dagster_evals.summary import ReportBuilder

DEFAULT_APP_URL = "https://platform.keywordsai.co"
DEFAULT_BATCH_SIZE = 100
# Largest bulk-insert body sent. Keywords AI documents no limit; this is Django's default request body limit
# (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MiB), which a Django-served API rejects above.
DEFAULT_MAX_REQUEST_BYTES = 2_621_440
# Share of the configured rate limit the client actually uses: the server counts requests in a sliding
# window, and network jitter can bunch evenly paced requests together.
PACING_HEADROOM = 0.9
DELETE_CHUNK = 100
EXISTING_OUTPUT_TASKS = frozenset({"existing_output", "logs"})

ROW_ID_KEY = "dagster_evals_row_id"
HASH_KEY = "dagster_evals_hash"
TAGS_KEY = "dagster_evals_tags"
RESULT_KEY = "dagster_evals_result_id"
TRIAL_KEY = "dagster_evals_trial"
SCORES_KEY = "dagster_evals_scores"
SCORER_ERRORS_KEY = "dagster_evals_scorer_errors"
ERROR_KEY = "dagster_evals_error"
LATENCY_KEY = "dagster_evals_latency_s"
RUN_KEY = "dagster_evals_run"
RESERVED_KEYS = frozenset(
    {
        ROW_ID_KEY,
        HASH_KEY,
        TAGS_KEY,
        RESULT_KEY,
        TRIAL_KEY,
        SCORES_KEY,
        SCORER_ERRORS_KEY,
        ERROR_KEY,
        LATENCY_KEY,
        RUN_KEY,
    }
)


class DatasetChangedError(DagsterEvalsError):
    """The dataset's rows no longer match the snapshot an eval was asked to run on."""


def version_of(digest: str) -> str:
    """The version id of a dataset whose rows have this digest."""
    return digest[:16]


def _json_safe(value: Any) -> Any:
    return json.loads(canonical_json(value))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _split_report_id(report_id: str) -> tuple[str, str | None]:
    dataset_id, _, run_id = report_id.partition(":")
    return dataset_id, run_id or None


T = TypeVar("T")
_STATUS = {"pending": "pending", "running": "running", "completed": "completed"}


class KeywordsAIPlatform(EvalPlatform):
    """`EvalPlatform` on the Keywords AI REST API. Build it with `KeywordsAIResource` or `connect()`."""

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
    ) -> None:
        if batch_size < 1 or page_size < 1:
            raise ConfigError(
                f"batch_size and page_size must be at least 1, got {batch_size} and {page_size}"
            )
        if max_request_bytes < 1024:
            raise ConfigError(f"max_request_bytes must be at least 1024, got {max_request_bytes}")
        self.client = client
        self.batch_size = batch_size
        self.max_request_bytes = max_request_bytes
        self.page_size = min(page_size, MAX_PAGE_SIZE)
        self.app_url = app_url.rstrip("/")
        self.eval_poll_interval_s = eval_poll_interval_s
        self.eval_poll_max_interval_s = eval_poll_max_interval_s
        self.eval_timeout_s = eval_timeout_s
        self.max_batch_attempts = max_batch_attempts
        # Row ids read from logs that dagster-evals did not write (their id is the log's unique_id).
        self._foreign_ids: dict[str, set[str]] = {}
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

    # -- datasets -------------------------------------------------------------------------------------
    def find_dataset(self, name: str) -> DatasetRef | None:
        """The dataset called `name` (the oldest one if several share it), or None."""
        matches = [d for d in self.client.iter_datasets(page_size=self.page_size) if d.name == name]
        if not matches:
            return None
        oldest = min(matches, key=lambda d: (d.created_at is None, d.created_at or datetime.min, d.id))
        return self._ref(oldest.id, oldest.name)

    def ensure_dataset(
        self, name: str, *, project: str | None = None, description: str | None = None
    ) -> DatasetRef:
        """Find the dataset by name or create it empty (`project` is ignored: datasets belong to the
        organization of the API key)."""
        if not name:
            raise ConfigError("a dataset needs a non-empty name")
        found = self.find_dataset(name)
        if found is not None:
            if description is not None:
                self.client.update_dataset(found.id, description=description)
            return found
        request = CreateDatasetRequest(name=name, description=description, is_empty=True)
        try:
            created = self.client.create_dataset(request)
        except PlatformError as exc:
            # The create may have landed before the connection broke: look again before giving up.
            if exc.status is not None and exc.status < 500:
                raise
            found = self.find_dataset(name)
            if found is None:
                raise
            return found
        return self._ref(created.id, created.name)

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
        `end_time` that match `filters` (e.g. `where("metadata.env", "", "prod")`). The server may fill it
        in the background."""
        created = self.client.create_dataset(
            CreateDatasetRequest(
                name=name,
                description=description,
                is_empty=False,
                start_time=start_time,
                end_time=end_time,
                initial_log_filters=dict(filters) if filters else None,
                sampling=sampling_percentage,
            )
        )
        return self._ref(created.id, created.name)

    def import_request_logs(
        self,
        dataset: DatasetRef,
        *,
        start_time: datetime,
        end_time: datetime,
        filters: Mapping[str, Any] | None = None,
        sampling_percentage: int | None = None,
    ) -> dict[str, Any]:
        """Add request logs from a time range (filtered, sampled) to an existing dataset."""
        return self.client.import_request_logs(
            dataset.id,
            ImportLogsRequest(
                start_time=start_time,
                end_time=end_time,
                filters=dict(filters) if filters else None,
                sampling_percentage=sampling_percentage,
            ),
        )

    def update_dataset(
        self, dataset: DatasetRef, *, name: str | None = None, description: str | None = None
    ) -> DatasetRef:
        """Rename a dataset and/or change its description (PATCH)."""
        updated = self.client.update_dataset(dataset.id, name=name, description=description)
        return self._ref(updated.id, updated.name)

    def delete_dataset(self, dataset: DatasetRef) -> None:
        """Delete the dataset and its logs."""
        self.client.delete_dataset(dataset.id)

    def delete_logs_where(self, dataset: DatasetRef, filters: Mapping[str, Any]) -> dict[str, Any]:
        """Delete the dataset's logs matching `filters`."""
        return self.client.delete_dataset_logs(dataset.id, filters=filters)

    def list_evaluators(self, *, search: str | None = None) -> list[Evaluator]:
        """Evaluators of the organization; their `evaluator_slug` is what `PlatformFunction.name` takes."""
        if search:
            return list(self.client.list_evaluators(search=search).results)
        return list(self.client.iter_evaluators(page_size=self.page_size))

    def iter_request_logs(
        self, filters: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[RequestLog]:
        """Stream request logs matching `filters`."""
        return self.client.iter_request_logs(filters=filters, **kwargs)

    def list_eval_runs(self, dataset: DatasetRef) -> list[EvalReportRun]:
        """Eval reports run on a dataset, newest first."""
        return list(self.client.iter_eval_reports(dataset.id, page_size=self.page_size))

    # -- rows -----------------------------------------------------------------------------------------
    def _row_from_log(self, log: DatasetLog) -> DatasetRow:
        metadata = dict(log.metadata or {})
        row_id = metadata.pop(ROW_ID_KEY, None)
        stored_hash = metadata.pop(HASH_KEY, None)
        tags = metadata.pop(TAGS_KEY, None) or []
        for key in RESERVED_KEYS:
            metadata.pop(key, None)
        if row_id is None:
            row_id = log.unique_id or log.id
            if log.dataset_id:
                self._foreign_ids.setdefault(log.dataset_id, set()).add(str(row_id))
        digest = stored_hash or content_hash(log.input, log.expected_output, metadata, list(tags))
        return DatasetRow(
            id=str(row_id),
            input=log.input,
            expected=log.expected_output,
            metadata=metadata,
            tags=list(tags),
            content_hash=str(digest),
        )

    @staticmethod
    def _log_from_row(row: DatasetRow) -> DatasetLogInput:
        clash = sorted(RESERVED_KEYS & set(row.metadata))
        if clash:
            raise InputError(
                f"row {row.id!r}: metadata field {clash[0]!r} is reserved by dagster-evals on Keywords AI; "
                "rename it in the source"
            )
        metadata = {**_json_safe(row.metadata), ROW_ID_KEY: row.id, HASH_KEY: row.content_hash}
        if row.tags:
            metadata[TAGS_KEY] = list(row.tags)
        return DatasetLogInput(
            input=_json_safe(row.input),
            output=None,
            expected_output=_json_safe(row.expected),
            metadata=metadata,
        )

    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        """Stream the dataset's rows. With `version`, raise `DatasetChangedError` at the end of the stream
        when the rows read do not have that version (the server keeps no older versions)."""
        pairs: list[tuple[str, str]] = []
        for log in self.client.iter_dataset_logs(dataset.id, page_size=self.page_size):
            row = self._row_from_log(log)
            if version is not None:
                pairs.append((row.id, row.content_hash))
            yield row
        if version is not None:
            _, digest = rows_digest(DatasetRow(id=i, input=None, content_hash=h) for i, h in pairs)
            if version_of(digest) != version:
                raise DatasetChangedError(
                    f"dataset {dataset.name!r} on Keywords AI is at version {version_of(digest)}, not {version}: "
                    "its rows changed and Keywords AI keeps no older versions"
                )

    def count_rows(self, dataset: DatasetRef, *, version: str | None = None) -> int:
        """Number of logs in the dataset (one request; `version` is not checked)."""
        return self.client.count_dataset_logs(dataset.id)

    def current_version(self, dataset: DatasetRef) -> str:
        """The digest-derived version of the dataset's current rows (reads every row)."""
        _, digest = rows_digest(self.iter_rows(dataset))
        return version_of(digest)

    def snapshot(self, dataset: DatasetRef) -> Snapshot:
        count, digest = rows_digest(self.iter_rows(dataset))
        return Snapshot(dataset=dataset, version=version_of(digest), row_count=count, digest=digest)

    def _delete_by_key(self, dataset_id: str, key: str, ids: Sequence[str]) -> int:
        requests = 0
        for chunk in _chunks(list(ids), DELETE_CHUNK):
            self.client.delete_dataset_logs(dataset_id, filters=where(f"metadata.{key}", "in", list(chunk)))
            requests += 1
        return requests

    def delete_rows(self, dataset: DatasetRef, row_ids: Collection[str]) -> None:
        ids = sorted(set(row_ids))
        if not ids:
            return
        foreign = self._foreign_ids.get(dataset.id, set())
        self._delete_by_key(dataset.id, ROW_ID_KEY, [i for i in ids if i not in foreign])
        for chunk in _chunks([i for i in ids if i in foreign], DELETE_CHUNK):
            self.client.delete_dataset_logs(dataset.id, filters=where("unique_id", "in", list(chunk)))

    def delete_all_rows(self, dataset: DatasetRef) -> None:
        self.client.delete_dataset_logs(dataset.id, delete_all=True)

    def _write_batch(
        self, dataset_id: str, logs: Sequence[DatasetLogInput], key: str, ids: Sequence[str]
    ) -> int:
        """Bulk-insert one batch; after an ambiguous failure delete what landed, then send it again.

        Returns the number of requests it took.
        """
        requests = 0
        attempt = throttled = 0
        while True:
            attempt += 1
            requests += 1
            try:
                result = self.client.bulk_create_dataset_logs(dataset_id, logs)
            except RateLimitedError:
                # Throttled before the server did anything: send the same batch again after a pause (the
                # pacer also waits out the server's retry_after).
                throttled += 1
                if throttled > max(self.max_batch_attempts, self.http.retry.max_retries) * 2:
                    raise
                attempt -= 1
                time.sleep(self.http.retry.backoff(min(throttled - 1, 6), None, self._rng))
                continue
            except PlatformError as exc:
                retryable = exc.status is None or exc.status >= 500 or exc.status in (408, 425)
                if not retryable or attempt >= self.max_batch_attempts:
                    raise
                time.sleep(self.http.retry.backoff(attempt - 1, None, self._rng))
                requests += self._delete_by_key(dataset_id, key, ids)
                continue
            if result.error_count:
                details = "; ".join(
                    f"row {ids[e['index']]!r}: {e.get('detail')}"
                    for e in result.errors[:5]
                    if isinstance(e.get("index"), int) and e["index"] < len(ids)
                )
                raise InputError(
                    f"Keywords AI rejected {result.error_count} of {len(logs)} rows in a batch"
                    + (f": {details}" if details else "")
                )
            if result.success_count != len(logs):
                raise CountMismatchError(
                    f"Keywords AI created {result.success_count} of {len(logs)} logs in a batch",
                    metadata={"sent": len(logs), "created": result.success_count},
                )
            return requests

    def _batches(self, rows: Sequence[DatasetRow], logs: Sequence[DatasetLogInput]) -> list[tuple[int, int]]:
        """`(start, end)` index ranges of the bulk requests; fails naming a row too big for any request."""
        overhead = len(b'{"logs": []}')
        batches: list[tuple[int, int]] = []
        start, size = 0, overhead
        for index, (row, log) in enumerate(zip(rows, logs, strict=True)):
            encoded = len(json.dumps(log.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")) + 2
            if overhead + encoded > self.max_request_bytes:
                raise InputError(
                    f"row {row.id!r} is {encoded} bytes once encoded, more than the {self.max_request_bytes} "
                    "bytes sent to Keywords AI in one request (max_request_bytes); shorten the row"
                )
            if index > start and (
                index - start >= self.batch_size or size + encoded > self.max_request_bytes
            ):
                batches.append((start, index))
                start, size = index, overhead
            size += encoded
        if start < len(rows):
            batches.append((start, len(rows)))
        return batches

    def upsert_rows(
        self,
        dataset: DatasetRef,
        rows: Sequence[DatasetRow],
        *,
        replace: Collection[str] = (),
        progress: ProgressFn = _quiet,
    ) -> int:
        """Delete the `replace` ids by metadata filter, then bulk-insert `rows` in batches of at most
        `batch_size` rows and `max_request_bytes` bytes. Every row is checked before the first request, so
        a row too big for one request fails the sync before anything is deleted or written."""
        logs = [self._log_from_row(row) for row in rows]
        batches = self._batches(rows, logs)
        requests = 0
        if replace:
            before = self.http.requests_sent
            self.delete_rows(dataset, replace)
            requests += self.http.requests_sent - before
        started = time.monotonic()
        done = 0
        for start, end in batches:
            requests += self._write_batch(
                dataset.id, logs[start:end], ROW_ID_KEY, [r.id for r in rows[start:end]]
            )
            done += end - start
            elapsed = time.monotonic() - started
            eta = elapsed / done * (len(rows) - done)
            progress(f"wrote {done}/{len(rows)} rows to Keywords AI ({elapsed:.1f}s elapsed, ETA {eta:.1f}s)")
        return requests

    # -- evals ----------------------------------------------------------------------------------------
    @staticmethod
    def _split_scorers(specs: Iterable[Any]) -> tuple[list[str], list[Scorer]]:
        slugs: list[str] = []
        local: list[Any] = []
        for spec in specs:
            if isinstance(spec, PlatformFunction):
                if spec.platform != "keywordsai":
                    raise ConfigError(
                        f"scorer {spec.name!r} runs on {spec.platform}; it cannot run on Keywords AI"
                    )
                slugs.append(spec.name)
            else:
                local.append(spec)
        scorers = resolve_local_scorers(local)
        clash = sorted({s.name for s in scorers} & set(slugs))
        if clash or len(set(slugs)) != len(slugs):
            raise ConfigError(
                f"two scorers share the name(s) {', '.join(clash or slugs)}; give each a unique name"
            )
        return slugs, scorers

    def _check_snapshot(self, snapshot: Snapshot, progress: ProgressFn) -> None:
        count, digest = rows_digest(self.iter_rows(snapshot.dataset))
        if digest != snapshot.digest:
            raise DatasetChangedError(
                f"dataset {snapshot.dataset.name!r} on Keywords AI changed since snapshot {snapshot.version} "
                f"was taken ({snapshot.row_count} rows then, {count} now, version {version_of(digest)}): "
                "materialize the dataset snapshot again before running the eval",
                metadata={"snapshot_version": snapshot.version, "current_version": version_of(digest)},
            )
        progress(
            f"dataset {snapshot.dataset.name!r} still matches snapshot {snapshot.version} ({count} rows)"
        )

    def _create_once(self, create: Callable[[], T], find: Callable[[], T | None]) -> T:
        """Send a create request (not safe to repeat) so that it takes effect at most once.

        After an ambiguous failure (no response, 5xx, a cut-off body) the request may have landed: `find`
        looks for what it would have created, and only if nothing is there is the request sent again.
        """
        attempt = 0
        while True:
            try:
                return create()
            except PlatformError as exc:
                if (exc.status is not None and exc.status < 500) or attempt >= self.http.retry.max_retries:
                    raise
                found = find()
                if found is not None:
                    return found
                attempt += 1
                time.sleep(self.http.retry.backoff(attempt - 1, None, self._rng))

    def wait_for_eval_report(
        self, dataset_id: str, report_id: str, *, progress: ProgressFn = _quiet
    ) -> EvalReportRun:
        """Poll an eval report (via the eval runs list) with backoff until it finishes or times out."""
        deadline = time.monotonic() + self.eval_timeout_s
        interval = self.eval_poll_interval_s
        last_status = None
        while True:
            run = self.client.find_eval_report(dataset_id, report_id)
            if run is None:
                raise NotFoundError(
                    "keywordsai",
                    404,
                    "GET",
                    f"/api/datasets/{dataset_id}/eval-reports/list/",
                    f"eval report {report_id} is not among the dataset's eval runs",
                )
            if run.finished:
                return run
            if run.status != last_status:
                progress(f"eval report {report_id} on Keywords AI is {run.status}")
                last_status = run.status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DagsterEvalsError(
                    f"eval report {report_id} on Keywords AI is still {run.status} after {self.eval_timeout_s:.0f}s; "
                    f"raise eval_timeout_s, or fetch it later with get_eval_report('{dataset_id}:{report_id}')",
                    metadata={"report_id": f"{dataset_id}:{report_id}", "status": run.status},
                )
            time.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.eval_poll_max_interval_s)

    def _start_and_wait(
        self, dataset_id: str, slugs: list[str], progress: ProgressFn
    ) -> EvalReportRun | None:
        if not slugs:
            return None
        before = {r.id for r in self.client.iter_eval_reports(dataset_id, page_size=self.page_size)}

        def started_by_us() -> EvalReportRun | None:
            reports = self.client.iter_eval_reports(dataset_id, page_size=self.page_size)
            return next((r for r in reports if r.id not in before and r.evaluator_slugs == slugs), None)

        created = self._create_once(lambda: self.client.create_eval_report(dataset_id, slugs), started_by_us)
        progress(f"started eval report {created.id} with evaluators {', '.join(slugs)}")
        run = self.wait_for_eval_report(dataset_id, created.id, progress=progress)
        if run.status != "completed":
            raise DagsterEvalsError(
                f"eval report {run.id} on Keywords AI ended {run.status}: {json.dumps(run.results)[:300]}",
                metadata={"report_id": f"{dataset_id}:{run.id}", "status": run.status},
            )
        return run

    @staticmethod
    def _row_result(
        log: DatasetLog, slugs: Sequence[str], local: Mapping[str, Any] | None = None
    ) -> RowResult:
        metadata = log.metadata or {}
        error = metadata.get(ERROR_KEY)
        scores: dict[str, float | None] = dict((local or {}).get("scores") or metadata.get(SCORES_KEY) or {})
        scorer_errors = dict((local or {}).get("errors") or metadata.get(SCORER_ERRORS_KEY) or {})
        if error is None:
            for score in log.scores or []:
                if score.evaluator_slug in slugs:
                    scores[score.evaluator_slug] = score.as_float()
        latency = metadata.get(LATENCY_KEY)
        return RowResult(
            row_id=str(metadata.get(ROW_ID_KEY) or log.unique_id or log.id),
            trial=int(metadata.get(TRIAL_KEY) or 0),
            scores=scores,
            scorer_errors=scorer_errors,
            error=error,
            latency_s=float(latency) if isinstance(latency, int | float) else None,
        )

    @staticmethod
    def _fill_from_results(report: EvalReport, run: EvalReportRun | None, slugs: Sequence[str]) -> EvalReport:
        """Use the report's own averages for evaluators whose scores were not visible on the logs."""
        if run is None:
            return report
        scores = dict(report.scores)
        for slug in slugs:
            average = run.average(slug)
            if (
                average is not None
                and scores.get(slug, ScoreSummary(name=slug, mean=None, count=0)).mean is None
            ):
                entry = (run.results or {}).get(slug)
                count = entry.get("scored_logs", 0) if isinstance(entry, Mapping) else 0
                scores[slug] = ScoreSummary(name=slug, mean=average, count=int(count or 0))
        return report.model_copy(update={"scores": scores})

    def _apply_baseline(self, report: EvalReport, baseline: EvalReport | None) -> EvalReport:
        """Mean-level baseline comparison for scorers the row-level comparison could not cover."""
        if baseline is None:
            return report
        scores = {}
        for name, summary in report.scores.items():
            base = baseline.scores.get(name)
            if summary.baseline_mean is None and base is not None and base.mean is not None:
                diff = summary.mean - base.mean if summary.mean is not None else None
                summary = summary.model_copy(update={"baseline_mean": base.mean, "diff": diff})
            scores[name] = summary
        return report.model_copy(update={"scores": scores, "baseline_name": baseline.name})

    def _check_evaluators(self, slugs: Sequence[str]) -> None:
        """Fail before anything is written when an evaluator slug is unknown to the organization."""
        if not slugs:
            return
        known = {e.evaluator_slug for e in self.client.iter_evaluators(page_size=self.page_size)}
        missing = [slug for slug in slugs if slug not in known]
        if missing:
            raise ConfigError(
                f"Keywords AI has no evaluator {', '.join(map(repr, missing))}; the organization's evaluators "
                f"are {', '.join(sorted(known)) or 'none'}: fix the PlatformFunction name, or create the "
                "evaluator in Keywords AI"
            )

    def run_eval(self, request: EvalRequest, *, progress: ProgressFn = _quiet) -> EvalReport:
        slugs, scorers = self._split_scorers(request.scorers)
        self._check_evaluators(slugs)
        try:
            self._check_snapshot(request.snapshot, progress)
        except NotFoundError as exc:
            raise pinned_dataset_gone(exc, request.snapshot.dataset.name) from None
        baseline = baseline_rows = None
        if request.baseline_id:
            baseline = self.get_eval_report(request.baseline_id)
            baseline_rows = self.report_row_scores(request.baseline_id) or None
        task = request.task
        if task is None or (
            isinstance(task, PlatformFunction)
            and task.platform == "keywordsai"
            and task.name in EXISTING_OUTPUT_TASKS
        ):
            report = self._eval_existing_logs(request, slugs, scorers, baseline_rows, progress)
        elif isinstance(task, PlatformFunction):
            raise ConfigError(
                f"task {task.name!r} runs on {task.platform}: Keywords AI runs evaluators, not tasks; pass a Python "
                "callable, or task=None to evaluate the outputs already in the dataset's logs"
            )
        else:
            report = self._eval_local_task(request, slugs, scorers, baseline_rows, progress)
        return self._apply_baseline(report, baseline)

    def _eval_local_task(
        self,
        request: EvalRequest,
        slugs: list[str],
        scorers: list[Scorer],
        baseline_rows: Mapping[str, Mapping[str, float]] | None,
        progress: ProgressFn,
    ) -> EvalReport:
        snapshot = request.snapshot
        started = time.monotonic()
        create = CreateDatasetRequest(
            name=request.name,
            description=(
                f"dagster-evals eval run {request.name!r} over dataset {snapshot.dataset.name!r} "
                f"version {snapshot.version}"
            ),
            is_empty=True,
        )
        eval_dataset = self._create_once(
            lambda: self.client.create_dataset(create),
            lambda: self.find_dataset(request.name),  # the run's name is unique per run
        )
        run_info = {
            "name": request.name,
            "source_dataset_id": snapshot.dataset.id,
            "source_dataset_name": snapshot.dataset.name,
            "dataset_version": snapshot.version,
            "rows_in_snapshot": snapshot.row_count,
            "trial_count": request.trial_count,
            "scorers": [s.name for s in scorers],
            "evaluators": slugs,
        }
        progress(f"writing outputs to eval dataset {eval_dataset.id} ({request.name!r})")
        pending: list[tuple[str, DatasetLogInput]] = []
        total = snapshot.row_count * request.trial_count
        written = {"n": 0}

        def flush() -> None:
            if not pending:
                return
            batch = list(pending)
            pending.clear()
            self._write_batch(
                eval_dataset.id, [log for _, log in batch], RESULT_KEY, [key for key, _ in batch]
            )
            written["n"] += len(batch)
            progress(f"wrote {written['n']}/{total} results to Keywords AI")

        def on_result(result: RowResult) -> None:
            key = f"{result.row_id}#{result.trial}"
            metadata: dict[str, Any] = {
                **_json_safe(result.metadata),
                ROW_ID_KEY: result.row_id,
                RESULT_KEY: key,
                TRIAL_KEY: result.trial,
                SCORES_KEY: result.scores,
                RUN_KEY: run_info,
            }
            if result.scorer_errors:
                metadata[SCORER_ERRORS_KEY] = result.scorer_errors
            if result.error is not None:
                metadata[ERROR_KEY] = result.error
            if result.latency_s is not None:
                metadata[LATENCY_KEY] = round(result.latency_s, 6)
            log = DatasetLogInput(
                input=_json_safe(result.input),
                output=_json_safe(result.output),
                expected_output=_json_safe(result.expected),
                metadata=metadata,
                metrics={"latency": round(result.latency_s or 0.0, 6)},
            )
            pending.append((key, log))
            if len(pending) >= self.batch_size:
                flush()

        stats = run_request_locally(request, self.iter_rows(snapshot.dataset), scorers, on_result)
        flush()
        present = self.client.count_dataset_logs(eval_dataset.id)
        if present != stats.pairs:
            raise CountMismatchError(
                f"eval dataset {eval_dataset.id} holds {present} results, but {stats.pairs} were written",
                metadata={"results_written": stats.pairs, "results_on_platform": present},
            )
        run = self._start_and_wait(eval_dataset.id, slugs, progress)
        report_id = f"{eval_dataset.id}:{run.id}" if run else eval_dataset.id
        builder = ReportBuilder([*run_info["scorers"], *slugs])
        for log in self.client.iter_dataset_logs(eval_dataset.id, page_size=self.page_size):
            builder.add(self._row_result(log, slugs))
        report = builder.build_for(
            request,
            id=report_id,
            platform="keywordsai",
            duration_s=time.monotonic() - started,
            baseline_row_scores=baseline_rows,
            url=self.dataset_url(eval_dataset.id),
            project_url=self.dataset_url(snapshot.dataset.id),
            metadata={
                **request.metadata,
                "eval_dataset_id": eval_dataset.id,
                "keywordsai_report_id": run.id if run else "",
            },
        )
        return self._fill_from_results(report, run, slugs)

    def _eval_existing_logs(
        self,
        request: EvalRequest,
        slugs: list[str],
        scorers: list[Scorer],
        baseline_rows: Mapping[str, Mapping[str, float]] | None,
        progress: ProgressFn,
    ) -> EvalReport:
        snapshot = request.snapshot
        started = time.monotonic()
        run = self._start_and_wait(snapshot.dataset.id, slugs, progress)
        builder = ReportBuilder([*(s.name for s in scorers), *slugs])
        for log in self.client.iter_dataset_logs(snapshot.dataset.id, page_size=self.page_size):
            local_scores: dict[str, float | None] = {}
            local_errors: dict[str, str] = {}
            expected = log.expected_output
            metadata = {k: v for k, v in (log.metadata or {}).items() if k not in RESERVED_KEYS}
            for scorer in scorers:
                try:
                    if scorer.is_async:
                        value = run_coroutine(scorer.score_async(log.input, log.output, expected, metadata))
                    else:
                        value = scorer.score(log.input, log.output, expected, metadata)
                    local_scores[scorer.name] = value
                except Exception as exc:
                    local_errors[scorer.name] = f"{type(exc).__name__}: {exc}"[:2000]
            builder.add(self._row_result(log, slugs, {"scores": local_scores, "errors": local_errors}))
        report_id = f"{snapshot.dataset.id}:{run.id}" if run else snapshot.dataset.id
        report = builder.build_for(
            request,
            id=report_id,
            platform="keywordsai",
            trial_count=1,
            duration_s=time.monotonic() - started,
            baseline_row_scores=baseline_rows,
            url=self.dataset_url(snapshot.dataset.id),
            metadata={**request.metadata, "keywordsai_report_id": run.id if run else ""},
        )
        return self._fill_from_results(report, run, slugs)

    def _eval_dataset_logs(self, dataset_id: str) -> tuple[dict[str, Any] | None, Iterator[DatasetLog]]:
        """The run info of a dataset dedicated to one eval run (None for other datasets), and its logs."""
        logs = self.client.iter_dataset_logs(dataset_id, page_size=self.page_size)
        first = next(logs, None)
        if first is None:
            return None, iter(())
        info = (first.metadata or {}).get(RUN_KEY)

        def chained() -> Iterator[DatasetLog]:
            yield first
            yield from logs

        return (info if isinstance(info, dict) else None), chained()

    def get_eval_report(self, report_id: str) -> EvalReport:
        """Rebuild a report from Keywords AI: the eval run's status and scores, and for runs of a Python
        task the results stored on the run's dataset (local scores, errors, per-row evaluator scores)."""
        dataset_id, run_id = _split_report_id(report_id)
        dataset = self.client.get_dataset(dataset_id)
        run = None
        if run_id is not None:
            run = self.client.find_eval_report(dataset_id, run_id)
            if run is None:
                raise NotFoundError(
                    "keywordsai",
                    404,
                    "GET",
                    f"/api/datasets/{dataset_id}/eval-reports/list/",
                    f"eval report {run_id} is not among the eval runs of dataset {dataset_id}",
                )
        slugs = list(run.evaluator_slugs) if run else []
        status = _STATUS.get(run.status, "failed") if run else "completed"
        info, logs = self._eval_dataset_logs(dataset_id)
        if info is None:
            if run is None:
                raise NotFoundError(
                    "keywordsai", 404, "GET", f"/api/datasets/{dataset_id}/", "no eval report with this id"
                )
            count = dataset.log_count or 0
            scores = {}
            for slug in slugs:
                entry = (run.results or {}).get(slug)
                scored = entry.get("scored_logs", 0) if isinstance(entry, Mapping) else 0
                scores[slug] = ScoreSummary(name=slug, mean=run.average(slug), count=int(scored or 0))
            return EvalReport(
                id=report_id,
                name=f"{dataset.name} eval {run.id}",
                platform="keywordsai",
                status=status,
                dataset=self._ref(dataset.id, dataset.name),
                rows_in_snapshot=count,
                rows_scored=count if status == "completed" else 0,
                scores=scores,
                url=self.dataset_url(dataset.id),
                metadata={"keywordsai_report_id": run.id},
            )
        builder = ReportBuilder([*info.get("scorers", []), *slugs])
        for log in logs:
            builder.add(self._row_result(log, slugs))
        report = builder.build(
            id=report_id,
            name=str(info.get("name", dataset.name)),
            platform="keywordsai",
            dataset=self._ref(str(info.get("source_dataset_id")), str(info.get("source_dataset_name"))),
            dataset_version=info.get("dataset_version"),
            rows_in_snapshot=int(info.get("rows_in_snapshot", 0)),
            trial_count=int(info.get("trial_count", 1)),
            duration_s=0.0,
            url=self.dataset_url(dataset.id),
            project_url=self.dataset_url(str(info.get("source_dataset_id"))),
            metadata={"eval_dataset_id": dataset.id, "keywordsai_report_id": run.id if run else ""},
        )
        return self._fill_from_results(report.model_copy(update={"status": status}), run, slugs)

    def report_row_scores(self, report_id: str) -> dict[str, dict[str, float]]:
        """Per-row mean scores of a report run with a Python task (read from its dedicated dataset).

        Reports run over a dataset's existing logs (`task=None`) return {}: Keywords AI keeps one score per
        evaluator per log, so a later run on the same logs overwrites the earlier run's per-row scores.
        """
        dataset_id, run_id = _split_report_id(report_id)
        info, logs = self._eval_dataset_logs(dataset_id)
        if info is None:
            return {}
        slugs = list(info.get("evaluators", [])) if run_id else []
        builder = ReportBuilder([*info.get("scorers", []), *slugs])
        for log in logs:
            builder.add(self._row_result(log, slugs))
        return builder.row_means()

    # -- prompts --------------------------------------------------------------------------------------
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
        version count shows nothing newer than `newer_than[prompt_id]` is not listed (no request); with
        `latest_only`, a prompt missing from `newer_than` contributes its newest version, numbered from its
        version count (versions are numbered 1…n), without a request.
        """
        versions: list[PromptVersion] = []
        for prompt in self.client.iter_prompts(page_size=self.page_size):
            prompt_slug = prompt.prompt_slug or prompt.prompt_id
            if slug is not None and slug not in (prompt_slug, prompt.prompt_id, prompt.name):
                continue
            if prompt.commit_count == 0:
                continue
            known = (newer_than or {}).get(prompt.prompt_id)
            if (
                known is not None
                and known.isdigit()
                and prompt.commit_count is not None
                and prompt.commit_count <= int(known)
            ):
                continue
            if latest_only and known is None and prompt.commit_count:
                versions.append(
                    PromptVersion(
                        platform="keywordsai",
                        project=None,
                        prompt_id=prompt.prompt_id,
                        slug=prompt_slug,
                        version=str(prompt.commit_count),
                        created_at=prompt.updated_at,
                    )
                )
                continue
            for version in self.client.iter_prompt_versions(prompt.prompt_id, page_size=self.page_size):
                content = version.model_dump(
                    mode="json",
                    exclude_none=True,
                    exclude={"id", "prompt_version_id", "version", "created_at", "updated_at"},
                )
                versions.append(
                    PromptVersion(
                        platform="keywordsai",
                        project=None,
                        prompt_id=prompt.prompt_id,
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


class KeywordsAIResource(EvalPlatformResource):
    """Keywords AI (Respan): datasets of logs, evaluators, eval reports and prompts.

    Examples:
        .. code-block:: python

            import dagster as dg
            from dagster_evals import KeywordsAIResource

            defs = dg.Definitions(
                resources={"evals": KeywordsAIResource(api_key=dg.EnvVar("KEYWORDSAI_API_KEY"))}
            )
    """

    api_key: str = Field(
        description="Keywords AI API key; pass dg.EnvVar('KEYWORDSAI_API_KEY').",
        json_schema_extra={"dagster__is_secret": True},
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="API base URL (Respan: https://api.respan.ai; a fake server in tests).",
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
    eval_poll_interval_s: float = Field(default=2.0, description="First wait between eval report polls.")
    eval_timeout_s: float = Field(default=1800.0, description="Longest wait for an eval report to finish.")

    def get_platform(self) -> KeywordsAIPlatform:
        return cast(KeywordsAIPlatform, super().get_platform())

    def connect(self) -> KeywordsAIPlatform:
        return KeywordsAIPlatform.connect(
            self.api_key,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base_s=self.backoff_base_s),
            rate_limit_per_minute=self.rate_limit_per_minute,
            app_url=self.app_url,
            batch_size=self.batch_size,
            max_request_bytes=self.max_request_bytes,
            page_size=self.page_size,
            eval_poll_interval_s=self.eval_poll_interval_s,
            eval_timeout_s=self.eval_timeout_s,
        )
