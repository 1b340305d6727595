"""JSON has no NaN or Infinity: Python's `json` would write them as bare `NaN`/`Infinity`, which Braintrust
(and any strict JSON parser) rejects. Results are cleaned before they are sent: a non-finite score becomes
a failed scorer (null score, the reason in `scorer_errors`), a non-finite number inside an output or
metadata becomes null with a row-level error naming where it was."""

from __future__ import annotations

import math
from typing import Any

from dagster_evals.engine.models import RowResult


def without_non_finite(value: Any, path: str, found: list[str]) -> Any:
    """`value` with every NaN/Infinity replaced by None; the JSON paths replaced are appended to `found`."""
    if isinstance(value, float) and not math.isfinite(value):
        found.append(path)
        return None
    if isinstance(value, dict):
        return {k: without_non_finite(v, f"{path}.{k}", found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_non_finite(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def finite_result(result: RowResult) -> RowResult:
    """The result with NaN/Infinity removed (see the module docstring); unchanged when there is none."""
    scorer_errors = dict(result.scorer_errors)
    scores: dict[str, float | None] = {}
    for name, score in result.scores.items():
        if score is not None and not math.isfinite(score):
            scores[name] = None
            scorer_errors[name] = f"scorer {name!r} returned {score}, which is not a number in [0, 1]"
        else:
            scores[name] = score
    found: list[str] = []
    output = without_non_finite(result.output, "output", found)
    metadata = without_non_finite(result.metadata, "metadata", found)
    if not found and scorer_errors == result.scorer_errors:
        return result
    update: dict[str, Any] = {
        "scores": scores,
        "scorer_errors": scorer_errors,
        "output": output,
        "metadata": metadata,
    }
    if found and result.error is None:
        update["error"] = f"NaN/Infinity at {', '.join(found)} cannot be sent as JSON; stored as null"
    return result.model_copy(update=update)
