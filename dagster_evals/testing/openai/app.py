"""A deterministic, scriptable fake of OpenAI's chat completions, responses, embeddings and moderations.

Serve it with `fake.serve()` (a `ServerThread` on 127.0.0.1; point `OPENAI_BASE_URL` at
`fake.base_url(server)`) or call it in-process with `fake.transport()`. What it reproduces (wire shapes
cited in `wire.py`):

- `POST /v1/chat/completions`: messages, tools and forced tool calls, `response_format` (`text`,
  `json_object`, `json_schema`), `n`, usage fields. `stream: true` is refused with a 400 (not served).
- `POST /v1/responses` (non-streaming): string or message input, function tools, `text.format`.
- `POST /v1/embeddings` (float or base64 encoding, `dimensions` for text-embedding-3 models only) and
  `POST /v1/moderations` (flags texts containing the words in `moderation_terms`). `GET /v1/models`.
- `Authorization: Bearer <key>`; anything else → 401 `invalid_api_key`. Unknown or missing request fields
  → 400 naming the field. Over `rate_limit_per_minute` (a sliding window), or for each scripted
  `fail_next`, → 429 `rate_limit_exceeded` with `Retry-After`.
- `latency_s` delays every answer; `requests` counts calls per route; `peak_in_flight` records the most
  requests served at once; `bodies` keeps every accepted request body.

Examples:
    .. code-block:: python

        fake = OpenAIFake(api_key="test-key", latency_s=0.0)
        fake.add_rule(contains="capital of France", reply="Paris")
        with fake.serve() as server:
            client = openai.OpenAI(base_url=fake.base_url(server), api_key="test-key")
            client.chat.completions.create(model="gpt-4o-mini", messages=[...])
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dagster_evals.testing.openai import wire
from dagster_evals.testing.openai.replies import (
    Reply,
    ReplyLike,
    Rule,
    as_reply,
    call_id,
    content_text,
    count_tokens,
    default_reply,
    embed,
    prompt_text,
    prompt_tokens,
)
from dagster_evals.testing.server import ServerThread, in_process_transport

DEFAULT_MODERATION_TERMS = {"kill": "violence", "idiot": "harassment"}


class OpenAIFake:
    """A fake OpenAI-compatible API (see the module docstring).

    Args:
        api_key: The key the fake accepts (`None`: any bearer key).
        latency_s: Seconds every answer waits before it is sent (never blocks other requests).
        rate_limit_per_minute: Requests accepted per sliding minute; None for no limit.
        retry_after_s: The `Retry-After` seconds of a 429.
        moderation_terms: word → moderation category flagged when a text contains the word.
        created: The `created` timestamp of every answer (deterministic by default).
    """

    def __init__(
        self,
        api_key: str | None = "test-key",
        *,
        latency_s: float = 0.0,
        rate_limit_per_minute: int | None = None,
        retry_after_s: float = 1.0,
        moderation_terms: Mapping[str, str] | None = None,
        created: int = 1_700_000_000,
    ) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.rate_limit_per_minute = rate_limit_per_minute
        self.retry_after_s = retry_after_s
        self.moderation_terms = dict(
            DEFAULT_MODERATION_TERMS if moderation_terms is None else moderation_terms
        )
        self.created = created
        self.rules: list[Rule] = []
        self.requests: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._failures: deque[tuple[int, float | None]] = deque()
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/moderations", self._moderations, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    # -- scripting -------------------------------------------------------------------------------------
    def add_rule(
        self,
        reply: ReplyLike,
        *,
        contains: str | None = None,
        pattern: str | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer matching chat/responses requests with `reply` (rules are tried in the order added)."""
        self.rules.append(Rule(reply=reply, contains=contains, pattern=pattern, when=when))

    def fail_next(self, count: int = 1, *, status: int = 429, retry_after: float | None = None) -> None:
        """Answer the next `count` requests with `status` (429: `rate_limit_exceeded` + `Retry-After`)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    @property
    def model_calls(self) -> int:
        """Requests answered on the model endpoints (chat, responses, embeddings, moderations)."""
        return sum(n for route, n in self.requests.items() if not route.endswith("/models"))

    # -- serving ---------------------------------------------------------------------------------------
    def serve(self, port: int = 0) -> ServerThread:
        """A `ServerThread` serving this fake on 127.0.0.1 (use as a context manager)."""
        return ServerThread(self, port=port)

    def transport(self) -> httpx.BaseTransport:
        """An in-process httpx transport (no socket)."""
        return in_process_transport(self)

    @staticmethod
    def base_url(server: ServerThread) -> str:
        """The `OPENAI_BASE_URL` of a running server: its URL plus `/v1`."""
        return server.url + "/v1"

    # -- plumbing --------------------------------------------------------------------------------------
    def _admit(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key or (self.api_key is not None and key != self.api_key):
            raise wire.OpenAIError(
                401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        with self._lock:
            if self._failures:
                status, retry_after = self._failures.popleft()
                raise self._failure(status, retry_after)
            if self.rate_limit_per_minute:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 60.0:
                    self._window.popleft()
                if len(self._window) >= self.rate_limit_per_minute:
                    wait = max(0.0, 60.0 - (now - self._window[0]))
                    raise self._failure(429, round(wait, 3))
                self._window.append(now)

    def _failure(self, status: int, retry_after: float | None) -> wire.OpenAIError:
        if status == 429:
            seconds = self.retry_after_s if retry_after is None else retry_after
            return wire.OpenAIError(
                429,
                f"Rate limit reached for requests. Please try again in {seconds}s.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": str(seconds)},
            )
        return wire.OpenAIError(
            status, "The server had an error while processing your request.", "server_error"
        )

    async def _handle(
        self, request: Request, route: str, answer: Callable[[dict[str, Any]], dict]
    ) -> Response:
        try:
            self._admit(request)
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise wire.OpenAIError(400, "We could not parse the JSON body of your request.") from None
            result = answer(body)
        except wire.OpenAIError as exc:
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
        with self._lock:
            self.requests[route] += 1
            self.bodies.append(body)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
        finally:
            with self._lock:
                self.in_flight -= 1
        return JSONResponse(result, headers={"x-request-id": "req_" + _digest(result)[:24]})

    def _reply(self, body: dict[str, Any], messages: list[dict[str, Any]], response_format: Any) -> Reply:
        text = prompt_text(messages)
        for rule in self.rules:
            if rule.matches(body, text):
                return as_reply(rule.reply, body)
        return default_reply(body, messages, response_format)

    # -- chat completions --------------------------------------------------------------------------------
    async def _chat(self, request: Request) -> Response:
        return await self._handle(request, "POST /v1/chat/completions", self._chat_answer)

    def _chat_answer(self, body: Any) -> dict[str, Any]:
        body = wire.check_fields(body, wire.CHAT_FIELDS, wire.CHAT_REQUIRED)
        messages = _messages(body["messages"])
        if body.get("stream"):
            raise wire.OpenAIError(400, "stream=true is not served by this fake", param="stream")
        response_format = body.get("response_format")
        if response_format is not None:
            _check_response_format(response_format, messages)
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            raise wire.invalid_type("n", "an integer >= 1", n)
        reply = self._reply(body, messages, response_format)
        seed = _digest(body)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_id(seed, i),
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
                }
                for i, c in enumerate(reply.tool_calls)
            ]
        completion = _completion_tokens(reply)
        prompt = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else prompt_tokens(messages, body.get("tools"))
        )
        # openai-python@v3.57.0:src/openai/types/chat/chat_completion.py (`ChatCompletion`, `Choice`).
        return {
            "id": "chatcmpl-" + seed[:29],
            "object": "chat.completion",
            "created": self.created,
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
                for i in range(n)
            ],
            "usage": wire.completion_usage(prompt, completion * n),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    # -- responses ---------------------------------------------------------------------------------------
    async def _responses(self, request: Request) -> Response:
        return await self._handle(request, "POST /v1/responses", self._responses_answer)

    def _responses_answer(self, body: Any) -> dict[str, Any]:
        body = wire.check_fields(body, wire.RESPONSES_FIELDS, ("model",))
        if body.get("stream"):
            raise wire.OpenAIError(400, "stream=true is not served by this fake", param="stream")
        raw = body.get("input")
        if isinstance(raw, str):
            messages = [{"role": "user", "content": raw}]
        elif isinstance(raw, list):
            messages = [m for m in raw if isinstance(m, dict) and "role" in m]
        else:
            raise wire.invalid_type("input", "a string or an array", raw)
        if body.get("instructions"):
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        fmt = (body.get("text") or {}).get("format")
        reply = self._reply(body, messages, fmt)
        seed = _digest(body)
        output: list[dict[str, Any]] = [
            {
                "type": "function_call",
                "id": "fc_" + seed[:24],
                "call_id": call_id(seed, i),
                "name": c.name,
                "arguments": json.dumps(dict(c.arguments)),
                "status": "completed",
            }
            for i, c in enumerate(reply.tool_calls)
        ]
        if reply.content is not None:
            output.append(
                {
                    "type": "message",
                    "id": "msg_" + seed[:24],
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": reply.content, "annotations": []}],
                }
            )
        prompt = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else prompt_tokens(messages, body.get("tools"))
        )
        # openai-python@v3.57.0:src/openai/types/responses/response.py (`Response`).
        return {
            "id": "resp_" + seed[:24],
            "object": "response",
            "created_at": self.created,
            "status": "completed",
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "usage": wire.responses_usage(prompt, _completion_tokens(reply)),
        }

    # -- embeddings and moderations ------------------------------------------------------------------------
    async def _embeddings(self, request: Request) -> Response:
        return await self._handle(request, "POST /v1/embeddings", self._embeddings_answer)

    def _embeddings_answer(self, body: Any) -> dict[str, Any]:
        body = wire.check_fields(body, wire.EMBEDDING_FIELDS, ("input", "model"))
        texts = _texts(body["input"], "input")
        model = str(body["model"])
        size = wire.EMBEDDING_SIZES.get(model, wire.DEFAULT_EMBEDDING_SIZE)
        if body.get("dimensions") is not None:
            if not model.startswith("text-embedding-3"):
                raise wire.OpenAIError(
                    400, "This model does not support specifying dimensions.", param="dimensions"
                )
            size = body["dimensions"]
            if not isinstance(size, int) or size < 1:
                raise wire.invalid_type("dimensions", "an integer >= 1", size)
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise wire.OpenAIError(
                400, f"Invalid value for 'encoding_format': {encoding!r}.", param="encoding_format"
            )
        data = []
        for i, text in enumerate(texts):
            vector = embed(text, size)
            value: Any = vector
            if encoding == "base64":
                value = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(count_tokens(t) for t in texts)
        # openai-python@v3.57.0:src/openai/types/create_embedding_response.py
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def _moderations(self, request: Request) -> Response:
        return await self._handle(request, "POST /v1/moderations", self._moderations_answer)

    def _moderations_answer(self, body: Any) -> dict[str, Any]:
        body = wire.check_fields(body, wire.MODERATION_FIELDS, ("input",))
        raw = body["input"]
        if isinstance(raw, list) and raw and all(isinstance(p, dict) for p in raw):
            texts = [content_text(raw)]  # multi-modal input parts: one result
        else:
            texts = _texts(raw, "input")
        results = []
        for text in texts:
            words = set(text.lower().split())
            hit = {self.moderation_terms[w] for w in self.moderation_terms if w in words}
            categories = {c: c in hit for c in wire.MODERATION_CATEGORIES}
            results.append(
                {
                    "flagged": bool(hit),
                    "categories": categories,
                    "category_scores": {c: 0.9 if c in hit else 0.0001 for c in wire.MODERATION_CATEGORIES},
                    "category_applied_input_types": {c: ["text"] for c in wire.MODERATION_CATEGORIES},
                }
            )
        # openai-python@v3.57.0:src/openai/types/moderation_create_response.py, types/moderation.py
        return {
            "id": "modr-" + _digest(body)[:24],
            "model": body.get("model") or "omni-moderation-latest",
            "results": results,
        }

    async def _models(self, request: Request) -> Response:
        def answer(_: Any) -> dict[str, Any]:
            names = [
                "gpt-4o-mini",
                "gpt-4o",
                "gpt-5-mini",
                "text-embedding-3-small",
                "omni-moderation-latest",
            ]
            return {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": self.created, "owned_by": "system"} for n in names
                ],
            }

        try:
            self._admit(request)
        except wire.OpenAIError as exc:
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
        self.requests["GET /v1/models"] += 1
        return JSONResponse(answer(None))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _completion_tokens(reply: Reply) -> int:
    if reply.completion_tokens is not None:
        return reply.completion_tokens
    text = (reply.content or "") + "".join(json.dumps(dict(c.arguments)) for c in reply.tool_calls)
    return max(1, count_tokens(text))


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise wire.OpenAIError(400, "'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in wire.MESSAGE_ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise wire.OpenAIError(
                400,
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                "'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise wire.OpenAIError(
                400,
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                param=f"messages[{i}].tool_call_id",
            )
    return value


def _check_response_format(fmt: Any, messages: list[dict[str, Any]]) -> None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise wire.OpenAIError(
            400,
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' and 'json_schema'.",
            param="response_format.type",
        )
    if kind == "json_schema" and not (fmt.get("json_schema") or {}).get("name"):
        raise wire.OpenAIError(
            400,
            "Missing required parameter: 'response_format.json_schema.name'.",
            param="response_format.json_schema.name",
        )
    if kind == "json_object" and "json" not in prompt_text(messages).lower():
        raise wire.OpenAIError(
            400,
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            param="messages",
        )


def _texts(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return [" ".join(map(str, v)) for v in value]
    raise wire.invalid_type(param, "a string or an array of strings or token arrays", value)
