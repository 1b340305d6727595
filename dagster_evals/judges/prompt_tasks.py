"""A built-in task that runs the prompt version under evaluation on an OpenAI-compatible endpoint.

`prompt_task()` returns a task for `EvalSuite(task=...)`. For each row it renders the prompt version's
messages as mustache templates over the row, calls chat completions through the judge endpoint's
governed client (same pacing, retries, redaction and token/cost accounting; usage is recorded under the
`task` scope), and returns the model's answer.

Prompt contents understood (`PromptVersion.content`):

- Braintrust `prompt_data` (braintrust `_generated_types.py`: `PromptData`, `PromptBlockData`,
  `PromptOptions`, `ModelParams`): `{"prompt": {"type": "chat", "messages": [...], "tools": "<JSON
  string>"} | {"type": "completion", "content": "..."}, "options": {"model": ..., "params": {...}},
  "template_format": "mustache" | "none"}`.
- Keywords AI prompt versions (`messages`, `model`, `temperature`, `max_tokens`, `response_format`,
  `tools`, `tool_choice`, ...; https://docs.keywordsai.co prompt management API) and local prompts pushed
  with the same OpenAI-style fields.

Template variables: the row's input fields at the top level when the input is an object (`{{question}}`),
plus `{{input}}` (objects and lists render as JSON), `{{input.question}}`, `{{expected}}` and
`{{metadata.<field>}}`. Values are inserted as they are (no HTML escaping).

Output: the message text; the parsed JSON when the prompt declares `response_format` `json_object` or
`json_schema`; `{"content": ..., "tool_calls": [{"name", "arguments"}]}` when the model calls tools.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import chevron

from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.models import PromptVersion
from dagster_evals.judges.binding import bound_settings
from dagster_evals.judges.client import client_for
from dagster_evals.judges.settings import JudgeSettings, endpoint_settings

# Chat request fields a prompt's parameters may carry (openai-python@v3.57.0:
# src/openai/types/chat/completion_create_params.py); anything else (Braintrust's `use_cache`, ...) is
# dropped.
CHAT_PARAMS = frozenset(
    {
        "temperature", "top_p", "max_tokens", "max_completion_tokens", "frequency_penalty", "presence_penalty",
        "response_format", "tool_choice", "stop", "seed", "reasoning_effort", "verbosity", "parallel_tool_calls",
        "logit_bias", "user",
    }
)  # fmt: skip
_VAR = re.compile(r"\{\{(?![{#/^!>&=])\s*([^}]+?)\s*\}\}")


class _JsonDict(dict):
    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False, separators=(",", ":"), default=str)


class _JsonList(list):
    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False, separators=(",", ":"), default=str)


def _wrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _JsonDict({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return _JsonList(_wrap(v) for v in value)
    return value


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Mustache without HTML escaping; objects and lists render as compact JSON."""
    return chevron.render(_VAR.sub(r"{{{\1}}}", template), _wrap(variables))


def template_variables(input: Any, expected: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = dict(input) if isinstance(input, Mapping) else {}
    variables.update(input=input, expected=expected, metadata=dict(metadata or {}))
    return variables


def parse_prompt(content: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`{"messages", "model", "params", "tools", "template_format"}` from a prompt version's content."""
    if isinstance(content.get("prompt"), Mapping) or isinstance(content.get("options"), Mapping):
        block = content.get("prompt") or {}
        options = content.get("options") or {}
        if block.get("type") == "completion":
            messages = [{"role": "user", "content": block.get("content", "")}]
        else:
            messages = list(block.get("messages") or [])
        tools = block.get("tools")
        if isinstance(tools, str) and tools.strip():
            try:
                tools = json.loads(tools)
            except ValueError:
                raise ConfigError(f"{where}: prompt.tools is not valid JSON") from None
        params = dict(options.get("params") or {})
        model = options.get("model")
        template_format = content.get("template_format") or "mustache"
    else:
        messages = list(content.get("messages") or [])
        tools = content.get("tools")
        params = {k: content[k] for k in CHAT_PARAMS if content.get(k) is not None}
        model = content.get("model")
        template_format = "mustache"
    if not messages:
        raise ConfigError(f"{where}: the prompt has no messages to send")
    if template_format not in ("mustache", "none"):
        raise ConfigError(f"{where}: template_format {template_format!r} is not supported (use mustache)")
    return {
        "messages": messages,
        "model": model,
        "params": {k: v for k, v in params.items() if k in CHAT_PARAMS and v is not None},
        "tools": tools or None,
        "template_format": template_format,
    }


def _render_messages(messages: list[Any], variables: Mapping[str, Any], template_format: str) -> list[Any]:
    if template_format == "none":
        return messages
    rendered = []
    for message in messages:
        message = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = render(content, variables)
        elif isinstance(content, list):
            message["content"] = [
                {**part, "text": render(part["text"], variables)}
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
                else part
                for part in content
            ]
        rendered.append(message)
    return rendered


def _output(message: Mapping[str, Any], response_format: Any, where: str) -> Any:
    tool_calls = message.get("tool_calls") or []
    if tool_calls:
        calls = []
        for call in tool_calls:
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = function.get("arguments")
            calls.append({"name": function.get("name"), "arguments": arguments})
        return {"content": message.get("content"), "tool_calls": calls}
    text = message.get("content") or ""
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind in ("json_object", "json_schema"):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(
                f"{where}: the prompt asks for JSON output but the model answered {text[:200]!r}"
            ) from None
    return text


def prompt_task(
    *,
    endpoint: Any = None,
    model: str | None = None,
    default: PromptVersion | Mapping[str, Any] | None = None,
    max_cost_usd: float | None = None,
) -> Callable[..., Awaitable[Any]]:
    """A task that runs the prompt version under evaluation over each row.

    Args:
        endpoint: An `OpenAIJudgeResource` or `JudgeSettings`; default: the suite's judge resource
            (`judge_resource_key`), else `OPENAI_BASE_URL`/`OPENAI_API_KEY`.
        model: Model to use when the prompt names none (default: the endpoint's model). A model named by
            the prompt always wins.
        default: The prompt (a `PromptVersion` or its content) used when the run evaluates no prompt
            version (an unpartitioned run, or a release partition).
        max_cost_usd: Budget per run (default: the endpoint's).

    Examples:
        .. code-block:: python

            from dagster_evals import EvalSuite, prompt_task

            suite = EvalSuite(
                name="support_bot_prompts", source="data/support_bot.jsonl", task=prompt_task(),
                scorers=["factuality"], partitions_def=versions,
            )
    """
    fallback = default.content if isinstance(default, PromptVersion) else default

    def settings() -> JudgeSettings:
        base = endpoint_settings(endpoint) or bound_settings() or JudgeSettings.from_env()
        return base.with_options(max_cost_usd=max_cost_usd)

    async def run_prompt(
        input: Any, expected: Any, metadata: dict[str, Any], prompt: PromptVersion | None
    ) -> Any:
        content = prompt.content if prompt is not None else fallback
        where = f"prompt {prompt.partition_key}" if prompt is not None else "the default prompt"
        if not content:
            raise ConfigError(
                "prompt_task has no prompt to run: evaluate a prompt version (the prompt-version sensor or a "
                "'<slug>@<version>' partition), or pass prompt_task(default=...)"
            )
        parsed = parse_prompt(content, where)
        resolved = settings()
        request: dict[str, Any] = {
            "model": parsed["model"] or model or resolved.model,
            "messages": _render_messages(
                parsed["messages"], template_variables(input, expected, metadata), parsed["template_format"]
            ),
            **parsed["params"],
        }
        if parsed["tools"]:
            request["tools"] = parsed["tools"]
        answer = await client_for(resolved).post("chat/completions", request)
        choices = answer.get("choices") or []
        if not choices:
            raise ValueError(f"{where}: the model returned no choices")
        return _output(choices[0].get("message") or {}, parsed["params"].get("response_format"), where)

    run_prompt.run_budget = lambda: settings().max_cost_usd  # type: ignore[attr-defined]
    run_prompt.model_kind = "openai"  # type: ignore[attr-defined]  # the asset kind of the suite
    return run_prompt
