"""Keywords AI eval runs: start one over a dataset, wait for it, read its scores.

An eval run is one or more tasks (one per evaluator in the generated client's shape, one run in the
docs' shape; see `models.EvalTask`). Its id here is `<dataset id>:<task id>[,<task id>…]`. A start
whose response was lost is looked for (new tasks with the same evaluators) before being sent again.

Where the published sources disagree, both are handled rather than one guessed:
- `eval-reports/create` names the evaluators as `evaluator_slugs` (DOCS eval-reports-create.mdx, the seed
  workflow) or `evaluator_ids` (SPEC run_eval_on_dataset). Slugs are sent first; a 400 (the request was
  refused, so nothing started) is answered by sending the ids once, and the form that worked is used from
  then on.
- A run just created may not be listed yet: until `eval_timeout_s` passes, a run missing from the listing
  is pending, not gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from dagster_evals.backends.base import ProgressFn
from dagster_evals.backends.keywordsai.client import KeywordsAIClient
from dagster_evals.backends.keywordsai.models import DatasetLog, EvalTask, RunEvalResponse
from dagster_evals.backends.keywordsai.rows import (
    ERROR_KEY,
    LATENCY_KEY,
    ROW_ID_KEY,
    SCORER_ERRORS_KEY,
    SCORES_KEY,
    TRIAL_KEY,
)
from dagster_evals.backends.keywordsai.shapes import ServerShapes
from dagster_evals.engine.errors import ConfigError, DagsterEvalsError, NotFoundError, PlatformError
from dagster_evals.engine.models import EvalReport, RowResult, ScoreSummary

T = TypeVar("T")


class EvalRunFailed(DagsterEvalsError):
    """A Keywords AI eval run ended failed, or did not finish within `eval_timeout_s`."""


def split_report_id(report_id: str) -> tuple[str, list[str]]:
    """The dataset id and the eval-run task keys of a report id (`<dataset id>:<key>,<key>`)."""
    dataset_id, _, keys = report_id.partition(":")
    return dataset_id, [k for k in keys.split(",") if k]


class EvalRunOps:
    """Eval-run operations of `KeywordsAIPlatform` (a mixin)."""

    client: KeywordsAIClient
    page_size: int
    eval_timeout_s: float
    eval_poll_interval_s: float
    eval_poll_max_interval_s: float
    _evaluator_slugs: dict[str, str]
    _shapes: ServerShapes
    _create_once: Callable[..., Any]

    def _check_evaluators(self, slugs: Sequence[str]) -> None:
        """Fail before anything is written when an evaluator slug is unknown to the organization."""
        if not slugs:
            return
        known = {e.evaluator_slug: e.id for e in self.client.iter_evaluators(page_size=self.page_size)}
        self._evaluator_slugs.update({eid: slug for slug, eid in known.items()})
        missing = [slug for slug in slugs if slug not in known]
        if missing:
            raise ConfigError(
                f"Keywords AI has no evaluator {', '.join(map(repr, missing))}; the organization's evaluators "
                f"are {', '.join(sorted(known)) or 'none'}: fix the PlatformFunction name, or create the "
                "evaluator in Keywords AI"
            )

    def _slug_of(self, evaluator_id: str) -> str | None:
        """The slug of an evaluator id (scores keyed by evaluator id may carry no slug); one listing."""
        if evaluator_id not in self._evaluator_slugs and not self._evaluator_slugs.get("__listed__"):
            self._evaluator_slugs["__listed__"] = "yes"
            for evaluator in self.client.iter_evaluators(page_size=self.page_size):
                self._evaluator_slugs[evaluator.id] = evaluator.evaluator_slug
        return self._evaluator_slugs.get(evaluator_id)

    def find_tasks(self, dataset_id: str, keys: Sequence[str]) -> list[EvalTask]:
        wanted = set(keys)
        return [
            t for t in self.client.iter_eval_tasks(dataset_id, page_size=self.page_size) if t.key in wanted
        ]

    def start_eval_run(self, dataset_id: str, slugs: list[str], progress: ProgressFn) -> list[str]:
        """Start the evaluators over the dataset once; the task keys of the run."""
        before = {t.key for t in self.client.iter_eval_tasks(dataset_id, page_size=self.page_size)}

        def started_by_us() -> list[str] | None:
            fresh = [
                t
                for t in self.client.iter_eval_tasks(dataset_id, page_size=self.page_size)
                if t.key not in before
            ]
            covered = {slug for t in fresh for slug in t.slugs}
            return [t.key for t in fresh] if fresh and covered >= set(slugs) else None

        keys = self._create_once(
            lambda: [t.key for t in self._create_report(dataset_id, slugs).tasks()], started_by_us
        )
        progress(f"started eval run {','.join(keys)} with evaluators {', '.join(slugs)}")
        return keys

    def _create_report(self, dataset_id: str, slugs: list[str]) -> RunEvalResponse:
        """`eval-reports/create` naming the evaluators in the form this server takes (see the module
        docstring): a 400 for one form, before either is known to work, sends the other once."""
        forms = ["evaluator_slugs", "evaluator_ids"]
        if self._shapes.evaluator_field == "evaluator_ids":
            forms.reverse()
        refused: list[PlatformError] = []
        for form in forms:
            try:
                if form == "evaluator_ids":
                    answer = self.client.create_eval_report(
                        dataset_id, evaluator_ids=self._evaluator_ids(slugs)
                    )
                else:
                    answer = self.client.create_eval_report(dataset_id, slugs)
            except PlatformError as exc:
                if exc.status != 400 or self._shapes.evaluator_field is not None:
                    raise
                refused.append(exc)
                continue
            self._shapes.evaluator_field = form
            return answer
        first, second = refused
        raise PlatformError(
            "keywordsai", 400, "POST", first.endpoint,
            f"refused the evaluators both as evaluator_slugs ({first.platform_message}) and as evaluator_ids "
            f"({second.platform_message})",
        )  # fmt: skip

    def _evaluator_ids(self, slugs: Sequence[str]) -> list[str]:
        """The evaluator ids of these slugs (from the evaluator listing `_check_evaluators` read)."""
        ids = {slug: eid for eid, slug in self._evaluator_slugs.items() if eid != "__listed__"}
        if not all(slug in ids for slug in slugs):
            for evaluator in self.client.iter_evaluators(page_size=self.page_size):
                self._evaluator_slugs[evaluator.id] = evaluator.evaluator_slug
                ids[evaluator.evaluator_slug] = evaluator.id
        missing = [slug for slug in slugs if slug not in ids]
        if missing:
            raise ConfigError(f"Keywords AI has no evaluator {', '.join(map(repr, missing))}")
        return [ids[slug] for slug in slugs]

    def wait_for_eval_run(self, dataset_id: str, keys: Sequence[str], progress: ProgressFn) -> list[EvalTask]:
        """Poll the dataset's eval runs with backoff until every task is final; raise `EvalRunFailed`
        when one failed or `eval_timeout_s` passed. Unknown statuses count as still running."""
        report_id = f"{dataset_id}:{','.join(keys)}"
        deadline = time.monotonic() + self.eval_timeout_s
        interval = self.eval_poll_interval_s
        last: list[str] = []
        while True:
            tasks = self.find_tasks(dataset_id, keys)
            if len(tasks) < len(set(keys)):  # not listed yet (a run just created): pending until the deadline
                if time.monotonic() >= deadline:
                    raise NotFoundError(
                        "keywordsai", 404, "GET", f"/api/datasets/{dataset_id}/eval-reports/list/",
                        f"eval run {report_id} is not among the dataset's eval runs {self.eval_timeout_s:.0f}s "
                        "after it was started (eval_timeout_s)",
                    )  # fmt: skip
                if last != ["not listed yet"]:
                    progress(f"eval run {report_id} is not listed by Keywords AI yet; waiting as pending")
                    last = ["not listed yet"]
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
                interval = min(interval * 1.5, self.eval_poll_max_interval_s)
                continue
            failed = [t for t in tasks if t.state == "failed"]
            if failed:
                reasons = "; ".join(
                    f"{', '.join(t.slugs) or t.key}: {t.status} {t.error_message or ''}".strip()
                    for t in failed
                )
                raise EvalRunFailed(
                    f"eval run {report_id} on Keywords AI ended failed ({reasons})",
                    metadata={"report_id": report_id, "status": failed[0].status or "failed"},
                )
            if all(t.state == "completed" for t in tasks):
                return tasks
            statuses = sorted({t.status or "?" for t in tasks})
            if statuses != last:
                progress(f"eval run {report_id} on Keywords AI is {', '.join(statuses)}")
                last = statuses
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EvalRunFailed(
                    f"eval run {report_id} on Keywords AI is still {', '.join(statuses)} after "
                    f"{self.eval_timeout_s:.0f}s; raise eval_timeout_s, or read it later with "
                    f"get_eval_report('{report_id}')",
                    metadata={"report_id": report_id, "status": ", ".join(statuses)},
                )
            time.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.eval_poll_max_interval_s)

    def run_evaluators(
        self, dataset_id: str, slugs: list[str], progress: ProgressFn
    ) -> tuple[str, list[EvalTask]]:
        """Start and wait; `(report id suffix, final tasks)` (`("", [])` without evaluators)."""
        if not slugs:
            return "", []
        keys = self.start_eval_run(dataset_id, slugs, progress)
        return ",".join(keys), self.wait_for_eval_run(dataset_id, keys, progress)

    def row_result(
        self, log: DatasetLog, slugs: Sequence[str], local: Mapping[str, Any] | None = None
    ) -> RowResult:
        metadata = log.metadata or {}
        error = metadata.get(ERROR_KEY)
        scores: dict[str, float | None] = dict((local or {}).get("scores") or metadata.get(SCORES_KEY) or {})
        scorer_errors = dict((local or {}).get("errors") or metadata.get(SCORER_ERRORS_KEY) or {})
        if error is None:
            for score in log.score_list():
                slug = score.evaluator_slug or self._slug_of(str(score.evaluator_id))
                if slug is not None and slug in slugs:
                    scores[slug] = score.as_float()
        latency = metadata.get(LATENCY_KEY)
        return RowResult(
            row_id=str(metadata.get(ROW_ID_KEY) or log.log_id),
            trial=int(metadata.get(TRIAL_KEY) or 0),
            scores=scores,
            scorer_errors=scorer_errors,
            error=error,
            latency_s=float(latency) if isinstance(latency, int | float) else None,
        )

    @staticmethod
    def fill_from_tasks(report: EvalReport, tasks: Sequence[EvalTask]) -> EvalReport:
        """Use a task's own `score` for evaluators whose scores were not visible on the logs."""
        scores = dict(report.scores)
        for task in tasks:
            for slug in task.slugs:
                current = scores.get(slug)
                if task.score is not None and (current is None or current.mean is None):
                    scores[slug] = ScoreSummary(
                        name=slug, mean=float(task.score), count=int(task.evaluated_logs_count or 0)
                    )
        return report.model_copy(update={"scores": scores})
