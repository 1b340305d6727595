"""The fake Braintrust server's storage: objects, and versioned event stores with Braintrust's transaction
semantics (every write request is one transaction with a new, increasing `_xact_id`; rows keep their
history, so `version=<xact id>` reads an object exactly as it was)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster_evals.testing.asgi.errors import ApiError

XACT_START = 1000192656880881099
PRETTY_MULTIPLIER = 205891132094649
MASK64 = 2**64 - 1


def prettify_xact(xact: str) -> str:
    """Braintrust's 16-hex display form of a numeric transaction id."""
    return f"{(int(xact) * PRETTY_MULTIPLIER) & MASK64:016x}"


def parse_version(value: str) -> int:
    """A numeric transaction id from either form (numeric, or the 16-hex pretty form)."""
    if value.isdigit() and len(value) != 16:
        return int(value)
    try:
        return (int(value, 16) * pow(PRETTY_MULTIPLIER, -1, 2**64)) & MASK64
    except ValueError:
        raise HttpError(400, f"invalid version {value!r}: expected a transaction id") from None


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class HttpError(ApiError):
    """An error in the fake's Braintrust envelope `{"error": message}`. The spec
    (braintrustdata/braintrust-openapi@b561b12dd30b9862a48e391e86b33e96043cdc0a:openapi/spec.json) types
    error bodies only as `text/plain` string or untyped JSON, so the envelope itself is unconfirmed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, {"error": message})
        self.message = message


def deep_merge(base: dict[str, Any], update: dict[str, Any], stop: set[tuple[str, ...]], path=()) -> dict:
    merged = dict(base)
    for key, value in update.items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and here not in stop:
            merged[key] = deep_merge(merged[key], value, stop, here)
        else:
            merged[key] = value
    return merged


# -- versioned event storage ----------------------------------------------------------------------------
class EventStore:
    """The events of one object (a dataset, an experiment, a project's logs), with their history."""

    def __init__(self, kind: str, object_fields: dict[str, str]) -> None:
        self.kind = kind
        self.object_fields = object_fields
        self.history: dict[str, list[tuple[int, dict[str, Any] | None]]] = {}
        self.last_xact = 0
        self.live = 0
        self._views: dict[int, list[tuple[int, str]]] = {}

    def apply(self, events: list[dict[str, Any]], xact: int) -> list[str]:
        """Write events in one transaction; returns the row ids in input order."""
        ids = []
        created = now_iso()
        for raw in events:
            event = dict(raw)
            row_id = event.pop("id", None) or uuid.uuid4().hex
            is_merge = bool(event.pop("_is_merge", False))
            merge_paths = event.pop("_merge_paths", None) or []
            delete = bool(event.pop("_object_delete", False))
            array_delete = event.pop("_array_delete", None) or []
            event.pop("_parent_id", None)
            for key in ("dataset_id", "experiment_id", "project_id", "log_id", "_xact_id"):
                event.pop(key, None)
            history = self.history.setdefault(row_id, [])
            current = history[-1][1] if history else None
            record: dict[str, Any] | None
            if delete:
                record = None
            elif is_merge and current is not None:
                record = deep_merge(current, event, {tuple(p) for p in merge_paths})
                for item in array_delete:
                    target: Any = record
                    *parents, last = item["path"]
                    for part in parents:
                        target = target.get(part, {}) if isinstance(target, dict) else {}
                    if isinstance(target, dict) and isinstance(target.get(last), list):
                        target[last] = [v for v in target[last] if v not in item["delete"]]
            else:
                record = event
                record.setdefault("created", created)
            if (current is not None) != (record is not None):
                self.live += 1 if record is not None else -1
            if history and history[-1][0] == xact:
                history[-1] = (xact, record)
            else:
                history.append((xact, record))
            ids.append(row_id)
        self.last_xact = max(self.last_xact, xact)
        self._views.clear()
        return ids

    def view(self, version: int | None) -> list[tuple[int, str]]:
        """(-xact, id) of the rows live at `version`, newest first."""
        at = self.last_xact if version is None else min(version, self.last_xact)
        cached = self._views.get(at)
        if cached is not None:
            return cached
        keys = []
        for row_id, history in self.history.items():
            entry = self._entry_at(history, at)
            if entry is not None and entry[1] is not None:
                # Pages follow the row's pagination key (when it was first written), not its latest
                # transaction: an updated old row stays deep in the order, as on the real API, so the
                # first event of a page is not the newest write.
                keys.append((-history[0][0], row_id))
        keys.sort()
        self._views[at] = keys
        return keys

    @staticmethod
    def _entry_at(history: list[tuple[int, dict | None]], at: int) -> tuple[int, dict | None] | None:
        if history[-1][0] <= at:
            return history[-1]
        for entry in reversed(history):
            if entry[0] <= at:
                return entry
        return None

    def event(self, row_id: str, at: int) -> dict[str, Any]:
        xact, record = self._entry_at(self.history[row_id], at)  # type: ignore[misc]
        assert record is not None
        out: dict[str, Any] = {"id": row_id, "_xact_id": str(xact), **self.object_fields}
        out.update(record)
        out.setdefault("span_id", row_id)
        out.setdefault("root_span_id", out["span_id"])
        out.setdefault("is_root", not record.get("span_parents"))
        return out

    def rows(self, version: int | None = None) -> list[dict[str, Any]]:
        at = self.last_xact if version is None else version
        return [self.event(row_id, at) for _, row_id in self.view(version)]


@dataclass
class Obj:
    """A project, dataset, experiment, prompt or function."""

    kind: str
    data: dict[str, Any]
    seq: int
    store: EventStore | None = None
    versions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.data["id"]
