"""What the fake OpenAI server answers: scripted rules first, then deterministic defaults.

- A rule matches a request by a substring or regular expression of its prompt text (every message's
  text, tools excluded), or by a predicate over the whole request body; the first matching rule wins.
- Its reply is a string (the assistant's content), a `ToolCall`, a `Reply`, or a callable returning one.
- Without a matching rule: a forced function call gets arguments built from the function's JSON Schema
  (the first `enum` value, the first item of arrays, ...); `response_format: json_schema` gets a JSON
  instance of the schema; `json_object` gets `{"text": ...}`; anything else the text
  "fake reply: <last user message>".
- Token counts are an approximation (one token per 4 characters, plus 3 per message), deterministic.
- Embeddings are hashed bags of words (texts sharing words get close vectors), normalized to length 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """A function call the fake's assistant makes: `name` and JSON-serializable `arguments`."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A scripted assistant message; `prompt_tokens`/`completion_tokens` override the counted usage."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


ReplyLike = str | ToolCall | Reply | Callable[[dict[str, Any]], "str | ToolCall | Reply"]


@dataclass(frozen=True)
class Rule:
    """Answer requests whose prompt text contains `contains` / matches `pattern` / satisfies `when`."""

    reply: ReplyLike
    contains: str | None = None
    pattern: str | None = None
    when: Callable[[dict[str, Any]], bool] | None = None

    def matches(self, body: dict[str, Any], text: str) -> bool:
        if self.contains is not None and self.contains not in text:
            return False
        if self.pattern is not None and not re.search(self.pattern, text):
            return False
        return not (self.when is not None and not self.when(body))


def as_reply(reply: ReplyLike, body: dict[str, Any]) -> Reply:
    value = reply(body) if callable(reply) and not isinstance(reply, ToolCall | Reply) else reply
    if isinstance(value, Reply):
        return value
    if isinstance(value, ToolCall):
        return Reply(tool_calls=(value,))
    if isinstance(value, str):
        return Reply(content=value)
    raise TypeError(f"a fake reply must be a str, ToolCall or Reply, got {type(value).__name__}")


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def prompt_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(content_text(m.get("content")) for m in messages)


def count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def prompt_tokens(messages: list[dict[str, Any]], tools: Any) -> int:
    total = 3 + sum(3 + count_tokens(content_text(m.get("content"))) for m in messages)
    if tools:
        total += count_tokens(json.dumps(tools, sort_keys=True))
    return total


def schema_instance(schema: Any, depth: int = 0, root: Any = None) -> Any:
    """A small deterministic value valid against a JSON Schema (the subset tool parameters use, with
    local `$ref`s into `$defs` / `definitions`)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 8:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return schema_instance(target, depth + 1, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_instance(schema[key][0], depth + 1, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: schema_instance(sub, depth + 1, root) for name, sub in props.items()}
    if kind == "array":
        return [schema_instance(schema.get("items", {"type": "string"}), depth + 1, root)]
    if kind == "string":
        return "fake"
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return None


def forced_function(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function tool the request forces (tool_choice names it, or `required` with tools)."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice")

    def spec(tool: dict[str, Any]) -> dict[str, Any]:
        # Chat tools nest the function ({"type": "function", "function": {...}}); Responses tools are flat.
        return tool.get("function", tool)

    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return next((spec(t) for t in tools if spec(t).get("name") == name), None)
    if choice == "required" and tools:
        return spec(tools[0])
    return None


def default_reply(body: dict[str, Any], messages: list[dict[str, Any]], response_format: Any) -> Reply:
    function = forced_function(body)
    if function is not None:
        return Reply(
            tool_calls=(ToolCall(function["name"], schema_instance(function.get("parameters")) or {}),)
        )
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    said = content_text(last_user.get("content")) if last_user else ""
    fmt = response_format if isinstance(response_format, dict) else {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or fmt).get("schema")
        return Reply(content=json.dumps(schema_instance(schema) or {}))
    if fmt.get("type") == "json_object":
        return Reply(content=json.dumps({"text": said[:200]}))
    return Reply(content=f"fake reply: {said[:200]}")


def call_id(seed: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()[:24]


def embed(text: str, dimensions: int) -> list[float]:
    """A hashed bag-of-words vector of `dimensions` floats with length 1 (zeros for an empty text)."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] % 2 == 0 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector
