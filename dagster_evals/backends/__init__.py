"""Platform implementations of the `EvalPlatform` interface.

Importing this package loads no Dagster; `EvalPlatformResource` (a Dagster resource) loads on first use.
"""

from typing import TYPE_CHECKING, Any

from dagster_evals.backends.base import EvalPlatform, ProgressFn

if TYPE_CHECKING:
    from dagster_evals.backends.platform_resource import EvalPlatformResource


def __getattr__(name: str) -> Any:
    if name == "EvalPlatformResource":
        from dagster_evals.backends.platform_resource import EvalPlatformResource

        return EvalPlatformResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EvalPlatform", "EvalPlatformResource", "ProgressFn"]
