"""The two pagination styles the fakes serve.

- `cursor_window`: id cursors `starting_after` / `ending_before` plus `limit`, as Braintrust's list endpoints
  (braintrustdata/braintrust-openapi@b561b12dd30b9862a48e391e86b33e96043cdc0a:openapi/spec.json, parameters
  `StartingAfter`, `EndingBefore`, `AppLimitParam`). Both cursors at once is a 400 (unconfirmed: the
  extract carries no description of the combination).
- `page_number`: Django REST framework page numbers `{count, next, previous, results}`, as Keywords AI's list
  endpoints (respanai/respan-python-api, e.g. src/respan/datasets/types/list_datasets_response.py); a page
  past the end is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request

T = TypeVar("T")


Reject = Callable[[str], Exception]


def cursor_window(
    items: Sequence[T],
    key: Callable[[T], str],
    after: str | None,
    before: str | None,
    limit: int | None,
    *,
    reject: Reject,
) -> list[T]:
    """The items after `after` (or before `before`), at most `limit` of them (the last ones for `before`);
    `reject(message)` is the vendor's error for both cursors at once."""
    if after and before:
        raise reject("pass only one of starting_after and ending_before")
    chosen = list(items)
    position = [key(item) for item in chosen]
    if after:
        chosen = chosen[position.index(after) + 1 :] if after in position else []
    if before:
        chosen = chosen[: position.index(before)] if before in position else []
    if limit is not None:
        chosen = chosen[-limit:] if before else chosen[:limit]
    return chosen


def page_number(
    request: Request, items: Sequence[Any], *, max_size: int, default_size: int, reject: Reject
) -> dict[str, Any]:
    """One page of `items` by the request's `page` / `page_size` (sizes clamped to 1..`max_size`), with
    absolute `next` / `previous` links; `reject(message)` is the vendor's error for a page out of range."""

    def number(name: str, default: int) -> int:
        raw = request.query_params.get(name)
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else default

    size = min(max(number("page_size", default_size), 1), max_size)
    page = number("page", 1)
    pages = max(1, math.ceil(len(items) / size))
    if page < 1 or page > pages:
        raise reject("Invalid page.")

    def link(n: int) -> str:
        return str(request.url.include_query_params(page=n, page_size=size))

    return {
        "count": len(items),
        "next": link(page + 1) if page < pages else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": list(items[(page - 1) * size : page * size]),
    }
