"""Platform implementations of the `EvalPlatform` interface."""

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource, ProgressFn

__all__ = ["EvalPlatform", "EvalPlatformResource", "ProgressFn"]
