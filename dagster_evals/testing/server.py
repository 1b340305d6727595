"""Serve an ASGI app (a fake platform) over real HTTP on 127.0.0.1, or hand out an in-process transport."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import httpx
import uvicorn


class ServerThread:
    """Runs an ASGI app with uvicorn on 127.0.0.1 (a free port by default) in a background thread.

    Examples:
        .. code-block:: python

            with ServerThread(app) as server:
                httpx.get(server.url + "/health")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="critical", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dagster-evals-fake", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        """Serve the app on `host` and `port` (a free one when 0) in a thread; returns once it accepts
        connections, with `port` set."""
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app in-process, on one private event loop.

    An exception inside the app (e.g. an injected dropped connection) reaches the client as
    `httpx.RemoteProtocolError`, as a broken connection would.
    """

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dagster-evals-asgi", daemon=True)
        self._thread.start()

    async def _call(
        self, request: httpx.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        response = await self._transport.handle_async_request(forwarded)
        content = await response.aread()
        return response.status_code, response.headers.raw, content

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        future = asyncio.run_coroutine_threadsafe(self._call(request, body), self._loop)
        try:
            status, headers, content = future.result()
        except Exception as exc:
            raise httpx.RemoteProtocolError(f"server closed the connection: {exc}", request=request) from exc
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def in_process_transport(app: Any) -> httpx.BaseTransport:
    """A synchronous httpx transport that calls the ASGI app in-process (no socket)."""
    return InProcessTransport(app)
