"""Reading requests the way the vendors do: credentials from the `Authorization` header, JSON bodies."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from starlette.requests import Request


def credential(
    request: Request, schemes: Collection[str] = ("bearer",), *, case_sensitive: bool = False
) -> str | None:
    """The key after one of `schemes` in `Authorization: <scheme> <key>`, else None (header missing, or
    another scheme)."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header or (scheme if case_sensitive else scheme.lower()) not in schemes:
        return None
    return key


def _reject_constant(name: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity` are not JSON (RFC 8259); a strict server rejects them."""
    raise ValueError(f"{name} is not valid JSON")


def decode_json(raw: bytes, *, strict: bool = False) -> Any:
    """The JSON value of a body (None when empty); `strict` also rejects NaN and Infinity. Raises
    ValueError on anything else that is not JSON."""
    if not raw:
        return None
    if strict:
        return json.loads(raw, parse_constant=_reject_constant)
    return json.loads(raw)
