"""Deferrable waits: the triggers poll a platform from Airflow's triggerer, not from a worker slot.

- `KeywordsAIEvalRunTrigger` waits for a Keywords AI eval run (evaluators over a dataset's logs).
- `PlatformEvalTrigger` runs an eval that happens entirely on the platform (Braintrust `/v1/eval`: task
  and scorers are platform functions) through the platform's own `run_eval`, and hands back the report.
- `PromptVersionTrigger` waits for new versions of prompts (see `sensors.NewPromptVersionsSensor`).

The platform's own client (sync httpx) runs each poll in a thread; between polls the trigger sleeps on the
event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from dagster_evals.airflow.hooks import EvalsHook
from dagster_evals.engine.errors import AuthError
from dagster_evals.engine.models import EvalRequest, PlatformFunction
from dagster_evals.engine.new_versions import InitialRuns, new_prompt_versions


def list_new_versions(
    hook: EvalsHook,
    cursor: dict[str, Any],
    slugs: Sequence[str] | None,
    project: str | None,
    initial: InitialRuns,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """New prompt versions (as small dicts, oldest first) and the advanced cursor: what the sensor and the
    trigger poll for."""
    platform = hook.get_platform()
    known: dict[str, str] = dict(cursor.get("prompts", {}))
    latest_only = initial != "all"
    if slugs:
        versions = [
            v
            for slug in slugs
            for v in platform.list_prompt_versions(
                project=project, slug=slug, newer_than=known, latest_only=latest_only
            )
        ]
    else:
        versions = platform.list_prompt_versions(project=project, newer_than=known, latest_only=latest_only)
    fresh, advanced = new_prompt_versions(versions, cursor, initial)
    picked = [
        {
            "slug": v.slug,
            "version": v.version,
            "prompt_id": v.prompt_id,
            "project": v.project,
            "platform": v.platform,
            "key": v.partition_key,
        }
        for v in fresh
    ]
    return picked, advanced


class KeywordsAIEvalRunTrigger(BaseTrigger):
    """Fires once the eval run `keys` on dataset `dataset_id` is final (or failed, or past `timeout_s`).

    The event is `{"status": "completed" | "failed" | "timeout" | "error", "report_id", "message",
    "carry"}`; `carry` is handed back unchanged (what the resuming task needs, e.g. its baseline).
    """

    def __init__(
        self,
        conn_id: str,
        dataset_id: str,
        keys: Sequence[str],
        poll_interval_s: float = 5.0,
        timeout_s: float = 1800.0,
        carry: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.carry = dict(carry or {})
        self.dataset_id = dataset_id
        self.keys = list(keys)
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "dataset_id": self.dataset_id,
                "keys": self.keys,
                "poll_interval_s": self.poll_interval_s,
                "timeout_s": self.timeout_s,
                "carry": self.carry,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        report_id = f"{self.dataset_id}:{','.join(self.keys)}"
        deadline = time.monotonic() + self.timeout_s
        hook: EvalsHook | None = None
        try:
            while True:
                try:
                    if hook is None:
                        hook = await asyncio.to_thread(EvalsHook.for_connection, self.conn_id)
                    platform: Any = await asyncio.to_thread(hook.get_platform)
                    tasks = await asyncio.to_thread(platform.find_tasks, self.dataset_id, self.keys)
                except Exception as exc:
                    message = connection_error(self.conn_id, f"read eval run {report_id}", exc)
                    yield TriggerEvent(
                        {"status": "error", "report_id": report_id, "message": message, "carry": self.carry}
                    )
                    return
                event = _eval_run_event(report_id, tasks)
                if event is not None:
                    yield TriggerEvent({**event, "carry": self.carry})
                    return
                if time.monotonic() >= deadline:
                    statuses = ", ".join(sorted({t.status or "?" for t in tasks}))
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "report_id": report_id,
                            "message": f"eval run {report_id} on Keywords AI is still {statuses} after "
                            f"{self.timeout_s:.0f}s",
                            "carry": self.carry,
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval_s)
        finally:
            if hook is not None:
                await asyncio.to_thread(hook.close)


def _eval_run_event(report_id: str, tasks: Sequence[Any]) -> dict[str, Any] | None:
    """The event for final tasks (using the tasks' own `state`), or None while any is still running."""
    if not tasks:
        return {
            "status": "error",
            "report_id": report_id,
            "message": f"eval run {report_id} is not among the dataset's eval runs",
        }
    failed = [t for t in tasks if t.state == "failed"]
    if failed:
        reasons = "; ".join(
            f"{', '.join(t.slugs) or t.key}: {t.status} {t.error_message or ''}".strip() for t in failed
        )
        return {
            "status": "failed",
            "report_id": report_id,
            "message": f"eval run {report_id} on Keywords AI ended failed ({reasons})",
        }
    if all(t.state == "completed" for t in tasks):
        return {"status": "completed", "report_id": report_id, "message": "completed"}
    return None


class PlatformEvalTrigger(BaseTrigger):
    """Runs `request` (task and scorers all `PlatformFunction`s) with the connection's platform.

    The event is `{"status": "completed", "report": {...}, "carry"}` or `{"status": "error", "message"}`.
    """

    def __init__(self, conn_id: str, request: dict[str, Any], carry: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.request = dict(request)
        self.carry = dict(carry or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"conn_id": self.conn_id, "request": self.request, "carry": self.carry},
        )

    def eval_request(self) -> EvalRequest:
        data = dict(self.request)
        data["task"] = PlatformFunction.model_validate(data["task"])
        data["scorers"] = [PlatformFunction.model_validate(s) for s in data["scorers"]]
        return EvalRequest.model_validate(data)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook: EvalsHook | None = None
        try:
            hook = await asyncio.to_thread(EvalsHook.for_connection, self.conn_id)
            platform = await asyncio.to_thread(hook.get_platform)
            report = await asyncio.to_thread(platform.run_eval, self.eval_request())
        except Exception as exc:  # messages name no key (the HTTP client redacts)
            message = connection_error(self.conn_id, "run the eval", exc)
            yield TriggerEvent({"status": "error", "message": message, "carry": self.carry})
            return
        finally:
            if hook is not None:
                await asyncio.to_thread(hook.close)
        yield TriggerEvent(
            {"status": "completed", "report": report.model_dump(mode="json"), "carry": self.carry}
        )


class PromptVersionTrigger(BaseTrigger):
    """Fires when a prompt (of `slugs`, or any of the project) has a version newer than `cursor`.

    The event is `{"status": "new_versions", "versions": [...], "cursor": {...}}` (the shared
    `new_prompt_versions` rule: each version once; the sensor stores the new cursor when it resumes),
    `{"status": "timeout", "message"}` once `deadline` (seconds since the epoch, so a trigger moved to
    another triggerer keeps it) has passed with no new version, or `{"status": "error", "message"}` when
    the platform cannot be read: the message names the connection and never its key.

    Its serialized form (stored in Airflow's metadata database) holds the connection id, never the key.
    """

    def __init__(
        self,
        conn_id: str,
        cursor: dict[str, Any],
        slugs: Sequence[str] | None = None,
        project: str | None = None,
        initial: InitialRuns = "latest",
        poll_interval_s: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.cursor = dict(cursor)
        self.slugs = list(slugs) if slugs else None
        self.project = project
        self.initial: InitialRuns = initial
        self.poll_interval_s = poll_interval_s
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "cursor": self.cursor,
                "slugs": self.slugs,
                "project": self.project,
                "initial": self.initial,
                "poll_interval_s": self.poll_interval_s,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook: EvalsHook | None = None
        try:
            hook = await asyncio.to_thread(EvalsHook.for_connection, self.conn_id)
            while True:
                fresh, advanced = await asyncio.to_thread(
                    list_new_versions, hook, self.cursor, self.slugs, self.project, self.initial
                )
                if fresh:
                    yield TriggerEvent({"status": "new_versions", "versions": fresh, "cursor": advanced})
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": f"no new prompt version on connection {self.conn_id!r} before the "
                            "sensor's timeout",
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval_s)
        except Exception as exc:  # a trigger that cannot read the platform says so once, and stops
            message = connection_error(self.conn_id, "read new prompt versions", exc)
            yield TriggerEvent({"status": "error", "message": message})
        finally:
            if hook is not None:
                await asyncio.to_thread(hook.close)


def connection_error(conn_id: str, doing: str, exc: Exception) -> str:
    """One line naming the connection and what went wrong (the HTTP client's errors name no key); a refused
    key points at the connection's password rather than an environment variable."""
    if isinstance(exc, AuthError):
        return (
            f"cannot {doing} through connection {conn_id!r}: {exc.platform} {exc.endpoint} refused the API key "
            f"(HTTP {exc.status}): {exc.platform_message.split(' — check the API key')[0]} — put a valid key in "
            f"the password of Airflow connection {conn_id!r}"
        )
    return f"cannot {doing} through connection {conn_id!r}: {type(exc).__name__}: {exc}"
