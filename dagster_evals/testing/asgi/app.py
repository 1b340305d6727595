"""`FakeAPI`: the base every fake vendor server is built on.

It owns what the fakes share — the route table and its dispatch, admission (request counters,
credentials, scripted failures), JSON bodies, the error envelope hand-off, fault injection and serving over
real HTTP or in-process — and leaves to each vendor only its wire shapes: the error envelope (`error`), how
credentials are checked (`authenticate`), how bodies are read (`read_body`) and how answers are rendered
(`respond`).

Examples:
    .. code-block:: python

        class PingFake(FakeAPI):
            def __init__(self) -> None:
                super().__init__([Route("GET", "/ping", lambda request, body: {"ok": True})])

            def error(self, status: int, message: str, **extra: Any) -> ApiError:
                return ApiError(status, {"error": message})

        with PingFake().serve() as server:
            httpx.get(server.url + "/ping")
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from dagster_evals.testing.asgi.errors import ApiError
from dagster_evals.testing.asgi.http import credential, decode_json
from dagster_evals.testing.asgi.routing import Route, Router
from dagster_evals.testing.faults import FaultInjector
from dagster_evals.testing.server import ServerThread, in_process_transport


@dataclass
class Call:
    """One request on its way through a fake: the matched route, its path arguments and body."""

    request: Request
    route: Route
    arguments: list[str]
    raw: bytes = b""
    body: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.route.key


class FakeAPI:
    """An in-memory vendor API served as an ASGI app, wrapped in a `FaultInjector` (`faults`).

    Subclasses pass their routes and implement `error`; they may override the other hooks. Shared state:
    `lock` (guards the fake's state), `requests` (requests per `METHOD /route`), `faults`.
    """

    #: Trailing slashes and empty path arguments matter (else surrounding slashes are ignored).
    exact_paths: ClassVar[bool] = True
    #: Hold `lock` while a request is admitted, parsed and handled (handlers need no locking of their own).
    serialized: ClassVar[bool] = False
    #: Exceptions of the vendor's request validation, answered by `invalid_request`.
    validation_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, routes: Iterable[Route]) -> None:
        self.lock = threading.RLock()
        self.requests: Counter[str] = Counter()
        self.router = Router(routes, exact=self.exact_paths)
        self.faults = FaultInjector(self._asgi)
        self._failures: deque[tuple[int, float | None]] = deque()

    # -- serving -------------------------------------------------------------------------------------------
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.faults(scope, receive, send)

    @property
    def app(self) -> FakeAPI:
        """The ASGI app (this fake, fault injection included)."""
        return self

    def serve(self, port: int = 0) -> ServerThread:
        """A `ServerThread` serving this fake on 127.0.0.1 (use as a context manager)."""
        return ServerThread(self, port=port)

    def transport(self) -> httpx.BaseTransport:
        """An in-process httpx transport (no socket)."""
        return in_process_transport(self)

    def fail_next(self, count: int = 1, *, status: int = 429, retry_after: float | None = None) -> None:
        """Answer the next `count` admitted requests with `status`, in the vendor's error shape (`failure`)."""
        with self.lock:
            self._failures.extend([(status, retry_after)] * count)

    # -- vendor hooks --------------------------------------------------------------------------------------
    def error(self, status: int, message: str, **extra: Any) -> ApiError:
        """The vendor's error envelope for `message`."""
        raise NotImplementedError

    def failure(self, status: int, retry_after: float | None) -> ApiError:
        """The error a scripted `fail_next` answers with (429s carry `Retry-After`)."""
        headers = {"Retry-After": str(retry_after)} if status == 429 and retry_after is not None else {}
        error = self.error(status, f"HTTP {status}")
        return ApiError(error.status, error.body, {**error.headers, **headers})

    def invalid_request(self, exc: Exception) -> ApiError:
        """The 400 a `validation_errors` exception answers with."""
        return self.error(400, str(exc))

    def not_found(self, request: Request) -> Response:
        """The response to a path the API does not have (the vendor's 404)."""
        return PlainTextResponse("Not Found", status_code=404)

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        """The response to a method the path does not allow (the vendor's 405, with `Allow`)."""
        return PlainTextResponse("Method Not Allowed", status_code=405, headers={"Allow": ", ".join(allowed)})

    def count(self, call: Call) -> None:
        with self.lock:
            self.requests[call.key] += 1

    def authenticate(self, call: Call) -> None:
        """Raise the vendor's 401 unless the request carries an accepted key (default: any bearer key)."""
        if not credential(call.request):
            raise self.error(401, "missing or malformed Authorization header")

    def take_failure(self) -> None:
        """Raise the next scripted failure, if any."""
        with self.lock:
            if self._failures:
                raise self.failure(*self._failures.popleft())

    def admit(self, call: Call) -> None:
        """Count the request, check its credentials (unless the route is public), serve scripted failures."""
        self.count(call)
        if not call.route.public:
            self.authenticate(call)
        self.take_failure()

    def read_body(self, call: Call) -> Any:
        """The request's JSON body (None when empty); malformed JSON is a 400."""
        try:
            return decode_json(call.raw)
        except ValueError as exc:
            raise self.error(400, f"request body is not valid JSON: {exc}") from None

    async def respond(self, call: Call, result: Any) -> Response:
        """The response for a handler's `result` (a `Response` is sent as it is)."""
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    # -- dispatch ------------------------------------------------------------------------------------------
    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        found = self.router.match(request.method, request.url.path)
        if found is None:
            return self.not_found(request)
        if found.route is None:
            return self.method_not_allowed(request, found.allowed)
        call = Call(request, found.route, found.arguments, raw=await request.body())
        try:
            try:
                with self.lock if self.serialized else contextlib.nullcontext():
                    self.admit(call)
                    call.body = self.read_body(call)
                    result = call.route.handler(request, call.body, *call.arguments)
                if inspect.isawaitable(result):
                    result = await result
            except self.validation_errors as exc:
                raise self.invalid_request(exc) from None
            return await self.respond(call, result)
        except ApiError as exc:
            return exc.response()


def compact_json(payload: Any, status: int = 200) -> Response:
    """`payload` as compact JSON with non-ASCII characters escaped."""
    return Response(
        json.dumps(payload, separators=(",", ":")), status_code=status, media_type="application/json"
    )
