"""Keywords AI (Respan) backend: `KeywordsAIResource` and the `EvalPlatform` it hands out."""

from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform, KeywordsAIResource

__all__ = ["KeywordsAIPlatform", "KeywordsAIResource"]
