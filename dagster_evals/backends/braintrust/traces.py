"""An experiment's events grouped into traces: one evaluated row (trial) each, with every score and error
its spans carry.

How Braintrust's own eval frameworks log a row (and so `POST /v1/eval` runs and any experiment written with
`braintrust.Eval`): a root span of type `eval` carrying input/output/expected and, when scorers fail,
`metadata.scorer_errors` ({scorer name: traceback}); one child span per scorer with
`span_attributes.type == "score"` carrying `scores` (braintrust SDK 0.48.1 `braintrust/framework.py`,
`await_or_run_scorer` and the `scorer_errors` block of `run_evaluator_internal`; the JS SDK's
`runEvaluatorInternal` in braintrustdata/braintrust-sdk-javascript `js/src/framework.ts` does the same).
dagster-evals' own local runs log scores on the root span, a failed scorer as `None` plus its entry in
`metadata.scorer_errors`. Both are read: scores come from every span of the trace, scorer errors from
`metadata.scorer_errors` and from values that are not numbers (NaN, text).

A `None` score is a skipped evaluation, not a failure: "If the score is None, the evaluation is considered
to be skipped" (braintrustdata/braintrust-sdk@211f450c27be7a94935b42d9c6a6c416820e5853:
py/src/braintrust/score.py, `Score.score`). A skipped scorer is kept out of the mean and out of the error
budget and counted apart (`Trace.skipped_scorers`, `ScoreSummary.skipped`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dagster_evals.engine.row_index import SpillFile

# Events written to the spill file at a time.
SPILL_BATCH = 2_000


@dataclass
class Trace:
    """One evaluated row (one trial) of an experiment."""

    root: dict[str, Any] | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)
    failed_scorers: set[str] = field(default_factory=set)
    skipped_scorers: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        """The dataset row it evaluated: `origin.id`, else its input."""
        root = self.root or {}
        origin = root.get("origin") or {}
        if origin.get("id"):
            return str(origin["id"])
        return json.dumps(root.get("input"), sort_keys=True, default=str)

    @property
    def task_error(self) -> bool:
        return bool((self.root or {}).get("error"))

    @property
    def finished(self) -> bool:
        """The root span was closed: it has an output or an error, or an end time."""
        root = self.root or {}
        metrics = root.get("metrics") or {}
        return bool(root.get("error")) or "output" in root or metrics.get("end") is not None

    def mean_scores(self) -> dict[str, float]:
        return {name: sum(v) / len(v) for name, v in self.scores.items() if v}

    @property
    def skipped(self) -> set[str]:
        """Scorers that skipped this row: only `None` on every span, and not reported as failed."""
        return {n for n in self.skipped_scorers if n not in self.failed_scorers and not self.scores.get(n)}


def is_root(event: dict[str, Any]) -> bool:
    if event.get("is_root") is not None:
        return bool(event["is_root"])
    return not event.get("span_parents")


def _compact_root(event: dict[str, Any]) -> dict[str, Any]:
    """What a `Trace` reads from its root span, without the input/output payloads (except an input that
    is the row's key because it has no `origin.id`)."""
    root: dict[str, Any] = {}
    origin = event.get("origin") or {}
    if origin.get("id"):
        root["origin"] = {"id": origin["id"]}
    elif "input" in event:
        root["input"] = event["input"]
    if event.get("error"):
        root["error"] = event["error"]
    if "output" in event:
        root["output"] = None
    end = (event.get("metrics") or {}).get("end")
    if end is not None:
        root["metrics"] = {"end": end}
    return root


def _spans(
    event: dict[str, Any],
) -> tuple[dict[str, Any] | None, list[str], dict[str, float], list[str]]:
    """An event as `(compact root or None, scorers it says failed, valid scores, scorers that skipped)`."""
    root = None
    failed: list[str] = []
    skipped: list[str] = []
    if is_root(event):
        root = _compact_root(event)
        errors = (event.get("metadata") or {}).get("scorer_errors")
        if isinstance(errors, dict | list):
            failed.extend(str(name) for name in errors)
    scores: dict[str, float] = {}
    for name, value in (event.get("scores") or {}).items():
        if value is None:
            skipped.append(name)
        elif not isinstance(value, int | float) or math.isnan(value):
            failed.append(name)
        else:
            scores[name] = float(value)
    return root, failed, scores, skipped


def traces(events: Iterable[dict[str, Any]]) -> Iterator[Trace]:
    """Group events by `root_span_id` (an event without one is its own trace), oldest root first.

    Streamed in bounded memory: each event is reduced to what a `Trace` needs and written to a temporary
    SQLite file (`row_index.SpillFile`), which gives the events back grouped by trace.
    """
    spill = SpillFile()
    try:
        conn = spill.conn
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, root_id TEXT NOT NULL, root TEXT, failed TEXT, "
            "scores TEXT, skipped TEXT)"
        )
        batch: list[tuple[str, str | None, str, str, str]] = []

        def write() -> None:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO events (root_id, root, failed, scores, skipped) VALUES (?, ?, ?, ?, ?)", batch
            )
            conn.execute("COMMIT")
            batch.clear()

        for event in events:
            root_id = str(event.get("root_span_id") or event.get("span_id") or event.get("id"))
            root, failed, scores, skipped = _spans(event)
            encoded_root = None if root is None else json.dumps(root)
            batch.append((root_id, encoded_root, json.dumps(failed), json.dumps(scores), json.dumps(skipped)))
            if len(batch) >= SPILL_BATCH:
                write()
        if batch:
            write()
        query = (
            "SELECT e.root_id, e.root, e.failed, e.scores, e.skipped FROM events e JOIN "
            "(SELECT root_id, MIN(seq) AS first FROM events GROUP BY root_id) f ON f.root_id = e.root_id "
            "ORDER BY f.first, e.seq"
        )
        current: str | None = None
        trace = Trace()
        for root_id, root, failed, scores, skipped in spill.fetch(query):
            if root_id != current:
                if trace.root is not None:
                    yield trace
                current, trace = str(root_id), Trace()
            if root is not None:
                trace.root = json.loads(str(root))
            trace.failed_scorers.update(json.loads(str(failed)))
            trace.skipped_scorers.update(json.loads(str(skipped)))
            for name, value in json.loads(str(scores)).items():
                trace.scores.setdefault(name, []).append(value)
        # A scorer that failed on one span but scored on another still counts as failed once.
        if trace.root is not None:
            yield trace
    finally:
        spill.close()
