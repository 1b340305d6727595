"""Serve an ASGI app (a fake platform) over real HTTP on 127.0.0.1, or hand out an in-process transport."""

from __future__ import annotations

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
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def in_process_transport(app: Any) -> httpx.BaseTransport:
    """A synchronous httpx transport that calls the ASGI app in-process (no socket)."""
    from starlette.testclient import TestClient

    client = TestClient(app, raise_server_exceptions=False)
    return client._transport  # type: ignore[attr-defined]
