"""Starting an experiment or a `/v1/eval` run at most once, and waiting for a run to finish.

Braintrust offers no idempotency key for these requests, so every launch carries a run token in the
experiment's `metadata` (`dagster_evals_run`):

- `POST /v1/experiment` is sent with `ensure_new: false`, which makes it create-or-get by name ("creating
  an experiment with the same name as an existing experiment will return the existing one un-modified";
  braintrustdata/braintrust-openapi `openapi/spec.json`, schema `CreateExperiment`, field `ensure_new`).
  An experiment returned with our token is ours (also when a late retry created it); one with another
  token belongs to someone else and a fresh one is made with `ensure_new: true`.
- `POST /v1/eval` cannot be made idempotent, and a second run costs the user money, so it is never sent
  again while the first one may be running. After an ambiguous failure (no response, 5xx, a cut-off
  body) the project's experiments are polled for `launch_settle_s` for the evidence the API gives: an
  experiment carrying our token; else one this launch would have created (its name, or the name with the
  suffix Braintrust adds to a taken name, on the launched dataset and version, created after the launch
  was sent, carrying no run token); else, when a streamed launch got its `start` event, the experiment
  that event names. Evidence found is used (the run is waited for, never started again). Several
  candidates are a doubt: the launch fails, naming them, without a second run. Only when the window
  passes with no trace of the run is it sent again, and after the run any extra experiment with our
  token is deleted (`DELETE /v1/experiment/{experiment_id}`), so a request applied late leaves no
  duplicate. Each wait is logged with what it looks for.
- A run found this way, or one that outlived the HTTP timeout, is waited for until every expected row
  has finished (root span with an output or an error) or `eval_timeout_s` passes; a half-finished run is
  never reported.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from dagster_evals.backends.base import ProgressFn
from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.session import BraintrustSession
from dagster_evals.backends.braintrust.traces import traces
from dagster_evals.engine.errors import NotFoundError, PlatformError

RUN_TOKEN_KEY = "dagster_evals_run"
# How much earlier than the launch (by the client's clock) an experiment may say it was created and still
# be taken for the launch's: the server's clock may run behind.
CLOCK_SKEW_S = 300.0
T = TypeVar("T")
logger = logging.getLogger("dagster_evals.braintrust")


def new_run_token() -> str:
    return uuid.uuid4().hex


def ambiguous(exc: PlatformError) -> bool:
    """True when the request may have taken effect although it failed."""
    return exc.status is None or exc.status >= 500


def _created_at(experiment: api.Experiment) -> float | None:
    try:
        return datetime.fromisoformat(str(experiment.created).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class LaunchedEval:
    """What a `/v1/eval` launch is known by when its answer was lost: its token, the experiment name asked
    for, the dataset and version it runs on, and when it was first sent (client clock)."""

    token: str
    name: str
    dataset_id: str
    dataset_version: str | None
    sent_at: float

    def could_be(self, experiment: api.Experiment) -> bool:
        """True when `experiment` may be this launch's although it carries no run token."""
        if RUN_TOKEN_KEY in (experiment.metadata or {}):
            return False
        if experiment.name != self.name and not experiment.name.startswith(self.name + "-"):
            return False
        if experiment.dataset_id != self.dataset_id:
            return False
        if self.dataset_version is not None and experiment.dataset_version not in (
            None,
            self.dataset_version,
        ):
            return False
        created = _created_at(experiment)
        return created is None or created >= self.sent_at - CLOCK_SKEW_S


