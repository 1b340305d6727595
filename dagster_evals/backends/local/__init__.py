"""Embedded backend: `LocalEvalResource` and the `EvalPlatform` it hands out (SQLite or PostgreSQL)."""

from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.backends.local.resources import LocalEvalResource

__all__ = ["LocalEvalResource", "LocalPlatform"]
