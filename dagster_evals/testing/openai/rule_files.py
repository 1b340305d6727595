"""Rules for the served OpenAI fake from the command line or a YAML/JSON file, so a judge's verdict can be
scripted without code (`python -m dagster_evals.testing openai --choice 'DROP TABLE' Incorrect`).

A rules file is a list of rules, tried in order (the first match answers):

.. code-block:: yaml

    - pattern: "DROP TABLE"        # a regular expression searched in the prompt text (or `contains:`)
      choice: Incorrect            # a judge's verdict: the forced tool call's `choice` argument
    - contains: "capital of France"
      reply: Paris                 # the assistant's text
    - pattern: "refund"
      tool_call: {name: lookup_order, arguments: {order_id: "42"}}

A rule without `pattern` / `contains` matches every request. Each rule has exactly one of `reply`,
`choice` or `tool_call`. A mistake is one error naming the file, the rule's position and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dagster_evals.testing.openai.replies import Reply, Rule, ToolCall, forced_function, schema_instance

MATCH_FIELDS = ("pattern", "contains")
ANSWER_FIELDS = ("reply", "choice", "tool_call")


class RuleFileError(ValueError):
    """A rule given on the command line or in a rules file is malformed (names where and which field)."""


def choice_reply(choice: str) -> Any:
    """A reply that makes a judge pick `choice`: the forced function's call, with its schema's other
    arguments filled in (e.g. `reasons` when the judge asks for chain of thought)."""

    def reply(body: dict[str, Any]) -> Reply:
        function = forced_function(body)
        if function is None:
            return Reply(content=choice)
        arguments = schema_instance(function.get("parameters")) or {}
        if not isinstance(arguments, dict):
            arguments = {}
        return Reply(tool_calls=(ToolCall(function["name"], {**arguments, "choice": choice}),))

    return reply


def _string(rule: Mapping[str, Any], name: str, where: str) -> str:
    value = rule[name]
    if not isinstance(value, str) or not value:
        raise RuleFileError(f"{where}: {name} must be a non-empty string, got {json.dumps(value)}")
    return value


def rule_from_mapping(rule: Any, where: str) -> Rule:
    """One `Rule` from a rules-file entry; `where` (e.g. `rules.yaml: rule 2`) prefixes every error."""
    if not isinstance(rule, Mapping):
        raise RuleFileError(f"{where}: a rule must be a mapping, got {type(rule).__name__}")
    unknown = sorted(set(rule) - {*MATCH_FIELDS, *ANSWER_FIELDS})
    if unknown:
        raise RuleFileError(
            f"{where}: unknown field(s) {', '.join(map(str, unknown))}; a rule has "
            f"{', '.join(MATCH_FIELDS)} and one of {', '.join(ANSWER_FIELDS)}"
        )
    answers = [name for name in ANSWER_FIELDS if name in rule]
    if len(answers) != 1:
        raise RuleFileError(f"{where}: give exactly one of {', '.join(ANSWER_FIELDS)} (got {len(answers)})")
    pattern = _string(rule, "pattern", where) if "pattern" in rule else None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RuleFileError(f"{where}: pattern is not a valid regular expression ({exc})") from None
    contains = _string(rule, "contains", where) if "contains" in rule else None
    answer = answers[0]
    if answer == "reply":
        reply: Any = _string(rule, "reply", where)
    elif answer == "choice":
        reply = choice_reply(_string(rule, "choice", where))
    else:
        call = rule["tool_call"]
        if not isinstance(call, Mapping) or set(call) - {"name", "arguments"} or "name" not in call:
            raise RuleFileError(f"{where}: tool_call must be a mapping with name and optional arguments")
        name = _string(call, "name", f"{where}: tool_call")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise RuleFileError(f"{where}: tool_call.arguments must be a mapping")
        reply = ToolCall(name, dict(arguments))
    return Rule(reply=reply, contains=contains, pattern=pattern)


def load_rules_file(path: str | Path) -> list[Rule]:
    """The rules of a YAML (or JSON) file: a list of rules, or `{rules: [...]}`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(f"{file}: cannot read the rules file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{file}: not valid YAML ({exc})") from None
    if isinstance(data, Mapping) and set(data) == {"rules"}:
        data = data["rules"]
    if not isinstance(data, list):
        raise RuleFileError(f"{file}: expected a list of rules (or a mapping with one key, rules)")
    return [rule_from_mapping(entry, f"{file}: rule {i}") for i, entry in enumerate(data, start=1)]


def command_line_rules(
    answers: Sequence[Sequence[str]] = (), choices: Sequence[Sequence[str]] = ()
) -> list[Rule]:
    """Rules from `--answer PATTERN TEXT` and `--choice PATTERN CHOICE` pairs (patterns are regular
    expressions; `.` matches everything)."""
    rules = []
    for flag, pairs, field in (("--answer", answers, "reply"), ("--choice", choices, "choice")):
        for pattern, value in pairs:
            rules.append(rule_from_mapping({"pattern": pattern, field: value}, f"{flag} {pattern!r}"))
    return rules
