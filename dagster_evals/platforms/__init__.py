"""Deprecated: moved to `dagster_evals.backends` (0.2.0); this alias goes in a later release."""

import warnings

from dagster_evals.backends import EvalPlatform, EvalPlatformResource, ProgressFn

warnings.warn(
    "dagster_evals.platforms is deprecated: import from dagster_evals (or dagster_evals.backends) instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["EvalPlatform", "EvalPlatformResource", "ProgressFn"]
