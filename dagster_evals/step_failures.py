"""Errors leaving a Dagster step become `dagster.Failure`s, so the run page shows their message, not a traceback.

`dagster_evals.engine.errors` holds plain exceptions (the engine imports no Dagster). Each step body of the Dagster
surface is wrapped with `dagster_failures`: a `DagsterEvalsError` raised inside it is re-raised as an
instance of a class deriving from both its own class and `dagster.Failure`, so `except InputError` and
`pytest.raises(ConfigError)` keep catching it and Dagster renders its description and metadata.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, ParamSpec, TypeVar

import dagster as dg

from dagster_evals.engine.errors import DagsterEvalsError

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def failure_class(error_class: type[DagsterEvalsError]) -> type[DagsterEvalsError]:
    """`error_class` that is also a `dagster.Failure` (one class per error class, made once)."""
    return type(
        error_class.__name__,
        (error_class, dg.Failure),
        {"__module__": error_class.__module__, "__qualname__": error_class.__qualname__},
    )


def as_failure(error: DagsterEvalsError) -> DagsterEvalsError:
    """A copy of `error` that is also a `dagster.Failure` carrying its message and metadata."""
    if isinstance(error, dg.Failure):
        return error
    cls = failure_class(type(error))
    failure = cls.__new__(cls)
    failure.__dict__.update(error.__dict__)
    dg.Failure.__init__(
        failure,  # type: ignore[arg-type]
        description=error.message,
        metadata=error.metadata,  # type: ignore[arg-type]
        allow_retries=getattr(error, "allow_retries", True),  # e.g. a closed gate is never retried
    )
    failure.args = error.args
    return failure


def _reraise(error: DagsterEvalsError) -> NoReturn:
    failure = as_failure(error)
    if failure is error:
        raise error
    raise failure.with_traceback(error.__traceback__) from error.__cause__


def dagster_failures(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a step body (a function or a generator): a `DagsterEvalsError` it raises leaves the step as a
    `dagster.Failure`."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def steps(*args: P.args, **kwargs: P.kwargs) -> Iterator[Any]:
            try:
                return (yield from fn(*args, **kwargs))  # type: ignore[misc]
            except DagsterEvalsError as error:
                _reraise(error)

        return steps  # type: ignore[return-value]

    @functools.wraps(fn)
    def step(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DagsterEvalsError as error:
            _reraise(error)

    return step
