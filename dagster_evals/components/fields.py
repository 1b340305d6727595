"""The YAML form of `EvalSuite`'s fields: their types as YAML carries them, their descriptions from the
docstring, and one clear error for a wrong value of a number-or-word field (`scorer_timeout_s`)."""

from __future__ import annotations

import functools
import operator
import re
import types
import typing
from collections import abc
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic_core import PydanticCustomError


def arg_descriptions(doc: str) -> dict[str, str]:
    """`name: text` entries of a Google-style `Args:` section, continuation lines joined."""
    found: dict[str, str] = {}
    current = None
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        match = re.match(r"^(\w+): (.*)$", stripped)
        if match and line.startswith(" " * 8) and not line.startswith(" " * 12):
            current = match.group(1)
            found[current] = match.group(2)
        elif stripped and current:
            found[current] += " " + stripped
        elif not stripped and found:
            break
    return found


def yaml_type(hint: Any) -> Any:
    """The YAML-side form of a type: abstract `Mapping`/`Sequence` → `dict`/`list`, `Path` → `str`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Path:
        return str
    if origin in (types.UnionType, typing.Union):
        parts = tuple(dict.fromkeys(yaml_type(a) for a in args))
        return functools.reduce(operator.or_, parts)
    if origin in (abc.Mapping, dict):
        return dict[tuple(yaml_type(a) for a in args)] if args else dict  # type: ignore[misc]
    if origin in (abc.Sequence, list, tuple):
        return list[yaml_type(args[0])] if args else list  # type: ignore[misc]
    return hint


def one_error_for_number_or_word(hint: Any) -> Any:
    """A `float | Literal[...] | None` hint whose wrong values get one error, not one per union member.

    Example:
        >>> adapter = pydantic.TypeAdapter(one_error_for_number_or_word(float | Literal["auto"] | None))
        >>> adapter.validate_python("auto"), adapter.validate_python(2)
        ('auto', 2.0)
    """
    args = typing.get_args(hint)
    if typing.get_origin(hint) not in (types.UnionType, typing.Union) or float not in args:
        return hint
    words = [w for a in args if typing.get_origin(a) is Literal for w in typing.get_args(a)]
    if not words:
        return hint
    allowed = " or ".join([*(repr(w) for w in words), *(["null"] if type(None) in args else [])])

    def check(value: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Any:
        if value is None or value in words:
            return handler(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PydanticCustomError(
                "float_type", "Input should be a valid number, or {allowed}", {"allowed": allowed}
            )
        return handler(value)

    return Annotated[hint, pydantic.WrapValidator(check)]
