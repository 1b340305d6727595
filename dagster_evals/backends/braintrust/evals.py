"""Braintrust evals: `POST /v1/eval` for platform-side tasks, local runs recorded as experiments."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dagster_evals.backends.base import ProgressFn, _quiet
from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.datasets import BraintrustDatasets
from dagster_evals.backends.braintrust.finite import finite_result
from dagster_evals.backends.braintrust.launch import (
    BraintrustLaunches,
    LaunchedEval,
    ambiguous,
    new_run_token,
    token_metadata,
)
from dagster_evals.backends.braintrust.reports import BraintrustReports
from dagster_evals.engine.errors import (
    ConfigError,
    CountMismatchError,
    NotFoundError,
    PlatformError,
    pinned_dataset_gone,
)
from dagster_evals.engine.git import repo_info
from dagster_evals.engine.models import (
    EvalReport,
    EvalRequest,
    PlatformFunction,
    RowResult,
    ScoreSummary,
)
from dagster_evals.engine.runner import run_request_locally
from dagster_evals.engine.scorers import resolve_local_scorers
from dagster_evals.engine.summary import ReportBuilder

logger = logging.getLogger("dagster_evals.braintrust")


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


class BraintrustEvals(BraintrustLaunches, BraintrustReports, BraintrustDatasets):
    """Evals: `POST /v1/eval` for platform-side tasks, local runs recorded as experiments."""

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
        token = new_run_token()
        fields["metadata"] = token_metadata(fields["metadata"], token)
        body = api.RunEval(**fields)
        progress(f"launching Braintrust eval {request.name!r} over dataset version {snapshot.version}")
        retried = {"ambiguous": False}
        launch = LaunchedEval(token, request.name, snapshot.dataset.id, snapshot.version, time.time())

        def send() -> api.ExperimentSummary:
            try:
                return self.client.run_eval(body)
            except PlatformError as exc:
                retried["ambiguous"] = retried["ambiguous"] or ambiguous(exc)
                raise

        launched = self.launch_eval_once(send, project, launch, progress)
        expected = snapshot.row_count * request.trial_count
        if isinstance(launched, api.Experiment):
            experiment = launched
            self.wait_until_finished(experiment, expected, progress)
        else:
            experiment = self.experiment_of_summary(project, launch, launched)
        if retried["ambiguous"]:
            self.drop_duplicates(project, token, experiment, progress)
        summary = self.client.summarize_experiment(
            experiment.id, summarize_scores=True, comparison_experiment_id=request.baseline_id
        )
        return self._report(experiment, summary, snapshot.row_count)

    def _run_local(self, request: EvalRequest, progress: ProgressFn) -> EvalReport:
        scorers = resolve_local_scorers(request.scorers)
        snapshot = request.snapshot
        project = self.project(snapshot.dataset.project)
        builder = ReportBuilder([s.name for s in scorers])
        baseline_name = None
        if request.baseline_id:
            baseline_name = self.client.get_experiment(request.baseline_id).name
            builder.add_baseline(self.iter_report_row_scores(request.baseline_id))  # streamed to disk
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
        token = request.run_token or new_run_token()  # a retry with the run's token continues its experiment
        fields["metadata"] = token_metadata(fields["metadata"], token)  # type: ignore[arg-type]
        create = api.CreateExperiment(**fields)  # type: ignore[arg-type]
        experiment = self.create_experiment_once(create, project, token, progress)
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
            result = finite_result(result)
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
