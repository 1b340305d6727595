"""Route tables of the fakes: `Route` rows matched segment by segment, with `{name}` path arguments.

Two path policies, as the vendors differ: `exact` (Keywords AI, OpenAI: a documented path without its
trailing slash is another path) and loose (Braintrust: surrounding slashes are ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Route:
    """One endpoint: `handler(request, body, *path_arguments)` answers `method path`.

    Args:
        method: HTTP method.
        path: Template such as `/v1/dataset/{id}/fetch`; `{...}` segments are path arguments.
        handler: Returns the vendor's payload (or a ready response); raises `ApiError` to answer an error.
        name: The endpoint's name in the vendor's spec, when the fake validates against one.
        public: No credentials needed (the fakes' own test endpoints).
    """

    method: str
    path: str
    handler: Handler
    name: str = ""
    public: bool = False
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.path.strip("/").split("/")))

    @property
    def key(self) -> str:
        """`METHOD /template`, the key of the fakes' request counters."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Match:
    """A matched path: the route for the method (None: the path exists, the method does not), its path
    arguments, and the methods the path allows."""

    route: Route | None
    arguments: list[str]
    allowed: list[str]


class Router:
    """Finds the route of a request; `exact` compares trailing slashes too and wants non-empty arguments."""

    def __init__(self, routes: Iterable[Route], *, exact: bool = True) -> None:
        self.routes = list(routes)
        self.exact = exact

    def _arguments(self, route: Route, path: str, parts: list[str]) -> list[str] | None:
        if self.exact and path.endswith("/") != route.path.endswith("/"):
            return None
        if len(route.segments) != len(parts):
            return None
        arguments = []
        for want, got in zip(route.segments, parts, strict=True):
            if want.startswith("{"):
                if self.exact and not got:
                    return None
                arguments.append(got)
            elif want != got:
                return None
        return arguments

    def match(self, method: str, path: str) -> Match | None:
        parts = path.strip("/").split("/")
        allowed: list[str] = []
        for route in self.routes:
            arguments = self._arguments(route, path, parts)
            if arguments is None:
                continue
            if route.method == method:
                return Match(route, arguments, [route.method])
            allowed.append(route.method)
        return Match(None, [], allowed) if allowed else None
