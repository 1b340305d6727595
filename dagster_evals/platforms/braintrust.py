"""Deprecated alias of `dagster_evals.backends.braintrust` (moved in 0.2.0)."""

from dagster_evals.backends.braintrust import BraintrustPlatform, BraintrustResource

__all__ = ["BraintrustPlatform", "BraintrustResource"]
