"""How a platform-neutral `DatasetRow` travels as a Keywords AI dataset log, and back.

`input` → `input`, `expected` → `expected_output`, `output` is `null` for curated rows. The row's id,
content hash and tags ride in the log's metadata next to the row's own metadata. A structured `expected`
is sent as JSON text with a marker: the server returns structured `expected_output` values as their
Python repr, and JSON text survives the round trip exactly.
"""

from __future__ import annotations

import json
from typing import Any

from dagster_evals.backends.keywordsai.models import DatasetLog, DatasetLogInput, decode_python_repr
from dagster_evals.engine.errors import InputError
from dagster_evals.engine.models import DatasetRow, canonical_json, content_hash

ROW_ID_KEY = "dagster_evals_row_id"
HASH_KEY = "dagster_evals_hash"
TAGS_KEY = "dagster_evals_tags"
EXPECTED_JSON_KEY = "dagster_evals_expected_json"
RESULT_KEY = "dagster_evals_result_id"
TRIAL_KEY = "dagster_evals_trial"
SCORES_KEY = "dagster_evals_scores"
SCORER_ERRORS_KEY = "dagster_evals_scorer_errors"
ERROR_KEY = "dagster_evals_error"
LATENCY_KEY = "dagster_evals_latency_s"
RUN_KEY = "dagster_evals_run"
RESERVED_KEYS = frozenset(
    {
        ROW_ID_KEY, HASH_KEY, TAGS_KEY, EXPECTED_JSON_KEY, RESULT_KEY, TRIAL_KEY, SCORES_KEY,
        SCORER_ERRORS_KEY, ERROR_KEY, LATENCY_KEY, RUN_KEY,
    }
)  # fmt: skip


def json_safe(value: Any) -> Any:
    return json.loads(canonical_json(value))


def encode_expected(expected: Any) -> tuple[Any, bool]:
    """`(wire value, marker)`: structured values go as JSON text (marker True), others as they are."""
    if isinstance(expected, dict | list):
        return canonical_json(expected), True
    return json_safe(expected), False


def decode_expected(log: DatasetLog) -> Any:
    """The expected value as it was written: JSON text decoded when the marker says so; a Python-repr
    string of a structure (written by another client) decoded back to the structure."""
    value = log.expected_output
    if (log.metadata or {}).get(EXPECTED_JSON_KEY) and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if (log.metadata or {}).get(ROW_ID_KEY) is None:
        return decode_python_repr(value)
    return value


def log_from_row(row: DatasetRow) -> DatasetLogInput:
    clash = sorted(RESERVED_KEYS & set(row.metadata))
    if clash:
        raise InputError(
            f"row {row.id!r}: metadata field {clash[0]!r} is reserved by dagster-evals on Keywords AI; "
            "rename it in the source"
        )
    metadata = {**json_safe(row.metadata), ROW_ID_KEY: row.id, HASH_KEY: row.content_hash}
    if row.tags:
        metadata[TAGS_KEY] = list(row.tags)
    expected, structured = encode_expected(row.expected)
    if structured:
        metadata[EXPECTED_JSON_KEY] = True
    return DatasetLogInput(
        input=json_safe(row.input), output=None, expected_output=expected, metadata=metadata
    )


def row_from_log(log: DatasetLog) -> tuple[DatasetRow, bool]:
    """The row a log holds, and whether dagster-evals wrote it (False: its id is the log's unique_id)."""
    metadata = dict(log.metadata or {})
    row_id = metadata.get(ROW_ID_KEY)
    stored_hash = metadata.get(HASH_KEY)
    tags = metadata.get(TAGS_KEY) or []
    for key in RESERVED_KEYS:
        metadata.pop(key, None)
    expected = decode_expected(log)
    ours = row_id is not None
    digest = stored_hash or content_hash(log.input, expected, metadata, list(tags))
    row = DatasetRow(
        id=str(row_id if ours else log.log_id),
        input=log.input,
        expected=expected,
        metadata=metadata,
        tags=list(tags),
        content_hash=str(digest),
    )
    return row, ours
