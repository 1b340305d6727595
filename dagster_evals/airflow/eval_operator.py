"""`RunEvalOperator`: run an eval over a pinned snapshot on any backend, and return the report summary.

The eval is the platform's `run_eval` — the same call the Dagster eval report asset makes — with every
scorer and judge, trials, concurrency, timeouts and budgets of the engine. With `resume` (the default)
each scored row is checkpointed in the embedded database (`$DAGSTER_EVALS_DATABASE_URL`), so a retry of
the task instance scores only the rows not yet scored.

With `deferrable=True` the wait happens in Airflow's triggerer, not a worker slot: on a Keywords AI
connection (task=None: the platform's evaluators over the dataset's logs) the task starts the eval run and
`KeywordsAIEvalRunTrigger` polls it until it is final; on a Braintrust connection (task and scorers all
`PlatformFunction`s) `PlatformEvalTrigger` makes the platform's `/v1/eval` call and hands back its report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from dagster_evals.airflow import lineage
from dagster_evals.airflow.operators import EvalsBaseOperator, require_int, require_text
from dagster_evals.airflow.reports import (
    attempt,
    report_asset,
    report_summary,
    snapshot_from_xcom,
    try_number_of,
)
from dagster_evals.backends.base import EvalPlatform
from dagster_evals.engine.checkpoints import RowCheckpoints, digest, store_for
from dagster_evals.engine.errors import ConfigError, DagsterEvalsError, NotFoundError
from dagster_evals.engine.gates import Baseline, describe_backend
from dagster_evals.engine.models import EvalReport, EvalRequest, PlatformFunction, PromptVersion, Snapshot
from dagster_evals.engine.scorers import resolve_scorer
from dagster_evals.engine.triggers import find_prompt_version


def _seconds(value: Any, field: str, task_id: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 7 * 24 * 3600:
        raise ConfigError(
            f"task {task_id!r}: {field} must be a number of seconds > 0 (at most a week), got {value!r}"
        )
    return float(value)


class RunEvalOperator(EvalsBaseOperator):
    """Run `task` and `scorers` over the pinned snapshot; returns the report summary as XCom.

    Args:
        conn_id: The evals connection (embedded, Braintrust or Keywords AI).
        suite: Name of the eval suite: names the report and its Airflow Asset (the task's outlet).
        snapshot: The snapshot task's return value (e.g. `pin.output`).
        task: The application under test (a Python callable, a `PlatformFunction`, or None to score the
            outputs already on the platform).
        scorers: Built-in scorer names, callables, LLM judges (`judge(...)`) or `PlatformFunction`s.
        trial_count: As on `EvalSuite`.
        max_concurrency: As on `EvalSuite`.
        row_timeout_s: As on `EvalSuite`.
        scorer_timeout_s: As on `EvalSuite`.
        isolation: As on `EvalSuite`.
        resume: Checkpoint scored rows so a retry of this task instance resumes (Python tasks).
        baseline_from: Task id of the gate whose last passing report is the baseline (`"gate"`); the
            gate's return value of the latest earlier run is read back from XCom.
        baseline: A pinned baseline report id instead (or None: no comparison).
        allow_missing_baseline: Compare with nothing (and say so) when the recorded baseline cannot be
            read, instead of failing the gate's `no_regression` rule.
        prompt: The prompt version under evaluation: `"slug@version"`, or an item returned by
            `NewPromptVersionsSensor` (for `.expand(prompt=sensor.output)`).
        release: The release under evaluation: an item returned by `NewReleasesSensor` (`{"tag", "commit"}`),
            recorded as the report's `release_tag` / `git_commit` and its repository state.
        deferrable: Keywords AI with task=None: wait for the platform's eval run in the triggerer.
        poll_interval_s: Seconds between polls of a deferred wait.
    """

    template_fields: Sequence[str] = ("snapshot", "prompt", "release", "baseline")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        conn_id: str,
        suite: str,
        snapshot: Any,
        task: Any,
        scorers: Sequence[Any],
        trial_count: int = 1,
        max_concurrency: int | None = 10,
        row_timeout_s: float | None = 60.0,
        scorer_timeout_s: float | None = 300.0,
        isolation: Literal["thread", "process"] = "thread",
        resume: bool = True,
        baseline_from: str | None = None,
        baseline: str | None = None,
        allow_missing_baseline: bool = False,
        project: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        prompt: Any = None,
        release: Any = None,
        deferrable: bool = False,
        poll_interval_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [report_asset(conn_id, suite)])
        super().__init__(conn_id=conn_id, **kwargs)
        tid = self.task_id
        self.suite = require_text(suite, "suite", tid)
        self.snapshot = snapshot
        self.task = task
        if isinstance(scorers, str) or not isinstance(scorers, Sequence) or not scorers:
            raise ConfigError(f"task {tid!r}: scorers must be a non-empty list, got {scorers!r}")
        for scorer in scorers:  # an unknown scorer name fails when the DAG loads
            if not isinstance(scorer, PlatformFunction):
                resolve_scorer(scorer)
        self.scorers = list(scorers)
        self.trial_count = require_int(trial_count, "trial_count", tid, minimum=1, maximum=100)
        self.max_concurrency = (
            None
            if max_concurrency is None
            else require_int(max_concurrency, "max_concurrency", tid, minimum=1, maximum=1000)
        )
        self.row_timeout_s = _seconds(row_timeout_s, "row_timeout_s", tid, optional=True)
        self.scorer_timeout_s = _seconds(scorer_timeout_s, "scorer_timeout_s", tid, optional=True)
        if isolation not in ("thread", "process"):
            raise ConfigError(f"task {tid!r}: isolation must be 'thread' or 'process', got {isolation!r}")
        self.isolation: Literal["thread", "process"] = isolation
        for flag, value in (
            ("resume", resume),
            ("allow_missing_baseline", allow_missing_baseline),
            ("deferrable", deferrable),
        ):
            if not isinstance(value, bool):
                raise ConfigError(f"task {tid!r}: {flag} must be True or False, got {value!r}")
        self.resume = resume
        self.baseline_from = require_text(baseline_from, "baseline_from", tid, optional=True)
        self.baseline = baseline
        if baseline_from is not None and baseline is not None:
            raise ConfigError(
                f"task {tid!r}: give baseline_from (the last passing report) or baseline, not both"
            )
        self.allow_missing_baseline = allow_missing_baseline
        self.project = require_text(project, "project", tid, optional=True)
        self.metadata = dict(metadata or {})
        self.tags = list(tags)
        self.prompt = prompt
        self.release = release
        self.deferrable = deferrable
        self.poll_interval = _seconds(poll_interval_s, "poll_interval_s", tid, optional=False)
        self._report: EvalReport | None = None
        self._snapshot: Snapshot | None = None

    # -- inputs ----------------------------------------------------------------------------------------
    def resolve_baseline(self, context: Any, platform: EvalPlatform) -> Baseline:
        """The report to compare with: the gate's last passing report, a pinned id, or none."""
        if self.baseline is not None:
            try:
                return Baseline(
                    platform.get_eval_report(str(self.baseline)).id, f"pinned baseline {self.baseline}"
                )
            except NotFoundError:
                raise ConfigError(
                    f"task {self.task_id!r}: the pinned baseline {self.baseline!r} does not exist on "
                    f"{platform.platform} ({describe_backend(platform)})"
                ) from None
        if self.baseline_from is None:
            return Baseline(None, "baseline comparison is off (no baseline_from or baseline)")
        passed = context["ti"].xcom_pull(task_ids=self.baseline_from, include_prior_dates=True)
        if (
            not isinstance(passed, Mapping)
            or not passed.get("report_id")
            or passed.get("platform") != platform.platform
        ):
            return Baseline(
                None,
                f"no baseline yet: no earlier passing report of {self.baseline_from!r} on {platform.platform}",
            )
        report_id = str(passed["report_id"])
        try:
            platform.get_eval_report(report_id)
        except Exception as exc:  # a missing report and a backend that cannot answer both fail closed
            reason = "is not there" if isinstance(exc, NotFoundError) else f"could not be read ({exc})"
            problem = f"baseline report {report_id} (last passed {self.baseline_from!r}) {reason} on the {describe_backend(platform)}"
            if self.allow_missing_baseline:
                self.log.warning("%s; allow_missing_baseline=True: no comparison", problem)
                return Baseline(None, problem + " (allow_missing_baseline=True)")
            return Baseline(None, problem, failure=f"{problem}: every task must use the same eval backend; "
                            "to accept runs without this baseline set allow_missing_baseline=True")  # fmt: skip
        return Baseline(report_id, f"baseline {report_id} (last passing {self.baseline_from!r})")

    def resolve_prompt(self, platform: EvalPlatform) -> PromptVersion | None:
        """The prompt version under evaluation (`prompt=`: `"slug@version"` or a sensor's item), or None."""
        value = self.prompt
        if value is None or value == "":
            return None
        if isinstance(value, Mapping):
            slug, version, project = value.get("slug"), value.get("version"), value.get("project")
        elif isinstance(value, str) and "@" in value:
            slug, _, version = value.rpartition("@")
            project = None
        else:
            raise ConfigError(
                f"task {self.task_id!r}: prompt must be 'slug@version' or a sensor's item, got {value!r}"
            )
        return find_prompt_version(platform, self.project or project, str(slug), str(version))

    def request(
        self, context: Any, platform: EvalPlatform, snapshot: Snapshot, baseline: Baseline
    ) -> EvalRequest:
        """The platform-neutral eval request for this task instance: snapshot, task, scorers, baseline, prompt and
        run metadata."""
        ti = context["ti"]
        prompt = self.resolve_prompt(platform)
        run = digest("airflow-eval", ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))
        label = f"{self.suite}-{prompt.partition_key}" if prompt else str(self.suite)
        metadata = {
            **self.metadata,
            "suite": self.suite,
            "airflow_dag_id": ti.dag_id,
            "airflow_run_id": ti.run_id,
            "airflow_task_id": ti.task_id,
            "dataset_version": snapshot.version,
            "dataset_digest": snapshot.digest,
        }
        if prompt is not None:
            metadata.update(
                prompt_slug=prompt.slug, prompt_version=prompt.version, prompt_id=prompt.prompt_id
            )
        repo_info = None
        if self.release is not None:
            if not isinstance(self.release, Mapping) or not isinstance(self.release.get("tag"), str):
                raise ConfigError(
                    f"task {self.task_id!r}: release must be a NewReleasesSensor item, got {self.release!r}"
                )
            tag, commit = str(self.release["tag"]), str(self.release.get("commit") or "")
            metadata.update(release_tag=tag, **({"git_commit": commit} if commit else {}))
            repo_info = {"tag": tag, **({"commit": commit} if commit else {})}
            label = f"{label}-{tag}"
        return EvalRequest.with_run_settings_of(
            self,
            name=f"{label}-{run[:8]}",
            snapshot=snapshot,
            baseline_id=baseline.report_id,
            metadata=metadata,
            prompt=prompt,
            repo_info=repo_info,
        )

    # -- running ---------------------------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        snapshot = snapshot_from_xcom(self.snapshot, f"task {self.task_id!r} snapshot")
        self._snapshot = snapshot
        platform = self.hook.get_platform()
        try:
            baseline = self.resolve_baseline(context, platform)
            request = self.request(context, platform, snapshot, baseline)
            self.log.info(
                "running eval %r on %s: %d rows x %d trials, max_concurrency=%s; snapshot version %s; %s",
                request.name, platform.platform, snapshot.row_count, self.trial_count, self.max_concurrency,
                snapshot.version, baseline.note,
            )  # fmt: skip
            if self.deferrable:
                self._defer(platform, request, baseline)
            checkpoints: RowCheckpoints | None = None
            if self.resume and callable(self.task):
                key = digest("checkpoints", request.name, snapshot.dataset.id, snapshot.version, snapshot.digest,
                             self.trial_count, [str(s) for s in self.scorers])  # fmt: skip
                store = store_for()
                store.prune()
                checkpoints = store.checkpoints(key)
                request = request.model_copy(update={"checkpoints": checkpoints, "run_token": key[:32]})
            try_number = try_number_of(context)
            if try_number > 1:
                self.log.info(
                    "try %d of %r: rows scored by an earlier try are read back from their checkpoints%s",
                    try_number, self.task_id, "" if checkpoints else " (resume is off: every row is scored again)",
                )  # fmt: skip
            report = platform.run_eval(request, progress=self.log.info)
        finally:
            self.hook.close()
        summary = {**self._finished(report, baseline), "attempt": attempt(try_number, report, checkpoints)}
        self.log.info(
            "try %d: %d row trials read back from checkpoints, %d scored by this try",
            try_number, summary["attempt"]["rows_from_checkpoints"], summary["attempt"]["rows_scored_now"],
        )  # fmt: skip
        return summary

    def _defer(self, platform: Any, request: EvalRequest, baseline: Baseline) -> None:
        from dagster_evals.airflow.triggers import KeywordsAIEvalRunTrigger, PlatformEvalTrigger
        from dagster_evals.backends.keywordsai.eval_runs import split_report_id
        from dagster_evals.backends.keywordsai.evals import split_scorers

        baseline_json = {"report_id": baseline.report_id, "note": baseline.note, "failure": baseline.failure}
        functions = [request.task, *request.scorers]
        if platform.platform == "braintrust" and all(isinstance(f, PlatformFunction) for f in functions):
            timeout = float(platform.eval_timeout_s)
            self.defer(
                trigger=PlatformEvalTrigger(
                    str(self.conn_id),
                    request.model_dump(mode="json", exclude={"checkpoints"}),
                    carry={"baseline": baseline_json},
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=timeout + 60),
            )
        if platform.platform != "keywordsai" or request.task is not None:
            raise ConfigError(
                f"task {self.task_id!r}: deferrable=True waits for a run on the platform: a Braintrust /v1/eval "
                "(a Braintrust connection, task and scorers all PlatformFunctions), or a Keywords AI eval run "
                "(a Keywords AI connection, task=None and the platform's evaluators)"
            )
        slugs, local = split_scorers(request.scorers)
        if local or not slugs:
            raise ConfigError(
                f"task {self.task_id!r}: deferrable=True runs Keywords AI evaluators only; "
                f"score {', '.join(s.name for s in local) or 'nothing'} in a task that does not defer"
            )
        report_id = platform.start_evaluators_run(request.snapshot, request.scorers, progress=self.log.info)
        dataset_id, keys = split_report_id(report_id)
        timeout = float(platform.eval_timeout_s)
        self.defer(
            trigger=KeywordsAIEvalRunTrigger(
                str(self.conn_id),
                dataset_id,
                keys,
                float(self.poll_interval or 5.0),
                timeout,
                carry={"baseline": baseline_json},
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout + 60),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the trigger: the platform's report of the finished run (compared with the baseline)."""
        from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform

        if event.get("status") != "completed":
            raise DagsterEvalsError(str(event.get("message") or event))
        self._snapshot = snapshot_from_xcom(self.snapshot, f"task {self.task_id!r} snapshot")
        baseline = dict((event.get("carry") or {}).get("baseline") or {})
        recorded = Baseline(baseline.get("report_id"), str(baseline.get("note")), baseline.get("failure"))
        if event.get("report") is not None:  # a run the trigger waited for whole (Braintrust /v1/eval)
            report = EvalReport.model_validate(event["report"])
        else:
            platform = self.hook.get_platform()
            try:
                if not isinstance(platform, KeywordsAIPlatform):
                    raise ConfigError(
                        f"task {self.task_id!r}: eval run {event.get('report_id')} ran on Keywords AI, but "
                        f"connection {self.conn_id!r} is now a {platform.platform} connection"
                    )
                report = platform.eval_run_report(str(event["report_id"]), recorded.report_id)
            finally:
                self.hook.close()
        return {**self._finished(report, recorded), "attempt": attempt(try_number_of(context), report)}

    def _finished(self, report: EvalReport, baseline: Baseline) -> dict[str, Any]:
        self._report = report
        scores = ", ".join(
            f"{name}={s.mean:.4f}" if s.mean is not None else f"{name}=n/a"
            for name, s in report.scores.items()
        )
        self.log.info(
            "eval report %s: %s; %d/%d rows scored, %d errored%s",
            report.id, scores, report.rows_scored, report.rows_in_snapshot, report.rows_errored,
            f" — {report.url}" if report.url else "",
        )  # fmt: skip
        return report_summary(report, baseline)

    # -- lineage ---------------------------------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        if self._report is None or self._snapshot is None:
            return lineage.operator_lineage()
        try:
            platform = self.hook.get_platform()
            return lineage.operator_lineage(
                inputs=[lineage.snapshot_input(platform, self._snapshot, dataQualityMetrics=lineage.score_metrics(self._report))],
                outputs=[lineage.report_output(platform, self._snapshot.dataset.project, str(self.suite), self._report)],
            )  # fmt: skip
        finally:
            self.hook.close()
