"""What every endpoint group of the Braintrust REST client shares: the HTTP client, paginated object lists,
event inserts and paged event fetches. Paths and parameters: braintrustdata/braintrust-openapi
`openapi/spec.json` (see `docs/api-versions.md` for the commit)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dagster_evals.backends.braintrust.models import (
    DEFAULT_FETCH_LIMIT,
    BtRequest,
    FetchEventsRequest,
    FetchEventsResponse,
    InsertEventsResponse,
    ObjectList,
)
from dagster_evals.engine.http import HttpClient
from dagster_evals.engine.seen_ids import SeenIds

__all__ = ["BraintrustClientBase", "query_params"]


def query_params(**values: Any) -> dict[str, Any]:
    """The query parameters that are set (None values left out)."""
    return {k: v for k, v in values.items() if v is not None}


class BraintrustClientBase:
    """The HTTP client (retries, pacing, redaction) and the list, insert and fetch calls every object shares."""

    def __init__(self, http: HttpClient, *, org_name: str | None = None) -> None:
        self.http = http
        self.org_name = org_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http!r})"

    def close(self) -> None:
        self.http.close()

    # -- lists -------------------------------------------------------------------------------------
    def _list(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return ObjectList.model_validate(self.http.get(path, params=params)).objects

    def iter_objects(
        self, path: str, params: Mapping[str, Any], *, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every object of a `GET /v1/<object>` list, paging with `starting_after`."""
        after: str | None = None
        while True:
            page = self._list(path, {**params, "limit": page_size, **query_params(starting_after=after)})
            yield from page
            if len(page) < page_size:
                return
            after = page[-1]["id"]

    # -- inserts and fetches -----------------------------------------------------------------------
    def _insert(self, path: str, events: Sequence[BtRequest], idempotent: bool) -> InsertEventsResponse:
        body = {"events": [e.body() for e in events]}
        return InsertEventsResponse.model_validate(self.http.post(path, json=body, idempotent=idempotent))

    def insert_raw(self, path: str, body: bytes, *, idempotent: bool) -> InsertEventsResponse:
        """POST an already-serialized `{"events": [...]}` body (the fast path for large syncs)."""
        response = self.http.post(
            path, content=body, headers={"Content-Type": "application/json"}, idempotent=idempotent
        )
        return InsertEventsResponse.model_validate(response)

    def _fetch(self, path: str, body: FetchEventsRequest) -> FetchEventsResponse:
        return FetchEventsResponse.model_validate(self.http.post(path, json=body.body(), idempotent=True))

    def iter_events(
        self, path: str, *, version: str | None = None, page_size: int = DEFAULT_FETCH_LIMIT
    ) -> Iterator[dict[str, Any]]:
        """Every event of an object, page by page (newest first), each id once."""
        cursor: str | None = None
        seen = SeenIds()  # on disk past a bound: memory stays flat in the event count
        try:
            while True:
                request = FetchEventsRequest(limit=page_size, **query_params(cursor=cursor, version=version))
                page = self._fetch(path, request)
                for event in page.events:
                    if seen.add(str(event.get("id"))):
                        yield event
                if not page.events or not page.cursor:
                    return
                cursor = page.cursor
        finally:
            seen.close()
