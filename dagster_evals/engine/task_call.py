"""How the runner calls a task: with the row's input positionally, or with the row fields it names.

A task is called either as `task(input)` or, when its signature names any of `TASK_ARGS` (or takes
`**kwargs`), as `task(input=..., expected=..., ...)` with exactly the fields it names. `task_call_problem`
checks at load time that a callable can be called one of these ways.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

TASK_ARGS = ("input", "expected", "metadata", "row_id", "trial", "prompt")


def task_kwargs_names(task: Callable[..., Any]) -> tuple[str, ...] | None:
    """Names of the row fields the task accepts, or None when it takes the input positionally."""
    try:
        params = inspect.signature(task).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return TASK_ARGS
    named = tuple(a for a in TASK_ARGS if a in params)
    return named if named else None


def task_call_problem(task: Callable[..., Any]) -> str | None:
    """Why the runner cannot call `task` (e.g. it takes no argument, or needs one the row has not), or None.

    A callable without a readable signature (some builtins) is given the benefit of the doubt.

    Examples:
        >>> task_call_problem(lambda input: input) is None
        True
        >>> task_call_problem(lambda: "x")
        'it takes no argument, but is called with the row input'
    """
    try:
        signature = inspect.signature(task)
    except (TypeError, ValueError):
        return None
    names = task_kwargs_names(task)
    try:
        if names is None:
            signature.bind(None)
        else:
            signature.bind(**dict.fromkeys(names))
    except TypeError as exc:
        if names is None and not signature.parameters:
            return "it takes no argument, but is called with the row input"
        called = "the row input" if names is None else f"keyword arguments {', '.join(names)}"
        return f"it is called with {called}: {exc}"
    return None
