"""Evaluators the Keywords AI fake runs over dataset logs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def char_count(input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]) -> float | None:
    """Characters in the output (its compact JSON text when it is not a string)."""
    return None if output is None else float(len(_text(output)))


def exact_match(input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]) -> bool | None:
    """Output equals expected_output (strings compared with surrounding whitespace stripped)."""
    if expected is None:
        return None
    if isinstance(output, str) and isinstance(expected, str):
        return output.strip() == expected.strip()
    return output == expected


@dataclass
class FakeEvaluator:
    """An evaluator the fake can run: `fn(input, output, expected, metadata)` returns a number (numerical),
    a bool (boolean) or None (log not scored)."""

    slug: str
    name: str
    fn: Callable[[Any, Any, Any, Mapping[str, Any]], float | bool | None]
    type: str = "code"
    score_value_type: str = "numerical"
    description: str = ""
    id: str = ""

    def as_json(self) -> dict[str, Any]:
        """The evaluator as the list-evaluators endpoint returns it."""
        # Keywords-AI/Keywords-AI-Docs@dffa0de341e0e71eae546aef24a9fe4ca6c251ea:
        # api-endpoints/evaluate/evaluators/list.mdx
        return {
            "id": self.id,
            "name": self.name,
            "evaluator_slug": self.slug,
            "type": self.type,
            "score_value_type": self.score_value_type,
            "eval_class": "",
            "description": self.description,
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "custom_required_fields": [],
            "categorical_choices": None,
            "starred": False,
            "tags": [],
        }


def builtin_evaluators() -> list[FakeEvaluator]:
    return [
        FakeEvaluator(
            "char_count_eval", "Character count", char_count, description="Characters in the output"
        ),
        FakeEvaluator(
            "exact_match_eval",
            "Exact match",
            exact_match,
            score_value_type="boolean",
            description="Output equals the expected output",
        ),
    ]
