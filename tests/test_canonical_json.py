"""The canonical JSON every content hash, snapshot digest and stored value is written in stays the text
`json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)` writes: a row
synced by an earlier release keeps its content hash (and is not sent again), whatever the value holds."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from typing import Any

import pytest

from dagster_evals import DatasetRow
from dagster_evals.engine.models import canonical_json


class Label(str):
    pass


class Ratio(float):
    pass


class Opaque:
    def __str__(self) -> str:
        return "opaque"


VALUES: list[Any] = [
    "",
    'quote " backslash \\ newline \n nul \x00 accents é emoji 😀',
    0,
    -1,
    10**30,
    True,
    False,
    None,
    0.1,
    -0.0,
    1e300,
    1e-7,
    math.pi,
    math.nan,
    math.inf,
    -math.inf,
    {},
    [],
    {"b": 1, "a": 2.5},
    {"levenshtein": 0.9523809523809523, "exact_match": 1.0, "facts": None},
    {"nested": {"z": [1, {"y": "x"}], "a": (1, "tuple")}},
    {"é": 1, "e": 2, "Z": 3},
    {2: "int key", 1: "another"},
    {f"key{i}": i for i in range(40)},
    Label("a str subclass"),
    Ratio(1.5),
    {"when": datetime.date(2026, 1, 2), "what": Opaque()},
]


def reference(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@pytest.mark.parametrize("value", VALUES, ids=[f"{type(v).__name__}-{i}" for i, v in enumerate(VALUES)])
def test_canonical_json_is_the_reference_text(value: Any) -> None:
    assert canonical_json(value) == reference(value)


def test_a_row_keeps_the_content_hash_of_the_reference_text() -> None:
    row = DatasetRow.build(input={"q": "é?", "n": 2}, expected=0.5, metadata={"source": "faq"}, tags=["a"])
    payload = reference({"input": row.input, "expected": 0.5, "metadata": {"source": "faq"}, "tags": ["a"]})
    assert row.content_hash == hashlib.sha256(payload.encode("utf-8")).hexdigest()


def test_values_json_cannot_write_fail_the_same_way() -> None:
    with pytest.raises(TypeError):
        canonical_json({1: "a", "b": 2})  # keys that cannot be sorted together
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises((ValueError, RecursionError)):
        canonical_json(looped)
