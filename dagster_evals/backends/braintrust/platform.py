"""Braintrust as an `EvalPlatform`: datasets, pinned versions, experiments, `/v1/eval` and prompts.

- Datasets live in a project (created on first use). Rows are inserted with their own ids, so a retried or
  repeated insert replaces rows instead of duplicating them; removed rows get `_object_delete`.
- A version is a Braintrust transaction id (`_xact_id`): reading with `version=` returns the dataset exactly
  as it was then. Because a delete is a transaction too, every delete is followed by a no-op merge of one
  remaining row, so the newest live row always carries the head transaction id.
- `run_eval` with a `PlatformFunction` task launches `POST /v1/eval` over the pinned dataset version; with a
  Python callable it runs locally and records the rows as an experiment (pinned to the dataset version,
  compared with the baseline experiment).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import Field, ValidationError

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource, ProgressFn, _quiet
from dagster_evals.backends.braintrust import models as api
from dagster_evals.errors import (
    ConfigError,
    CountMismatchError,
    InputError,
    NotFoundError,
    PlatformError,
    pinned_dataset_gone,
)
from dagster_evals.git import repo_info
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
    content_hash,
)
from dagster_evals.runner import run_request_locally
from dagster_evals.scorers import resolve_local_scorers
from dagster_evals.summary import ReportBuilder

logger = logging.getLogger("dagster_evals.braintrust")

DEFAULT_PROJECT = "dagster-evals"
DEFAULT_INSERT_BATCH_SIZE = 1000
DEFAULT_INSERT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_REQUEST_CONCURRENCY = 4
EMPTY_VERSION = "0"


def git_repo_info(cwd: str | Path | None = None) -> api.RepoInfo | None:
    """The git state of `cwd` as Braintrust `repo_info`, or None outside a repository."""
    info = repo_info(cwd)
    return api.RepoInfo(**info) if info else None


def function_ref(fn: PlatformFunction) -> api.FunctionRef:
    """The Braintrust function reference in a `PlatformFunction`'s spec (any of the seven forms)."""
    if fn.platform != "braintrust":
        raise ConfigError(f"function {fn.name!r} runs on {fn.platform}, not on braintrust")
    errors = []
    for model in (
        api.FunctionIdRef,
        api.ProjectSlugRef,
        api.GlobalFunctionRef,
        api.PromptSessionRef,
        api.InlineCodeRef,
        api.InlineFunctionRef,
        api.InlinePromptRef,
    ):
        try:
            return model.model_validate(fn.spec)
        except ValidationError as exc:
            errors.append(f"{model.__name__}: {exc.error_count()} error(s)")
    raise ConfigError(
        f"function {fn.name!r}: spec {sorted(fn.spec)} is not a Braintrust function reference; use one of "
        "function_id, project_name+slug, global_function, prompt_session_id+prompt_session_function_id, "
        "inline_context+code, inline_function, inline_prompt"
    )


