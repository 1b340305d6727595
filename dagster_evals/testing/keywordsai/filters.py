"""Keywords AI filter semantics, as the fake applies them.

Filters are `{field: {"operator": op, "value": v}}` or `{field: v}`; values may be lists (the request-log
docs always send lists: `{"operator": "gt", "value": [0.01]}`). Sources:
Keywords-AI/docs@71815dd53e0a88e37d8fe3308b8f9635ebf6b850:apis/observe/logs/logs-list-endpoint.mdx
(operators, `metadata__<key>`, unknown fields treated as custom metadata) and
apis/evaluate/datasets/logs-remove.mdx / the datasets workflow page (dataset-log filters such as
`metadata.custom_identifier`).

The two sources spell a dataset-log metadata filter differently, and nothing published says which the
server honours, so the fake serves each (`metadata_syntax`): `"dotted"` honours only `metadata.<key>` (the
datasets workflow's delete example), `"double_underscore"` only `metadata__<key>` (the filters reference),
`"both"` either. A spelling the server does not honour is an unknown field: it matches nothing, silently.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, Literal

MetadataSyntax = Literal["both", "dotted", "double_underscore"]
METADATA_SYNTAXES: tuple[MetadataSyntax, ...] = ("both", "dotted", "double_underscore")

OPERATORS = {
    "", "eq", "iexact", "in", "not", "icontains", "contains", "startswith", "endswith",
    "gt", "gte", "lt", "lte", "isnull", "empty", "not_empty",
}  # fmt: skip
# Span fields filtered directly (logs-list-endpoint.mdx "Known span fields"); anything else is metadata.
KNOWN_LOG_FIELDS = {
    "customer_identifier", "custom_identifier", "thread_identifier", "prompt_id", "unique_id",
    "trace_unique_id", "span_name", "span_workflow_name", "model", "deployment_name", "provider_id",
    "status_code", "status", "error_message", "environment", "log_type", "stream", "temperature",
    "max_tokens", "cost", "latency", "tokens_per_second", "time_to_first_token", "prompt_tokens",
    "completion_tokens", "total_request_tokens", "id", "timestamp",
}  # fmt: skip


class FilterError(Exception):
    """A filter the API rejects (400)."""


def _lookup(record: Mapping[str, Any], field: str, *, request_log: bool, syntax: MetadataSyntax) -> Any:
    if field.startswith("metadata__"):
        if syntax == "dotted" and not request_log:
            return record.get(field)  # an unknown field
        return (record.get("metadata") or {}).get(field[len("metadata__") :])
    if field.startswith("metadata.") and syntax == "double_underscore" and not request_log:
        return record.get(field)  # an unknown field
    if request_log:
        if field in KNOWN_LOG_FIELDS:
            return record.get(field)
        # Unknown fields are custom metadata: `metadata.env` looks for a metadata key "metadata.env".
        return (record.get("metadata") or {}).get(field)
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _compare(op: str, actual: Any, value: Any) -> bool:
    listed = value if isinstance(value, list) else [value]
    first = listed[0] if listed else None
    if op in ("", "eq", "in"):
        return actual in listed
    if op == "not":
        return actual not in listed
    if op == "iexact":
        return str(actual).lower() == str(first).lower()
    if op in ("icontains", "contains"):
        text = str(actual or "")
        return str(first).lower() in text.lower() if op == "icontains" else str(first) in text
    if op == "startswith":
        return str(actual or "").startswith(str(first))
    if op == "endswith":
        return str(actual or "").endswith(str(first))
    if op in ("empty", "isnull"):
        return actual in (None, "", [], {})
    if op == "not_empty":
        return actual not in (None, "", [], {})
    if actual is None:
        return False
    return {"gt": actual > first, "gte": actual >= first, "lt": actual < first, "lte": actual <= first}[op]


def matches(
    record: Mapping[str, Any],
    filters: Mapping[str, Any],
    *,
    request_log: bool = False,
    syntax: MetadataSyntax = "both",
) -> bool:
    """Every clause matches (clauses are joined with AND); `syntax`: the metadata spelling honoured."""
    for field, clause in filters.items():
        if isinstance(clause, Mapping) and "value" in clause:
            op, value = clause.get("operator") or "", clause.get("value")
        else:
            op, value = "", clause
        if op not in OPERATORS:
            raise FilterError(f"filters: unsupported operator {op!r} for field {field!r}")
        try:
            ok = _compare(op, _lookup(record, field, request_log=request_log, syntax=syntax), value)
        except TypeError:
            raise FilterError(f"filters: cannot compare field {field!r} with {value!r}") from None
        if not ok:
            return False
    return True


def sample(records: list[dict[str, Any]], percentage: int) -> list[dict[str, Any]]:
    """A deterministic `percentage` share of `records` (ordered by a hash of their id)."""
    keep = math.ceil(len(records) * percentage / 100)
    ranked = sorted(records, key=lambda r: hashlib.sha256(str(r["unique_id"]).encode()).hexdigest())
    return ranked[:keep]
