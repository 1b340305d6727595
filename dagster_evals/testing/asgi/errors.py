"""The one error type every fake answers with: a status, a JSON body in the vendor's envelope, headers.

Each vendor subclasses it with its own envelope (Braintrust `{"error": message}`, Keywords AI
`{"detail": message}`, OpenAI `{"error": {message, type, param, code}}`); the shared dispatcher turns any of
them into the HTTP response unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """An HTTP error response: `status`, the JSON `body` exactly as the vendor sends it, and `headers`."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"HTTP {status}: {dict(body)}")
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)
