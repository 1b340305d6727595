"""Starting an experiment or a `/v1/eval` run at most once, and waiting for a run to finish.

Braintrust offers no idempotency key for these requests, so every launch carries a run token in the
experiment's `metadata` (`dagster_evals_run`):

- `POST /v1/experiment` is sent with `ensure_new: false`, which makes it create-or-get by name ("creating
  an experiment with the same name as an existing experiment will return the existing one un-modified";
  braintrustdata/braintrust-openapi `openapi/spec.json`, schema `CreateExperiment`, field `ensure_new`).
  An experiment returned with our token is ours (also when a late retry created it); one with another
  token belongs to someone else and a fresh one is made with `ensure_new: true`.
- `POST /v1/eval` cannot be made idempotent. After an ambiguous failure (no response, 5xx, a cut-off
  body) the project's experiments are polled for our token for `launch_settle_s` before the request is
  sent again, and after the run any extra experiment with our token is deleted (`DELETE
  /v1/experiment/{experiment_id}`), so a request the server applied late leaves no duplicate.
- A run found this way, or one that outlived the HTTP timeout, is waited for until every expected row
  has finished (root span with an output or an error) or `eval_timeout_s` passes; a half-finished run is
  never reported.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from dagster_evals.backends.base import ProgressFn
from dagster_evals.backends.braintrust import models as api
from dagster_evals.backends.braintrust.session import BraintrustSession
from dagster_evals.backends.braintrust.traces import traces
from dagster_evals.errors import PlatformError

RUN_TOKEN_KEY = "dagster_evals_run"
T = TypeVar("T")


def new_run_token() -> str:
    return uuid.uuid4().hex


def ambiguous(exc: PlatformError) -> bool:
    """True when the request may have taken effect although it failed."""
    return exc.status is None or exc.status >= 500


class BraintrustLaunches(BraintrustSession):
    """At-most-once experiment creation and `/v1/eval` launches, and waiting for a run to finish."""

    def experiments_with_token(self, project: api.Project, token: str) -> list[api.Experiment]:
        found = []
        for obj in self.client.iter_objects("/v1/experiment", {"project_id": project.id}):
            experiment = api.Experiment.model_validate(obj)
            if (experiment.metadata or {}).get(RUN_TOKEN_KEY) == token:
                found.append(experiment)
        return sorted(found, key=lambda e: e.created or "")

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
