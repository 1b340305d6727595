"""Checks of OpenAI request values beyond field names (those are in `wire.check_fields`): message roles and
tool results, `response_format`, and text inputs. Wire sources and the status of each message's wording are
listed in `wire.py`."""

from __future__ import annotations

from typing import Any

from dagster_evals.testing.openai.replies import prompt_text
from dagster_evals.testing.openai.wire import MESSAGE_ROLES, OpenAIError, invalid_type


def messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise OpenAIError(400, "'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise OpenAIError(
                400,
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                "'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise OpenAIError(
                400,
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                param=f"messages[{i}].tool_call_id",
            )
    return value


def response_format(fmt: Any, messages: list[dict[str, Any]]) -> None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise OpenAIError(
            400,
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' and 'json_schema'.",
            param="response_format.type",
        )
    if kind == "json_schema" and not (fmt.get("json_schema") or {}).get("name"):
        raise OpenAIError(
            400,
            "Missing required parameter: 'response_format.json_schema.name'.",
            param="response_format.json_schema.name",
        )
    if kind == "json_object" and "json" not in prompt_text(messages).lower():
        raise OpenAIError(
            400,
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            param="messages",
        )


def texts(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return [" ".join(map(str, v)) for v in value]
    raise invalid_type(param, "a string or an array of strings or token arrays", value)
