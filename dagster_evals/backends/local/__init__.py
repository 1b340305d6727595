"""Embedded backend: `LocalEvalResource` and the `EvalPlatform` it hands out."""

from dagster_evals.backends.local.platform import LocalEvalResource, LocalPlatform

__all__ = ["LocalEvalResource", "LocalPlatform"]
