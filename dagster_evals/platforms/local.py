"""Deprecated alias of `dagster_evals.backends.local` (moved in 0.2.0)."""

from dagster_evals.backends.local import LocalEvalResource, LocalPlatform

__all__ = ["LocalEvalResource", "LocalPlatform"]
