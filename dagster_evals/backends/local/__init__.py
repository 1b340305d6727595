"""Embedded backend: `LocalEvalResource` and the `EvalPlatform` it hands out (SQLite or PostgreSQL).

Importing this package loads no Dagster; `LocalEvalResource` loads it on first use.
"""

from typing import TYPE_CHECKING, Any

from dagster_evals.backends.local.platform import LocalPlatform

if TYPE_CHECKING:
    from dagster_evals.backends.local.resources import LocalEvalResource


def __getattr__(name: str) -> Any:
    if name == "LocalEvalResource":
        from dagster_evals.backends.local.resources import LocalEvalResource

        return LocalEvalResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LocalEvalResource", "LocalPlatform"]
