"""Deprecated alias of `dagster_evals.backends.base` (moved in 0.2.0)."""

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource, ProgressFn

__all__ = ["EvalPlatform", "EvalPlatformResource", "ProgressFn"]
