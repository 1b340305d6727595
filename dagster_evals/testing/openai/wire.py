"""OpenAI wire shapes the fake accepts and answers with, each cited to its source.

Sources (read, not copied):
- Request fields: the `openai` Python SDK's request TypedDicts, openai/openai-python@v3.57.0 (PyPI wheel
  `openai==3.57.0`): `src/openai/types/chat/completion_create_params.py` (`CompletionCreateParamsBase`),
  `src/openai/types/embedding_create_params.py`, `src/openai/types/moderation_create_params.py`,
  `src/openai/types/responses/response_create_params.py`. `tests/test_openai_fake.py` checks that the field
  sets below still match the installed SDK.
- Response objects: the same SDK's `types/chat/chat_completion.py` (`ChatCompletion`),
  `types/completion_usage.py`, `types/create_embedding_response.py`, `types/moderation_create_response.py`,
  `types/moderation.py`, `types/responses/response.py`, `types/responses/response_usage.py`.
- Errors: https://platform.openai.com/docs/guides/error-codes — a JSON body
  `{"error": {"message", "type", "param", "code"}}`; 401 `invalid_api_key`, 429 `rate_limit_exceeded`
  with a `Retry-After` header, 400 `invalid_request_error`. The SDK's `_exceptions.py` maps the status
  to `AuthenticationError`, `RateLimitError`, `BadRequestError`, … and reads `error.message`.
- Validation messages ("Unrecognized request argument supplied: x", "Missing required parameter: 'x'.",
  the json_object rule that the messages must mention "json") follow what the real API answers as shown
  in the SDK's issue threads; their exact wording is not part of a published spec (unconfirmed).
"""

from __future__ import annotations

from typing import Any

from dagster_evals.testing.asgi.errors import ApiError

# openai-python@v3.57.0:src/openai/types/chat/completion_create_params.py (CompletionCreateParamsBase
# plus the streaming variants' `stream`).
CHAT_FIELDS = frozenset(
    {
        "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
        "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
        "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
CHAT_REQUIRED = ("messages", "model")
# openai-python@v3.57.0:src/openai/types/chat/chat_completion_message_param.py (the role union).
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# openai-python@v3.57.0:src/openai/types/embedding_create_params.py
EMBEDDING_FIELDS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})
# openai-python@v3.57.0:src/openai/types/moderation_create_params.py
MODERATION_FIELDS = frozenset({"input", "model"})
# openai-python@v3.57.0:src/openai/types/responses/response_create_params.py (the subset the fake serves;
# any other documented field is accepted and ignored, undocumented ones are rejected).
RESPONSES_FIELDS = frozenset(
    {
        "input", "model", "instructions", "tools", "tool_choice", "text", "temperature", "top_p",
        "max_output_tokens", "metadata", "parallel_tool_calls", "previous_response_id", "reasoning",
        "store", "stream", "truncation", "user", "include", "background", "conversation", "max_tool_calls",
        "prompt", "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "service_tier",
        "stream_options", "top_logprobs", "context_management", "moderation", "verbosity",
    }
)  # fmt: skip
# openai-python@v3.57.0:src/openai/types/moderation.py (`Categories`, aliases are the wire names).
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)  # fmt: skip
# Embedding sizes documented at https://platform.openai.com/docs/guides/embeddings (models that accept
# `dimensions` are the text-embedding-3 family only).
EMBEDDING_SIZES = {
    "text-embedding-ada-002": 1536,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
}
DEFAULT_EMBEDDING_SIZE = 1536


class OpenAIError(ApiError):
    """An error the fake answers with, in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            status, {"error": {"message": message, "type": type, "param": param, "code": code}}, headers
        )
        self.message = message


def check_fields(body: Any, known: frozenset[str], required: tuple[str, ...]) -> dict[str, Any]:
    """The body as a dict, or a 400 naming the unknown or missing field."""
    if not isinstance(body, dict):
        raise OpenAIError(400, "We could not parse the JSON body of your request.")
    for name in sorted(body):
        if name not in known:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {name}", param=name)
    for name in required:
        if body.get(name) is None:
            raise OpenAIError(
                400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
    return body


def invalid_type(param: str, expected: str, value: Any) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type(value).__name__} instead.",
        param=param,
        code="invalid_type",
    )


def completion_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """openai-python@v3.57.0:src/openai/types/completion_usage.py (`CompletionUsage`)."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """openai-python@v3.57.0:src/openai/types/responses/response_usage.py (`ResponseUsage`)."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def unknown_url(method: str, path: str, base: str, served: frozenset[str]) -> OpenAIError:
    """The 404 of a path the API does not serve: OpenAI's `Invalid URL (METHOD /path)`, and, when the
    path is a served one without its `/v1` prefix, the base URL to use instead (the hint comes first, so a
    shortened message still shows it)."""
    message = f"Invalid URL ({method} {path})"
    if "/v1" + path in served:
        message = (
            f"{path} is served at /v1{path}: set OPENAI_BASE_URL (or the judge's base_url) to "
            f"{base.rstrip('/')}/v1, with the /v1. {message}"
        )
    return OpenAIError(404, message)
