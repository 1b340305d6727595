"""The judge client's aiohttp session against a raw HTTP/1.1 server (and a forwarding proxy) on 127.0.0.1.

The server writes exactly the bytes each test scripts, so framing the OpenAI fake (uvicorn) never uses —
chunked bodies, bodies delimited by the end of the connection, `Connection: close`, a kept-alive connection
the server has closed, an answer that never comes — is exercised over real sockets, as are the mapping of
failures to `httpx` exceptions, `HTTP_PROXY` / `NO_PROXY`, TLS verification and closing the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from dagster_evals.engine.errors import PlatformError
from dagster_evals.judges.client import JudgeClient
from dagster_evals.judges.sessions import SessionSender
from dagster_evals.judges.settings import JudgeSettings

JSON = b'{"ok":true}'
# reply(request_number, connection_number) -> bytes to write (None: write nothing), close after writing
Reply = Callable[[int, int], tuple[bytes | None, bool]]


class RawServer:
    """Reads one request head + Content-Length body at a time and answers with scripted bytes."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                data, close = self.reply(len(self.requests), number)
                if data is not None:
                    writer.write(data)
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def ok(body: bytes = JSON, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def post(sender: SessionSender, url: str, body: bytes = b'{"q":1}'):
    return await sender.send(url, [("Content-Type", "application/json")], body)


def test_content_length_answers_reuse_one_connection() -> None:
    async def scenario() -> None:
        server = RawServer(lambda n, c: (ok(), False))
        async with server as url:
            sender = SessionSender()
            for _ in range(3):
                status, headers, body = await post(sender, url)
                assert (status, body) == (200, JSON)
                assert (b"Content-Type", b"application/json") in headers
            await sender.aclose()
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:" in first and first.endswith(b'\r\n\r\n{"q":1}')

    asyncio.run(scenario())


def test_chunked_answer_with_chunk_extensions_and_trailers() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"ok\r\n7\r\n":true}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )

    async def scenario() -> None:
        server = RawServer(lambda n, c: (chunked, False))
        async with server as url:
            sender = SessionSender()
            assert (await post(sender, url))[2] == JSON
            assert (await post(sender, url))[2] == JSON
            await sender.aclose()
        assert server.connections == 1

    asyncio.run(scenario())


def test_body_read_to_close_and_connection_close_open_a_new_connection() -> None:
    def reply(n: int, c: int) -> tuple[bytes, bool]:
        if n == 1:
            return b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + JSON, True
        return ok(extra=b"Connection: close\r\n"), False  # the client must not reuse it

    async def scenario() -> None:
        server = RawServer(reply)
        async with server as url:
            sender = SessionSender()
            for _ in range(3):
                assert (await post(sender, url))[2] == JSON
            await sender.aclose()
        assert server.connections == 3

    asyncio.run(scenario())


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_an_error() -> None:
    # The server answers with keep-alive but then closes every connection after its answer. Whether the
    # next call finds the idle connection already dead (a fresh one is opened) or sends on it first (the
    # governed transport retries the disconnect), every call succeeds, each on a connection of its own.
    async def scenario() -> None:
        server = RawServer(lambda n, c: (ok(), True))
        async with server as url:
            settings = JudgeSettings(
                base_url=url.removesuffix("/chat/completions"),
                api_key="sk-test-closed-1",
                backoff_base_s=0.01,
            )
            client = JudgeClient(settings)
            for _ in range(3):
                assert await client.post("chat/completions", {"messages": []}) == {"ok": True}
            await client.transport().aclose()
        assert server.connections == len(server.requests) >= 3

    asyncio.run(scenario())


def test_no_answer_is_a_read_timeout_and_a_malformed_one_a_protocol_error() -> None:
    async def scenario() -> None:
        server = RawServer(lambda n, c: (None, False) if n == 1 else (b"HTTP/9 nope\r\n\r\n", False))
        async with server as url:
            sender = SessionSender(timeout_s=0.2)
            with pytest.raises(httpx.ReadTimeout):
                await post(sender, url)
            await sender.aclose()
            # A sender with the default timeout: a slow machine must not turn the malformed answer into
            # a timeout.
            sender = SessionSender()
            with pytest.raises(httpx.RemoteProtocolError) as info:
                await post(sender, url)
            await sender.aclose()
            # aiohttp's own error (whose request holds the headers) is not chained to the one raised
            assert info.value.__cause__ is None and info.value.__context__ is None

            key = "sk-malformed-answer-key-99"
            settings = JudgeSettings(
                base_url=url.removesuffix("/chat/completions"), api_key=key, max_retries=0
            )
            client = JudgeClient(settings)
            with pytest.raises(PlatformError) as failed:
                await client.post("chat/completions", {"messages": []})
            await client.transport().aclose()
            chained: BaseException | None = failed.value
            while chained is not None:
                assert key not in str(chained) and key not in repr(chained.args)
                assert not type(chained).__module__.startswith("aiohttp")
                chained = chained.__cause__ or chained.__context__

    asyncio.run(scenario())


def test_refused_connection_is_a_connect_error() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(httpx.ConnectError):
            await post(SessionSender(), f"http://127.0.0.1:{port}/v1/x")

    asyncio.run(scenario())