class BraintrustPlatform(EvalPlatform):
    """`EvalPlatform` on the Braintrust REST API."""

    platform = "braintrust"

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = api.DEFAULT_API_URL,
        app_url: str = api.DEFAULT_APP_URL,
        org_name: str | None = None,
        project: str = DEFAULT_PROJECT,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        rate_limit_per_minute: float | None = None,
        insert_batch_size: int = DEFAULT_INSERT_BATCH_SIZE,
        insert_max_bytes: int = DEFAULT_INSERT_MAX_BYTES,
        request_concurrency: int = DEFAULT_REQUEST_CONCURRENCY,
        stream_evals: bool = False,
        collect_git: bool = True,
        transport: Any = None,
    ) -> None:
        if not api_key:
            raise ConfigError(f"no Braintrust API key: set the {api.ENV_API_KEY} environment variable")
        if insert_batch_size < 1 or insert_max_bytes < 1024 or request_concurrency < 1:
            raise ConfigError(
                "insert_batch_size and request_concurrency must be at least 1, insert_max_bytes at least 1024"
            )
        self.http = HttpClient(
            platform="braintrust",
            base_url=api_url,
            api_key=api_key,
            env_var=api.ENV_API_KEY,
            timeout_s=timeout_s,
            retry=retry,
            rate_limit_per_minute=rate_limit_per_minute,
            transport=transport,
        )
        self.client = api.BraintrustClient(self.http, org_name=org_name)
        self.app_url = app_url.rstrip("/")
        self.org_name = org_name
        self.default_project = project
        self.insert_batch_size = insert_batch_size
        self.insert_max_bytes = insert_max_bytes
        self.request_concurrency = request_concurrency
        self.stream_evals = stream_evals
        self.collect_git = collect_git
        self._projects: dict[str, api.Project] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"BraintrustPlatform(api_url={self.http.base_url!r}, project={self.default_project!r})"

    def close(self) -> None:
        self.client.close()

    @property
    def requests_sent(self) -> int:
        return self.http.requests_sent

    # -- projects ---------------------------------------------------------------------------------
    def project(self, name: str | None = None) -> api.Project:
        """The project called `name` (default: the configured one), created if missing."""
        name = name or self.default_project
        with self._lock:
            cached = self._projects.get(name)
        if cached is not None:
            return cached
        project = self.client.create_project(api.CreateProject(name=name))
        with self._lock:
            self._projects[name] = project
        return project

    # -- datasets ---------------------------------------------------------------------------------
    def ensure_dataset(
        self, name: str, *, project: str | None = None, description: str | None = None
    ) -> DatasetRef:
        if not name:
            raise ConfigError("a dataset needs a non-empty name")
        proj = self.project(project)
        extra = {"description": description} if description is not None else {}
        body = api.CreateDataset(project_id=proj.id, name=name, **extra)
        dataset = self.client.create_dataset(body)
        if description is not None and dataset.description != description:
            dataset = self.client.patch_dataset(dataset.id, api.PatchDataset(description=description))
        summary = self.client.summarize_dataset(dataset.id, summarize_data=False)
        return DatasetRef(
            platform="braintrust",
            id=dataset.id,
            name=dataset.name,
            project=proj.name,
            url=summary.dataset_url,
        )

    @staticmethod
    def _row(event: dict[str, Any]) -> DatasetRow:
        metadata = event.get("metadata") or {}
        tags = event.get("tags") or []
        return DatasetRow(
            id=event["id"],
            input=event.get("input"),
            expected=event.get("expected"),
            metadata=metadata,
            tags=tags,
            content_hash=content_hash(event.get("input"), event.get("expected"), metadata, tags),
        )

    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        if version == EMPTY_VERSION:
            return
        for event in self.client.iter_dataset_events(dataset.id, version=version):
            yield self._row(event)

    def count_rows(self, dataset: DatasetRef, *, version: str | None = None) -> int:
        if version is None:
            summary = self.client.summarize_dataset(dataset.id, summarize_data=True)
            if summary.data_summary is not None:
                return summary.data_summary.total_records
        return sum(1 for _ in self.iter_rows(dataset, version=version))

    def _check_size(self, row_id: str, encoded: bytes) -> None:
        if len(b'{"events":[]}') + len(encoded) > self.insert_max_bytes:
            raise InputError(
                f"row {row_id!r} is {len(encoded)} bytes once encoded, more than the {self.insert_max_bytes} "
                "bytes Braintrust accepts in one request (insert_max_bytes); shorten the row"
            )

    def _batches(self, events: Iterator[tuple[str, bytes]]) -> Iterator[tuple[list[str], bytes]]:
        """Group serialized events into request bodies within the row and byte limits."""
        overhead = len(b'{"events":[]}')
        ids: list[str] = []
        parts: list[bytes] = []
        size = overhead
        for row_id, encoded in events:
            self._check_size(row_id, encoded)
            if parts and (
                len(parts) >= self.insert_batch_size or size + len(encoded) + 1 > self.insert_max_bytes
            ):
                yield ids, b'{"events":[' + b",".join(parts) + b"]}"
                ids, parts, size = [], [], overhead
            ids.append(row_id)
            parts.append(encoded)
            size += len(encoded) + 1
        if parts:
            yield ids, b'{"events":[' + b",".join(parts) + b"]}"

    def _send_batches(
        self,
        path: str,
        events: Iterator[tuple[str, bytes]],
        *,
        total: int,
        progress: ProgressFn = _quiet,
        what: str = "rows",
    ) -> int:
        """POST the batches, up to `request_concurrency` at a time; returns the number of batches."""
        started = time.monotonic()
        sent = {"rows": 0, "batches": 0}

        def post(ids: list[str], body: bytes) -> int:
            response = self.client.insert_raw(path, body, idempotent=True)
            if len(response.row_ids) != len(ids):
                raise CountMismatchError(
                    f"Braintrust acknowledged {len(response.row_ids)} of {len(ids)} {what} sent to {path}"
                )
            return len(ids)

        with concurrent.futures.ThreadPoolExecutor(
            max_workers=self.request_concurrency, thread_name_prefix="braintrust-insert"
        ) as pool:
            pending: deque[concurrent.futures.Future[int]] = deque()

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    sent["rows"] += pending.popleft().result()
                    sent["batches"] += 1
                    if total > self.insert_batch_size:
                        elapsed = time.monotonic() - started
                        eta = elapsed / sent["rows"] * (total - sent["rows"]) if sent["rows"] else 0.0
                        progress(
                            f"sent {sent['rows']}/{total} {what} ({elapsed:.1f}s elapsed, ETA {eta:.1f}s)"
                        )

            try:
                for ids, body in self._batches(events):
                    pending.append(pool.submit(post, ids, body))
                    drain(self.request_concurrency * 2)
                drain(0)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return sent["batches"]

    @staticmethod
    def _encode(event: dict[str, Any]) -> bytes:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")

    def upsert_rows(
        self,
        dataset: DatasetRef,
        rows: Sequence[DatasetRow],
        *,
        replace: Collection[str] = (),
        progress: ProgressFn = _quiet,
    ) -> int:
        """Insert rows by id (a full replace of any row with the same id), batched and concurrent.

        Every row is size-checked before the first request, so a row too big for one request fails the sync
        before any row is written. The check encodes and drops each row; the send encodes again while it
        streams, so memory stays flat in the number of rows.
        """

        def event_of(row: DatasetRow) -> bytes:
            event: dict[str, Any] = {"id": row.id, "input": row.input, "metadata": row.metadata}
            if row.expected is not None:
                event["expected"] = row.expected
            event["tags"] = row.tags
            return self._encode(event)

        for row in rows:
            self._check_size(row.id, event_of(row))
        return self._send_batches(
            f"/v1/dataset/{dataset.id}/insert",
            ((row.id, event_of(row)) for row in rows),
            total=len(rows),
            progress=progress,
        )

    def delete_rows(self, dataset: DatasetRef, row_ids: Collection[str]) -> None:
        """Tombstone the rows (`_object_delete`), then move the head version past the delete."""
        ids = list(row_ids)
        if not ids:
            return
        path = f"/v1/dataset/{dataset.id}/insert"
        self._send_batches(
            path,
            ((i, self._encode({"id": i, "_object_delete": True})) for i in ids),
            total=len(ids),
            what="deletes",
        )
        self._touch_head(dataset)

    def _touch_head(self, dataset: DatasetRef) -> None:
        """Merge nothing into the newest live row: a new transaction that leaves every row as it was, so
        the newest live row's `_xact_id` is the dataset's head version again."""
        page = self.client.fetch_dataset(dataset.id, api.FetchEventsRequest(limit=1))
        if page.events:
            row_id = page.events[0]["id"]
            self.client.insert_dataset_events(dataset.id, [api.InsertDatasetEvent(id=row_id, is_merge=True)])

    def delete_all_rows(self, dataset: DatasetRef) -> None:
        self.delete_rows(dataset, [row.id for row in self.iter_rows(dataset)])

    def current_version(self, dataset: DatasetRef) -> str:
        """The head transaction id: the `_xact_id` of the newest live row ("0" for an empty dataset)."""
        page = self.client.fetch_dataset(dataset.id, api.FetchEventsRequest(limit=1))
        if not page.events:
            return EMPTY_VERSION
        return str(max(int(e["_xact_id"]) for e in page.events))

    # -- evals ------------------------------------------------------------------------------------
    def _repo_info(self, request: EvalRequest) -> api.RepoInfo | None:
        if request.repo_info is not None:
            return api.RepoInfo.model_validate(request.repo_info)
        return git_repo_info() if self.collect_git else None

    def run_eval(self, request: EvalRequest, *, progress: ProgressFn = _quiet) -> EvalReport:
        dataset = request.snapshot.dataset
        try:
            self.client.get_dataset(dataset.id)
        except NotFoundError as exc:
            raise pinned_dataset_gone(exc, dataset.name) from None
        if isinstance(request.task, PlatformFunction):
            return self._run_remote(request, progress)
        return self._run_local(request, progress)

    def _experiment_metadata(self, request: EvalRequest) -> dict[str, Any]:
        metadata = dict(request.metadata)
        if request.prompt is not None:
            metadata.setdefault("prompt_slug", request.prompt.slug)
            metadata.setdefault("prompt_version", request.prompt.version)
        return metadata

    def _once(
        self,
        create: Callable[[], Any],
        project: api.Project,
        name: str,
        endpoint: str,
        progress: ProgressFn,
    ) -> Any:
        """Send a request that creates the experiment `name` (unique per run), at most once in effect.

        After an ambiguous failure (no response, 5xx, a cut-off body) the request may have taken effect:
        the experiment is looked up by name and returned if it exists, else the request is sent again.
        An experiment found this way may still be filling; the report's counts show it.
        """
        attempt = 0
        while True:
            try:
                return create()
            except PlatformError as exc:
                ambiguous = exc.status is None or exc.status >= 500
                if not ambiguous or attempt >= self.http.retry.max_retries:
                    raise
                found = self.client.list_experiments(project_id=project.id, experiment_name=name)
                if found:
                    progress(f"{endpoint} failed ({exc}), but experiment {name!r} exists: using it")
                    return found[0]
                attempt += 1
                progress(f"{endpoint} failed ({exc}) before experiment {name!r} existed; sending it again")
                time.sleep(self.http.retry.backoff(attempt - 1, None, self._rng))

    def _run_remote(self, request: EvalRequest, progress: ProgressFn) -> EvalReport:
        scorers = []
        for scorer in request.scorers:
            if not isinstance(scorer, PlatformFunction):
                raise ConfigError(
                    "a Braintrust-side task needs Braintrust-side scorers: pass PlatformFunction scorers "
                    f"(got {type(scorer).__name__}), or run the task in Python"
                )
            scorers.append(function_ref(scorer))
        snapshot = request.snapshot
        project = self.project(snapshot.dataset.project)
        fields: dict[str, Any] = {
            "project_id": project.id,
            "data": api.DatasetIdData(dataset_id=snapshot.dataset.id, dataset_version=snapshot.version),
            "task": function_ref(request.task),
            "scores": scorers,
            "experiment_name": request.name,
            "metadata": self._experiment_metadata(request),
            "tags": list(request.tags),
            "trial_count": request.trial_count,
            "max_concurrency": request.max_concurrency,
            "stream": self.stream_evals,
        }
        if request.baseline_id:
            fields["base_experiment_id"] = request.baseline_id
        repo_info = self._repo_info(request)
        if repo_info is not None:
            fields["repo_info"] = repo_info
        body = api.RunEval(**fields)
        progress(f"launching Braintrust eval {request.name!r} over dataset version {snapshot.version}")
        launched = self._once(
            lambda: self.client.run_eval(body), project, request.name, "POST /v1/eval", progress
        )
        if isinstance(launched, api.Experiment):
            summary = self.client.summarize_experiment(
                launched.id, summarize_scores=True, comparison_experiment_id=request.baseline_id
            )
            return self._report(launched, summary, request.snapshot.row_count)
        summary = launched
        found = self.client.list_experiments(project_id=project.id, experiment_name=summary.experiment_name)
        if not found:
            raise NotFoundError(
                "braintrust",
                404,
                "GET",
                "/v1/experiment",
                f"the eval reported experiment {summary.experiment_name!r} but it is not listed",
            )
        return self._report(found[0], summary, request.snapshot.row_count)

    def _run_local(self, request: EvalRequest, progress: ProgressFn) -> EvalReport:
        scorers = resolve_local_scorers(request.scorers)
        snapshot = request.snapshot
        project = self.project(snapshot.dataset.project)
        baseline_name = None
        baseline_scores: dict[str, dict[str, float]] = {}
        if request.baseline_id:
            baseline_name = self.client.get_experiment(request.baseline_id).name
            baseline_scores = self.report_row_scores(request.baseline_id)
        fields = {
            "project_id": project.id,
            "name": request.name,
            "ensure_new": True,
            "dataset_id": snapshot.dataset.id,
            "dataset_version": snapshot.version,
            "metadata": self._experiment_metadata(request),
            "tags": list(request.tags),
        }
        if request.baseline_id:
            fields["base_exp_id"] = request.baseline_id
        repo_info = self._repo_info(request)
        if repo_info is not None:
            fields["repo_info"] = repo_info
        create = api.CreateExperiment(**fields)
        experiment: api.Experiment = self._once(
            lambda: self.client.create_experiment(create),
            project,
            request.name,
            "POST /v1/experiment",
            progress,
        )
        builder = ReportBuilder([s.name for s in scorers])
        encoded: deque[tuple[str, bytes]] = deque()
        total = snapshot.row_count * request.trial_count
        counts = {"sent": 0}
        lock = threading.Lock()
        path = f"/v1/experiment/{experiment.id}/insert"

        def flush(force: bool) -> None:
            while encoded and (force or len(encoded) >= self.insert_batch_size):
                batch = [encoded.popleft() for _ in range(min(self.insert_batch_size, len(encoded)))]
                self._send_batches(path, iter(batch), total=len(batch), what="results")
                counts["sent"] += len(batch)
                progress(f"recorded {counts['sent']}/{total} row trials in experiment {experiment.name!r}")

        def on_result(result: RowResult) -> None:
            with lock:
                builder.add(result)
                encoded.append((result.row_id, self._encode(self._result_event(result, snapshot.dataset.id))))
                flush(False)

        stats = run_request_locally(
            request, self.iter_rows(snapshot.dataset, version=snapshot.version), scorers, on_result
        )
        flush(True)
        if counts["sent"] != stats.pairs:
            raise CountMismatchError(
                f"experiment {experiment.name!r}: {stats.pairs} row trials ran but {counts['sent']} were recorded"
            )
        summary = self.client.summarize_experiment(
            experiment.id, summarize_scores=True, comparison_experiment_id=request.baseline_id
        )
        report = builder.build_for(
            request,
            id=experiment.id,
            name=experiment.name,
            platform="braintrust",
            duration_s=stats.duration_s,
            baseline_name=baseline_name,
            baseline_row_scores=baseline_scores or None,
            url=summary.experiment_url,
            project_url=summary.project_url,
        )
        return report.model_copy(
            update={"scores": self._merge_scores(report.scores, summary, bool(request.baseline_id))}
        )

    @staticmethod
    def _merge_scores(
        local: dict[str, ScoreSummary], summary: api.ExperimentSummary, compared: bool
    ) -> dict[str, ScoreSummary]:
        """Per-scorer numbers as Braintrust reports them (mean, diff, improvements, regressions)."""
        merged = dict(local)
        for name, remote in (summary.scores or {}).items():
            base = merged.get(name) or ScoreSummary(name=name, mean=None, count=0)
            update: dict[str, Any] = {"mean": remote.score}
            if compared and remote.diff is not None:
                update.update(
                    diff=remote.diff,
                    baseline_mean=remote.score - remote.diff,
                    improvements=remote.improvements,
                    regressions=remote.regressions,
                )
            merged[name] = base.model_copy(update=update)
        return merged

    @staticmethod
    def _result_event(result: RowResult, dataset_id: str) -> dict[str, Any]:
        end = time.time()
        event: dict[str, Any] = {
            "id": f"{result.row_id}:{result.trial}",
            "input": result.input,
            "output": result.output,
            "expected": result.expected,
            "scores": {**result.scores, **dict.fromkeys(result.scorer_errors)},
            "metadata": {
                **result.metadata,
                "row_id": result.row_id,
                "trial": result.trial,
                **({"scorer_errors": result.scorer_errors} if result.scorer_errors else {}),
            },
            "origin": {"object_type": "dataset", "object_id": dataset_id, "id": result.row_id},
            "span_attributes": {"name": "eval", "type": "eval"},
        }
        if result.error is not None:
            event["error"] = result.error
            event.pop("scores")
        if result.latency_s is not None:
            event["metrics"] = {"start": end - result.latency_s, "end": end}
        return event

    def _report(
        self, experiment: api.Experiment, summary: api.ExperimentSummary, rows_hint: int
    ) -> EvalReport:
        """An `EvalReport` of an experiment on Braintrust, from its summary and its rows."""
        per_row: dict[str, dict[str, list[float]]] = {}
        errored: set[str] = set()
        task_errors = scorer_errors = 0
        trials: dict[str, int] = {}
        for event in self.client.iter_experiment_events(experiment.id):
            if event.get("is_root") is False:
                continue
            key = self._event_row_key(event)
            trials[key] = trials.get(key, 0) + 1
            if event.get("error"):
                task_errors += 1
                errored.add(key)
                continue
            for name, value in (event.get("scores") or {}).items():
                if value is None:
                    scorer_errors += 1
                    errored.add(key)
                else:
                    per_row.setdefault(key, {}).setdefault(name, []).append(float(value))
        scores = {}
        for name, remote in (summary.scores or {}).items():
            count = sum(1 for s in per_row.values() if name in s)
            has_diff = remote.diff is not None
            scores[name] = ScoreSummary(
                name=name,
                mean=remote.score,
                count=count,
                baseline_mean=remote.score - remote.diff if has_diff else None,
                diff=remote.diff,
                improvements=remote.improvements if has_diff else 0,
                regressions=remote.regressions if has_diff else 0,
            )
        metrics = {name: m.metric for name, m in (summary.metrics or {}).items()}
        rows_seen = len(trials)
        return EvalReport(
            id=experiment.id,
            name=experiment.name,
            platform="braintrust",
            dataset=None,
            dataset_version=experiment.dataset_version,
            rows_in_snapshot=max(rows_hint, rows_seen),
            trial_count=max(trials.values(), default=1),
            rows_scored=rows_seen - len(errored),
            rows_errored=len(errored),
            task_errors=task_errors,
            scorer_errors=scorer_errors,
            scores=scores,
            metrics=metrics,
            baseline_id=experiment.base_exp_id,
            baseline_name=summary.comparison_experiment_name,
            url=summary.experiment_url,
            project_url=summary.project_url,
            metadata=experiment.metadata or {},
            tags=experiment.tags or [],
        )

    @staticmethod
    def _event_row_key(event: dict[str, Any]) -> str:
        origin = event.get("origin") or {}
        if origin.get("id"):
            return str(origin["id"])
        return json.dumps(event.get("input"), sort_keys=True, default=str)

    def get_eval_report(self, report_id: str) -> EvalReport:
        experiment = self.client.get_experiment(report_id)
        summary = self.client.summarize_experiment(
            report_id, summarize_scores=True, comparison_experiment_id=experiment.base_exp_id
        )
        report = self._report(experiment, summary, 0)
        if experiment.dataset_id:
            report = report.model_copy(
                update={"dataset": DatasetRef(platform="braintrust", id=experiment.dataset_id, name="")}
            )
        return report

    def report_row_scores(self, report_id: str) -> dict[str, dict[str, float]]:
        sums: dict[str, dict[str, list[float]]] = {}
        for event in self.client.iter_experiment_events(report_id):
            if event.get("error") or event.get("is_root") is False:
                continue
            key = self._event_row_key(event)
            for name, value in (event.get("scores") or {}).items():
                if value is not None:
                    sums.setdefault(key, {}).setdefault(name, []).append(float(value))
        return {row: {n: sum(v) / len(v) for n, v in s.items()} for row, s in sums.items()}

    # -- prompts ----------------------------------------------------------------------------------
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

    # -- production logs --------------------------------------------------------------------------
    def copy_logs_to_dataset(
        self,
        dataset: DatasetRef,
        *,
        project: str | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
        sample_rate: float = 1.0,
        limit: int | None = None,
        expected_from: str = "output",
        seed: int = 0,
    ) -> int:
        """Copy sampled production log rows of `project` into `dataset`; returns the number copied.

        Root spans only. `where` filters events (e.g. `lambda e: e["scores"].get("thumbs_up") == 0`),
        `sample_rate` keeps a seeded random share, `limit` caps the count. The log row's `output` (or
        `expected`, per `expected_from`) becomes the row's `expected`; `origin` points back at the log.
        Rows keep the log row's id, so copying again updates instead of duplicating.
        """
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if expected_from not in ("output", "expected"):
            raise ConfigError(f"expected_from must be 'output' or 'expected', got {expected_from!r}")
        proj = self.project(project or dataset.project)
        rng = random.Random(seed)

        def picked() -> Iterator[tuple[str, bytes]]:
            taken = 0
            for event in self.client.iter_project_logs(proj.id):
                if limit is not None and taken >= limit:
                    return
                if event.get("is_root") is False or (where is not None and not where(event)):
                    continue
                if sample_rate < 1.0 and rng.random() >= sample_rate:
                    continue
                taken += 1
                row = {
                    "id": event["id"],
                    "input": event.get("input"),
                    "expected": event.get(expected_from),
                    "metadata": event.get("metadata") or {},
                    "tags": event.get("tags") or [],
                    "origin": {"object_type": "project_logs", "object_id": proj.id, "id": event["id"]},
                }
                yield event["id"], self._encode(row)

        copied = {"n": 0}

        def counted() -> Iterator[tuple[str, bytes]]:
            for item in picked():
                copied["n"] += 1
                yield item

        self._send_batches(f"/v1/dataset/{dataset.id}/insert", counted(), total=0, what="log rows")
        return copied["n"]


class BraintrustResource(EvalPlatformResource):
    """Braintrust: datasets, experiments, `/v1/eval` and prompts through the REST API.

    Examples:
        .. code-block:: python

            import dagster as dg
            from dagster_evals import BraintrustResource

            defs = dg.Definitions(
                resources={
                    "evals": BraintrustResource(
                        api_key=dg.EnvVar("BRAINTRUST_API_KEY"), project="support-bot"
                    )
                }
            )
    """

    api_key: str = Field(
        description="Braintrust API key; pass dg.EnvVar('BRAINTRUST_API_KEY').",
        json_schema_extra={"dagster__is_secret": True},
    )
    api_url: str = Field(default=api.DEFAULT_API_URL, description="REST API base URL.")
    app_url: str = Field(default=api.DEFAULT_APP_URL, description="Web app URL (for links).")
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

    def get_platform(self) -> BraintrustPlatform:
        return cast(BraintrustPlatform, super().get_platform())

    def connect(self) -> BraintrustPlatform:
        return BraintrustPlatform(
            api_key=self.api_key,
            api_url=self.api_url,
            app_url=self.app_url,
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
        )
