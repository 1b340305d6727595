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
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dagster_evals.testing.asgi import ApiError, Call, FakeAPI, Route, SlidingWindow, credential
from dagster_evals.testing.openai import checks, wire
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
from dagster_evals.testing.server import ServerThread

DEFAULT_MODERATION_TERMS = {"kill": "violence", "idiot": "harassment"}
MODEL_NAMES = ("gpt-4o-mini", "gpt-4o", "gpt-5-mini", "text-embedding-3-small", "omni-moderation-latest")


class OpenAIFake(FakeAPI):
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
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._window = SlidingWindow(rate_limit_per_minute or 0, 60.0)
        super().__init__(
            [
                Route("POST", "/v1/chat/completions", self._chat),
                Route("POST", "/v1/responses", self._responses),
                Route("POST", "/v1/embeddings", self._embeddings),
                Route("POST", "/v1/moderations", self._moderations),
                Route("GET", "/v1/models", self._models),
            ]
        )

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

    @property
    def model_calls(self) -> int:
        """Requests answered on the model endpoints (chat, responses, embeddings, moderations)."""
        return sum(n for route, n in self.requests.items() if not route.endswith("/models"))

    @staticmethod
    def base_url(server: ServerThread) -> str:
        """The `OPENAI_BASE_URL` of a running server: its URL plus `/v1`."""
        return server.url + "/v1"

    # -- the toolkit's hooks: OpenAI's envelope, admission, and answers counted only when served ------------
    def error(self, status: int, message: str, **extra: Any) -> ApiError:
        return wire.OpenAIError(status, message, **extra)

    def not_found(self, request: Request) -> Response:
        served = frozenset(route.path for route in self.router.routes)
        return wire.unknown_url(request.method, request.url.path, str(request.base_url), served).response()

    def authenticate(self, call: Call) -> None:
        key = credential(call.request)
        if not key or (self.api_key is not None and key != self.api_key):
            raise wire.OpenAIError(
                401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def admit(self, call: Call) -> None:
        self.authenticate(call)
        self.take_failure()
        if self.rate_limit_per_minute:
            with self.lock:
                self._window.limit = self.rate_limit_per_minute
                wait = self._window.admit()
            if wait is not None:
                raise self.failure(429, round(max(0.0, wait), 3))

    def failure(self, status: int, retry_after: float | None) -> ApiError:
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

    def read_body(self, call: Call) -> Any:
        if call.request.method == "GET":
            return None
        try:
            return json.loads(call.raw)
        except ValueError:
            raise wire.OpenAIError(400, "We could not parse the JSON body of your request.") from None

    async def respond(self, call: Call, result: Any) -> Response:
        self.count(call)
        if call.request.method == "GET":
            return JSONResponse(result)
        with self.lock:
            self.bodies.append(call.body)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
        finally:
            with self.lock:
                self.in_flight -= 1
        return JSONResponse(result, headers={"x-request-id": "req_" + _digest(result)[:24]})

    def _reply(self, body: dict[str, Any], messages: list[dict[str, Any]], response_format: Any) -> Reply:
        text = prompt_text(messages)
        for rule in self.rules:
            if rule.matches(body, text):
                return as_reply(rule.reply, body)
        return default_reply(body, messages, response_format)

    # -- chat completions --------------------------------------------------------------------------------
    def _chat(self, request: Request, body: Any) -> dict[str, Any]:
        body = wire.check_fields(body, wire.CHAT_FIELDS, wire.CHAT_REQUIRED)
        messages = checks.messages(body["messages"])
        if body.get("stream"):
            raise wire.OpenAIError(400, "stream=true is not served by this fake", param="stream")
        response_format = body.get("response_format")
        if response_format is not None:
            checks.response_format(response_format, messages)
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
        prompt = _prompt_tokens(reply, messages, body)
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
    def _responses(self, request: Request, body: Any) -> dict[str, Any]:
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
        prompt = _prompt_tokens(reply, messages, body)
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
    def _embeddings(self, request: Request, body: Any) -> dict[str, Any]:
        body = wire.check_fields(body, wire.EMBEDDING_FIELDS, ("input", "model"))
        texts = checks.texts(body["input"], "input")
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

    def _moderations(self, request: Request, body: Any) -> dict[str, Any]:
        body = wire.check_fields(body, wire.MODERATION_FIELDS, ("input",))
        raw = body["input"]
        if isinstance(raw, list) and raw and all(isinstance(p, dict) for p in raw):
            texts = [content_text(raw)]  # multi-modal input parts: one result
        else:
            texts = checks.texts(raw, "input")
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

    def _models(self, request: Request, body: Any) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": self.created, "owned_by": "system"}
                for n in MODEL_NAMES
            ],
        }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _prompt_tokens(reply: Reply, messages: list[dict[str, Any]], body: dict[str, Any]) -> int:
    if reply.prompt_tokens is not None:
        return reply.prompt_tokens
    return prompt_tokens(messages, body.get("tools"))


def _completion_tokens(reply: Reply) -> int:
    if reply.completion_tokens is not None:
        return reply.completion_tokens
    text = (reply.content or "") + "".join(json.dumps(dict(c.arguments)) for c in reply.tool_calls)
    return max(1, count_tokens(text))