def test_judge_client_retries_a_dropped_answer_and_redacts_the_key_in_errors() -> None:
    key = "sk-connections-test-key-1234"

    def reply(n: int, c: int) -> tuple[bytes | None, bool]:
        if n == 1:
            return None, True  # the server drops the request without a byte of an answer
        if n == 2:
            return ok(b'{"model":"gpt-4o-mini","usage":{"prompt_tokens":3,"completion_tokens":1}}'), False
        body = b'{"error":{"message":"Incorrect API key provided: ' + key.encode() + b'"}}'
        return b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body), False

    async def scenario() -> None:
        server = RawServer(reply)
        async with server as url:
            settings = JudgeSettings(
                base_url=url.removesuffix("/chat/completions"), api_key=key, backoff_base_s=0.01
            )
            client = JudgeClient(settings)
            answer = await client.post("chat/completions", {"model": "gpt-4o-mini", "messages": []})
            assert answer["usage"]["prompt_tokens"] == 3
            assert client.transport().retries == 1
            with pytest.raises(PlatformError) as info:
                await client.post("chat/completions", {"model": "gpt-4o-mini", "messages": []})
            await client.transport().aclose()
        assert info.value.status == 401 and key not in str(info.value)
        chained: BaseException | None = info.value
        while chained is not None:  # nothing reachable from the error carries the key
            assert key not in str(chained) and key not in repr(chained.args)
            chained = chained.__cause__ or chained.__context__
        assert b"Authorization: Bearer " + key.encode() in server.requests[1]

    asyncio.run(scenario())


def test_judge_client_over_a_given_async_transport() -> None:
    from dagster_evals.testing.openai import OpenAIFake

    key = "sk-in-process-transport-key"
    fake = OpenAIFake(api_key=key)

    async def scenario() -> dict:
        client = JudgeClient(
            JudgeSettings(base_url="http://fake/v1", api_key=key), transport=httpx.ASGITransport(app=fake)
        )
        answer = await client.post(
            "chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        )
        await client.transport().aclose()
        return answer

    answer = asyncio.run(scenario())
    assert answer["object"] == "chat.completion" and answer["usage"]["total_tokens"] > 0
    assert fake.requests["POST /v1/chat/completions"] == 1


def test_https_verifies_the_server_certificate(tmp_path) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def scenario() -> None:
        server = RawServer(lambda n, c: (ok(), False))
        tcp = await asyncio.start_server(server._handle, "127.0.0.1", 0, ssl=server_tls)
        port = tcp.sockets[0].getsockname()[1]
        url = f"https://localhost:{port}/v1/chat/completions"
        trusting = SessionSender(ssl.create_default_context(cafile=str(cert)))
        assert (await post(trusting, url))[2] == JSON
        assert (await post(trusting, url))[2] == JSON  # the TLS connection is kept alive and reused
        await trusting.aclose()
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(SessionSender(ssl.create_default_context()), url)
        tcp.close()
        assert server.connections == 1  # the refused handshake never reached the handler

    asyncio.run(scenario())


class ForwardingProxy:
    """An HTTP forward proxy on 127.0.0.1: takes absolute-form requests, counts them, relays each to its
    origin on a fresh connection and relays the (Content-Length) answer back."""

    def __init__(self) -> None:
        self.forwarded: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target, version = lines[0].split(b" ")
                length = next(
                    int(h.split(b":", 1)[1]) for h in lines if h.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                url = httpx.URL(target.decode())  # absolute form: the request was meant for a proxy
                self.forwarded.append(lines[0])
                up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
                kept = [h for h in lines[1:] if h and not h.lower().startswith(b"proxy-")]
                up_writer.write(
                    b"\r\n".join([b"%s %s %s" % (method, url.raw_path, version), *kept]) + b"\r\n\r\n"
                )
                up_writer.write(body)
                answer_head = await up_reader.readuntil(b"\r\n\r\n")
                answer_length = next(
                    int(h.split(b":", 1)[1])
                    for h in answer_head.split(b"\r\n")
                    if h.lower().startswith(b"content-length:")
                )
                writer.write(answer_head + await up_reader.readexactly(answer_length))
                up_writer.close()
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def test_http_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it(monkeypatch) -> None:
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "http_proxy",
    ):
        monkeypatch.delenv(name, raising=False)

    async def scenario() -> None:
        server, proxy = RawServer(lambda n, c: (ok(), False)), ForwardingProxy()
        async with server as url, proxy as proxy_url:
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            settings = JudgeSettings(base_url=url.removesuffix("/chat/completions"), api_key="sk-proxied-1")
            client = JudgeClient(settings)
            assert await client.post("chat/completions", {"messages": []}) == {"ok": True}
            assert await client.post("chat/completions", {"messages": []}) == {"ok": True}
            assert len(proxy.forwarded) == 2 and len(server.requests) == 2
            assert proxy.forwarded[0] == f"POST {url} HTTP/1.1".encode()

            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            assert await client.post("chat/completions", {"messages": []}) == {"ok": True}
            assert len(proxy.forwarded) == 2 and len(server.requests) == 3  # straight to the server
            await client.transport().aclose()

    asyncio.run(scenario())


def test_the_session_is_closed_when_asyncio_run_ends(caplog) -> None:
    import gc

    clients: list[JudgeClient] = []

    async def scenario() -> None:
        server = RawServer(lambda n, c: (ok(extra=b"Connection: close\r\n"), True))
        async with server as url:
            client = JudgeClient(
                JudgeSettings(base_url=url.removesuffix("/chat/completions"), api_key="sk-x-1")
            )
            clients.append(client)
            assert await client.post("chat/completions", {"messages": []}) == {"ok": True}
            # no aclose(): the end of asyncio.run closes the session

    asyncio.run(scenario())
    (transport,) = clients[0]._transports.values()
    assert transport.sender is not None
    session = transport.sender.session
    assert session is not None and session.closed
    del transport, session
    clients.clear()
    gc.collect()
    assert "Unclosed" not in caplog.text
