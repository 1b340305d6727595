"""Sensors for new work: new prompt versions and new releases, each picked up exactly once.

Each sensor keeps its cursor (what it has already picked up) in an Airflow Variable, written when it
hands new items downstream, and returns them as XCom: map the eval over them
(`RunEvalOperator.partial(...).expand(prompt=sensor.output)`) and each new version is evaluated once. The
rule of what is new is the Dagster sensors' (`dagster_evals.engine.new_versions`). Run the DAG with
`max_active_runs=1` so two runs never read the same cursor.

`NewPromptVersionsSensor(deferrable=True)` waits in the triggerer (`PromptVersionTrigger`) instead of a
worker slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, Variable
from airflow.sdk.exceptions import AirflowSensorTimeout

from dagster_evals.airflow.hooks import EvalsHook
from dagster_evals.airflow.operators import require_text
from dagster_evals.airflow.triggers import PromptVersionTrigger, list_new_versions
from dagster_evals.engine.errors import ConfigError, DagsterEvalsError
from dagster_evals.engine.git import list_tags
from dagster_evals.engine.new_versions import InitialRuns, new_releases

_INITIAL = ("latest", "all", "none")


class _CursorSensor(BaseSensorOperator):
    """A sensor whose cursor lives in the Airflow Variable `cursor_variable`."""

    def __init__(self, *, cursor_variable: str | None, initial: InitialRuns, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if initial not in _INITIAL:
            raise ConfigError(
                f"task {self.task_id!r}: initial must be one of {', '.join(_INITIAL)}, got {initial!r}"
            )
        self.initial: InitialRuns = initial
        self.cursor_variable = require_text(cursor_variable, "cursor_variable", self.task_id, optional=True)

    def variable_name(self) -> str:
        return self.cursor_variable or f"dagster_evals_cursor__{self.dag_id}__{self.task_id}"

    def load_cursor(self) -> dict[str, Any]:
        raw = Variable.get(self.variable_name(), default=None)
        if not raw:
            return {}
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(
                f"Airflow Variable {self.variable_name()!r} is not a sensor cursor (not JSON): delete it to "
                "start over"
            ) from None
        return loaded if isinstance(loaded, dict) else {}

    def save_cursor(self, cursor: dict[str, Any]) -> None:
        Variable.set(self.variable_name(), json.dumps(cursor, sort_keys=True))


class NewPromptVersionsSensor(_CursorSensor):
    """Waits for new versions of prompts on the connection's platform; returns them as a list (XCom).

    Args:
        conn_id: The evals connection.
        prompt_slugs: Prompts to follow; default: every prompt of the project.
        project: Platform project (default: the connection's).
        initial: For a prompt never seen before: pick its `latest` version, `all` of them, or `none`.
        cursor_variable: Airflow Variable holding the cursor (default: one per DAG and task).
        deferrable: Wait in the triggerer rather than a worker slot.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        prompt_slugs: Sequence[str] | None = None,
        project: str | None = None,
        initial: InitialRuns = "latest",
        cursor_variable: str | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(cursor_variable=cursor_variable, initial=initial, **kwargs)
        self.conn_id = require_text(conn_id, "conn_id", self.task_id)
        if prompt_slugs is not None and (
            isinstance(prompt_slugs, str) or not all(isinstance(s, str) and s for s in prompt_slugs)
        ):
            raise ConfigError(f"task {self.task_id!r}: prompt_slugs must be a list of prompt slugs")
        self.prompt_slugs = list(prompt_slugs) if prompt_slugs else None
        self.project = project
        if not isinstance(deferrable, bool):
            raise ConfigError(f"task {self.task_id!r}: deferrable must be True or False, got {deferrable!r}")
        self.deferrable = deferrable

    def _look(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        hook = EvalsHook.for_connection(str(self.conn_id))
        try:
            return list_new_versions(hook, self.load_cursor(), self.prompt_slugs, self.project, self.initial)
        finally:
            hook.close()

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        fresh, advanced = self._look()
        if fresh:
            return self._picked(fresh, advanced)
        self.save_cursor(advanced)
        self.defer(
            trigger=PromptVersionTrigger(
                str(self.conn_id),
                advanced,
                self.prompt_slugs,
                self.project,
                self.initial,
                poll_interval_s=float(self.poke_interval),
                deadline=time.time() + float(self.timeout) if self.timeout else None,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Back from `PromptVersionTrigger`: hand on the new versions, or time out (skipped with
        `soft_fail=True`), or fail with the trigger's error."""
        status = event.get("status", "new_versions")  # events of triggers deferred before 0.2 carry none
        if status == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        if status != "new_versions":
            raise DagsterEvalsError(str(event.get("message") or event))
        return self._picked(list(event["versions"]), dict(event["cursor"]))

    def poke(self, context: Any) -> PokeReturnValue:
        fresh, advanced = self._look()
        if not fresh:
            self.save_cursor(advanced)
            self.log.info("no new prompt versions")
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._picked(fresh, advanced))

    def _picked(self, fresh: list[dict[str, Any]], advanced: dict[str, Any]) -> list[dict[str, Any]]:
        self.save_cursor(advanced)
        self.log.info("new prompt versions: %s", ", ".join(v["key"] for v in fresh))
        return fresh


class NewReleasesSensor(_CursorSensor):
    """Waits for new release tags of a git repository; returns them as `[{"tag", "commit"}]` (XCom).

    Args:
        repo: A local path or anything `git ls-remote` can read.
        tag_pattern: Glob the tags must match (default `v*`).
        initial: On the first look: pick the `latest` tag, `all` tags, or `none`.
        cursor_variable: Airflow Variable holding the cursor (default: one per DAG and task).
    """

    def __init__(
        self,
        *,
        repo: str | Path,
        tag_pattern: str = "v*",
        initial: InitialRuns = "latest",
        cursor_variable: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(cursor_variable=cursor_variable, initial=initial, **kwargs)
        if not isinstance(repo, str | Path) or not str(repo):
            raise ConfigError(f"task {self.task_id!r}: repo must be a path or git URL, got {repo!r}")
        self.repo = str(repo)
        self.tag_pattern = require_text(tag_pattern, "tag_pattern", self.task_id)

    def poke(self, context: Any) -> PokeReturnValue:
        releases = list_tags(self.repo, str(self.tag_pattern))
        fresh, advanced = new_releases(releases, self.load_cursor(), self.initial)
        self.save_cursor(advanced)
        if not fresh:
            self.log.info("no new releases matching %r in %s", self.tag_pattern, self.repo)
            return PokeReturnValue(is_done=False)
        self.log.info("new releases: %s", ", ".join(r.tag for r in fresh))
        return PokeReturnValue(is_done=True, xcom_value=[{"tag": r.tag, "commit": r.commit} for r in fresh])
