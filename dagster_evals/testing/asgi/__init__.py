"""The toolkit the fake vendor servers are built on: routing, admission, JSON bodies, error envelopes,
rate limits, pagination, fault injection and serving (see `FakeAPI`)."""

from dagster_evals.testing.asgi.app import Call, FakeAPI, compact_json
from dagster_evals.testing.asgi.errors import ApiError
from dagster_evals.testing.asgi.http import credential, decode_json
from dagster_evals.testing.asgi.limits import SlidingWindow
from dagster_evals.testing.asgi.pagination import cursor_window, page_number
from dagster_evals.testing.asgi.routing import Match, Route, Router

__all__ = [
    "ApiError",
    "Call",
    "FakeAPI",
    "Match",
    "Route",
    "Router",
    "SlidingWindow",
    "compact_json",
    "credential",
    "cursor_window",
    "decode_json",
    "page_number",
]
