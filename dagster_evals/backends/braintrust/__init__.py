"""Braintrust backend: `BraintrustResource` and the `EvalPlatform` it hands out."""

from dagster_evals.backends.braintrust.platform import BraintrustPlatform, BraintrustResource

__all__ = ["BraintrustPlatform", "BraintrustResource"]
