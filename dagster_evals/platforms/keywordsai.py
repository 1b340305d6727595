"""Deprecated alias of `dagster_evals.backends.keywordsai` (moved in 0.2.0)."""

from dagster_evals.backends.keywordsai import KeywordsAIPlatform, KeywordsAIResource

__all__ = ["KeywordsAIPlatform", "KeywordsAIResource"]
