"""An experiment's events grouped into traces: one evaluated row (trial) each, with every score and error
its spans carry.

How Braintrust's own eval frameworks log a row (and so `POST /v1/eval` runs and any experiment written with
`braintrust.Eval`): a root span of type `eval` carrying input/output/expected and, when scorers fail,
`metadata.scorer_errors` ({scorer name: traceback}); one child span per scorer with
`span_attributes.type == "score"` carrying `scores` (braintrust SDK 0.48.1 `braintrust/framework.py`,
`await_or_run_scorer` and the `scorer_errors` block of `run_evaluator_internal`; the JS SDK's
`runEvaluatorInternal` in braintrustdata/braintrust-sdk-javascript `js/src/framework.ts` does the same).
dagster-evals' own local runs log scores on the root span, with `None` for a failed scorer. Both are read:
scores come from every span of the trace, scorer errors from `metadata.scorer_errors` and `None` scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trace:
    """One evaluated row (one trial) of an experiment."""

    root: dict[str, Any] | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)
    failed_scorers: set[str] = field(default_factory=set)

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


def is_root(event: dict[str, Any]) -> bool:
    if event.get("is_root") is not None:
        return bool(event["is_root"])
    return not event.get("span_parents")


def traces(events: Iterable[dict[str, Any]]) -> list[Trace]:
    """Group events by `root_span_id` (an event without one is its own trace), oldest root first."""
    by_root: dict[str, Trace] = {}
    for event in events:
        root_id = str(event.get("root_span_id") or event.get("span_id") or event.get("id"))
        trace = by_root.setdefault(root_id, Trace())
        if is_root(event):
            trace.root = event
            errors = (event.get("metadata") or {}).get("scorer_errors")
            if isinstance(errors, dict | list):
                trace.failed_scorers.update(str(name) for name in errors)
        for name, value in (event.get("scores") or {}).items():
            if value is None or not isinstance(value, int | float) or math.isnan(value):
                trace.failed_scorers.add(name)
            else:
                trace.scores.setdefault(name, []).append(float(value))
    # A scorer that failed on one span but scored on another still counts as failed once.
    return [t for t in by_root.values() if t.root is not None]
