"""Running functions inside the fake Braintrust server: python inline code (restricted builtins and
modules), the autoevals global scorers that need no LLM, and prompts rendered deterministically."""

from __future__ import annotations

import builtins
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dagster_evals.testing.braintrust.store import HttpError

RUNNABLE_GLOBALS = {
    "ExactMatch": "ExactMatch",
    "Levenshtein": "Levenshtein",
    "NumericDiff": "NumericDiff",
    "JSONDiff": "JSONDiff",
    "ListContains": "ListContains",
}
SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in [
        "abs",
        "all",
        "any",
        "bool",
        "dict",
        "enumerate",
        "filter",
        "float",
        "int",
        "isinstance",
        "len",
        "list",
        "map",
        "max",
        "min",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
        "Exception",
        "ValueError",
        "KeyError",
        "TypeError",
    ]
}
SAFE_MODULES = frozenset({"json", "re", "math", "string", "difflib"})


def _restricted_import(name: str, *args: Any, **kwargs: Any) -> Any:
    if name not in SAFE_MODULES:
        raise ImportError(f"import of {name!r} is not allowed in inline code")
    return __import__(name, *args, **kwargs)


@dataclass
class _Fn:
    """A runnable task or scorer, called with whichever of input/output/expected/metadata it accepts."""

    name: str
    fn: Callable[..., Any]
    params: tuple[str, ...]

    @classmethod
    def from_code(cls, code: str, name: str) -> _Fn:
        namespace: dict[str, Any] = {"__builtins__": {**SAFE_BUILTINS, "__import__": _restricted_import}}
        try:
            exec(compile(code, f"<inline:{name}>", "exec"), namespace)
        except Exception as exc:
            raise HttpError(
                400, f"inline code of {name!r} failed to load: {type(exc).__name__}: {exc}"
            ) from None
        functions = [v for v in namespace.values() if inspect.isfunction(v)]
        target = namespace.get("handler") if inspect.isfunction(namespace.get("handler")) else None
        target = target or (functions[-1] if functions else None)
        if target is None:
            raise HttpError(400, f"inline code of {name!r} defines no function")
        params = inspect.signature(target).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            accepted: tuple[str, ...] = ("input", "output", "expected", "metadata")
        else:
            accepted = tuple(a for a in ("input", "output", "expected", "metadata") if a in params)
        return cls(name, target, accepted)

    @classmethod
    def from_prompt(cls, prompt_data: dict[str, Any], name: str) -> _Fn:
        def render(input: Any, output: Any, expected: Any, metadata: dict) -> str:
            prompt = (prompt_data or {}).get("prompt") or {}
            if prompt.get("type") == "completion":
                template = str(prompt.get("content", ""))
            else:
                messages = prompt.get("messages") or [{"content": "{{input}}"}]
                content = messages[-1].get("content", "")
                template = content if isinstance(content, str) else json.dumps(content)
            scope = {"input": input, "output": output, "expected": expected, "metadata": metadata}
            return _mustache(template, scope)

        return cls(name, render, ("input", "output", "expected", "metadata"))

    def call(self, **values: Any) -> Any:
        return self.fn(**{k: values[k] for k in self.params})

    def score(self, **values: Any) -> tuple[str, float | None]:
        result = self.call(**values)
        name = self.name
        if isinstance(result, dict):
            name = self.name if self.name not in ("inline_code", "function") else result.get("name", name)
            result = result.get("score")
        elif hasattr(result, "score") and not isinstance(result, int | float):
            result = result.score
        if isinstance(result, str):
            result = float(result) if _is_number(result) else None
        if result is None:
            return name, None
        value = float(result)
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"score {value} is outside [0, 1]")
        return name, value


def _jsonable(value: Any) -> Any:
    """A task's output as JSON: score objects (e.g. from an autoevals global) become their dict form."""
    if hasattr(value, "as_dict") and callable(value.as_dict):
        return value.as_dict()
    json.dumps(value)
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _mustache(template: str, scope: dict[str, Any]) -> str:
    out, rest = [], template
    while "{{" in rest:
        before, _, after = rest.partition("{{")
        path, _, rest = after.partition("}}")
        value: Any = scope
        for part in path.strip().split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out.append(before)
        out.append(value if isinstance(value, str) else json.dumps(value) if value is not None else "")
    out.append(rest)
    return "".join(out)
