"""Keywords AI's error envelope: `{"detail": message}` (Django REST framework's default shape), plus extra
fields such as a 429's `retry_after`. The envelope is what the fake has always answered with; the vendored
extract (spec/respan_api.json) publishes no error schema, so it is unconfirmed there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_evals.testing.asgi import ApiError


class KeywordsAIError(ApiError):
    """`status` with body `{"detail": detail, **extra}`."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any):
        super().__init__(status, {"detail": detail, **extra}, headers)
        self.detail = detail