class BraintrustLaunches(BraintrustSession):
    """At-most-once experiment creation and `/v1/eval` launches, and waiting for a run to finish."""

    def project_experiments(self, project: api.Project) -> list[api.Experiment]:
        objects = self.client.iter_objects("/v1/experiment", {"project_id": project.id})
        return sorted((api.Experiment.model_validate(o) for o in objects), key=lambda e: e.created or "")

    def experiments_with_token(self, project: api.Project, token: str) -> list[api.Experiment]:
        return [
            e for e in self.project_experiments(project) if (e.metadata or {}).get(RUN_TOKEN_KEY) == token
        ]

    def launch_eval_once(
        self, send: Callable[[], api.ExperimentSummary], project: api.Project, launch: LaunchedEval,
        progress: ProgressFn,
    ) -> api.ExperimentSummary | api.Experiment:  # fmt: skip
        """`POST /v1/eval`, never sent again while its first run may be going (see the module docstring):
        the summary it answered, or the experiment of the run it started."""
        attempt = 0
        while True:
            try:
                return send()
            except api.EvalStreamCutShort as exc:
                return self._started_experiment(project, launch, exc.started.experiment_name, progress)
            except PlatformError as exc:
                if not ambiguous(exc) or attempt >= self.http.retry.max_retries:
                    raise
                found = self._wait_for_launched(project, launch, exc, progress)
            if found is not None:
                return found
            attempt += 1
            _say(progress, f"POST /v1/eval: no trace of the first request after {self.launch_settle_s:g}s "
                           "(launch_settle_s); sending it again (a late duplicate is deleted after the run)")  # fmt: skip

    def _wait_for_launched(
        self, project: api.Project, launch: LaunchedEval, failure: PlatformError, progress: ProgressFn
    ) -> api.Experiment | None:
        """The experiment of the launch that failed ambiguously, found within `launch_settle_s`; None when
        nothing shows it ran; a `PlatformError` when several experiments may be its run."""
        _say(progress, f"POST /v1/eval failed ({failure}); it may have started a run, so it is not sent again "
                       f"yet: looking for its experiment (run token {launch.token}, or {launch.name!r} on "
                       f"dataset {launch.dataset_id}) for up to {self.launch_settle_s:g}s (launch_settle_s)")  # fmt: skip
        deadline = time.monotonic() + self.launch_settle_s
        delay = 0.05
        while True:
            listed = self.project_experiments(project)
            ours = [e for e in listed if (e.metadata or {}).get(RUN_TOKEN_KEY) == launch.token]
            if ours:
                _say(progress, f"found experiment {ours[0].name!r} by its run token: waiting for that run")
                return ours[0]
            candidates = [e for e in listed if launch.could_be(e)]
            if len(candidates) == 1:
                _say(progress, f"found experiment {candidates[0].name!r} (the launch's name and dataset, created "
                               "after it was sent, no run token): waiting for that run, not starting another")  # fmt: skip
                return candidates[0]
            if time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)
        if candidates:
            names = ", ".join(repr(e.name) for e in candidates)
            raise PlatformError(
                "braintrust", failure.status, "POST", "/v1/eval",
                f"{failure.platform_message}; {len(candidates)} experiments may be the run it started ({names}: "
                "its name and dataset, created after it was sent, no run token), so it was not sent again "
                "(a second run would be paid for twice). Check them on Braintrust and re-run the eval report",
            )  # fmt: skip
        return None

    def _started_experiment(
        self, project: api.Project, launch: LaunchedEval, name: str, progress: ProgressFn
    ) -> api.Experiment:
        """The experiment a streamed launch's `start` event named (the run has started: never resent)."""
        _say(progress, f"POST /v1/eval: the event stream ended after the start of experiment {name!r}, without "
                       "a summary; waiting for that run instead of starting another")  # fmt: skip
        deadline = time.monotonic() + max(self.launch_settle_s, 1.0)
        delay = 0.05
        while True:
            named = [e for e in self.project_experiments(project) if e.name == name]
            ours = [e for e in named if (e.metadata or {}).get(RUN_TOKEN_KEY) == launch.token]
            if ours or len(named) == 1:
                return (ours or named)[0]
            if time.monotonic() >= deadline:
                raise PlatformError(
                    "braintrust", None, "POST", "/v1/eval",
                    f"the run of experiment {name!r} started (its stream said so) but the experiment is not "
                    f"listed after {self.launch_settle_s:g}s; it was not started again",
                )  # fmt: skip
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)

    def experiment_of_summary(
        self, project: api.Project, launch: LaunchedEval, summary: api.ExperimentSummary
    ) -> api.Experiment:
        """The experiment a launch's summary names: by run token, else (no token on it) by name."""
        named = [e for e in self.project_experiments(project) if e.name == summary.experiment_name]
        ours = [e for e in named if (e.metadata or {}).get(RUN_TOKEN_KEY) == launch.token]
        if not ours:
            ours = [e for e in named if launch.could_be(e)]
        if not ours:
            raise NotFoundError(
                "braintrust", 404, "GET", "/v1/experiment",
                f"the eval reported experiment {summary.experiment_name!r} but it is not listed",
            )  # fmt: skip
        return ours[0]

    def create_experiment_once(
        self, body: api.CreateExperiment, project: api.Project, token: str, progress: ProgressFn
    ) -> api.Experiment:
        """Create-or-get by name with our token; retried safely (see the module docstring)."""
        quiet = body.model_copy(update={"ensure_new": False})
        experiment = api.Experiment.model_validate(
            self.http.post("/v1/experiment", json=quiet.body(), idempotent=True)
        )
        if (experiment.metadata or {}).get(RUN_TOKEN_KEY) == token:
            return experiment
        progress(f"experiment {body.name!r} already exists from another run; creating a new one")
        fresh = body.model_copy(update={"ensure_new": True})
        return self._at_most_once(
            lambda: self.client.create_experiment(fresh), project, token, "POST /v1/experiment", progress
        )

    def _at_most_once(
        self,
        send: Callable[[], T],
        project: api.Project,
        token: str,
        endpoint: str,
        progress: ProgressFn,
    ) -> T | api.Experiment:
        """Send a request that creates an experiment carrying `token`; after an ambiguous failure, wait
        up to `launch_settle_s` for the experiment to appear before sending it again."""
        attempt = 0
        while True:
            try:
                return send()
            except PlatformError as exc:
                if not ambiguous(exc) or attempt >= self.http.retry.max_retries:
                    raise
                found = self._wait_for_token(project, token)
                if found is not None:
                    progress(f"{endpoint} failed ({exc}), but its experiment {found.name!r} exists: using it")
                    return found
                attempt += 1
                progress(f"{endpoint} failed ({exc}) and no experiment appeared; sending it again")

    def _wait_for_token(self, project: api.Project, token: str) -> api.Experiment | None:
        deadline = time.monotonic() + self.launch_settle_s
        delay = 0.05
        while True:
            found = self.experiments_with_token(project, token)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)

    def drop_duplicates(
        self, project: api.Project, token: str, keep: api.Experiment, progress: ProgressFn
    ) -> None:
        """Delete experiments that carry our token besides `keep` (left by a request applied late)."""
        for extra in self.experiments_with_token(project, token):
            if extra.id != keep.id:
                progress(f"deleting duplicate experiment {extra.name!r} left by a late-applied launch")
                self.http.delete(f"/v1/experiment/{extra.id}")

    def wait_until_finished(
        self, experiment: api.Experiment, expected_rows: int, progress: ProgressFn
    ) -> None:
        """Poll the experiment until `expected_rows` root spans have finished, or fail after
        `eval_timeout_s` (never report a half-finished run)."""
        deadline = time.monotonic() + self.eval_timeout_s
        delay = 0.05
        while True:
            rows = traces(self.client.iter_experiment_events(experiment.id))
            finished = sum(1 for t in rows if t.finished)
            if finished >= expected_rows:
                return
            if time.monotonic() >= deadline:
                raise PlatformError(
                    "braintrust",
                    None,
                    "POST",
                    "/v1/eval",
                    f"experiment {experiment.name!r} has {finished} of {expected_rows} rows finished after "
                    f"{self.eval_timeout_s:.0f}s (eval_timeout_s); it may still be running on Braintrust. "
                    "Re-run the eval report once it has finished, or raise eval_timeout_s",
                )
            progress(f"experiment {experiment.name!r}: {finished}/{expected_rows} rows finished; waiting")
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)


def token_metadata(metadata: dict[str, Any], token: str) -> dict[str, Any]:
    return {**metadata, RUN_TOKEN_KEY: token}


def _say(progress: ProgressFn, message: str) -> None:
    """A launch wait or decision: on the run's progress and in the log."""
    logger.warning("%s", message)
    progress(message)
