"""Keywords AI (Respan) backend: `KeywordsAIResource` and the `EvalPlatform` it hands out."""

from dagster_evals.backends.keywordsai.models import metadata_filter, where
from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform
from dagster_evals.backends.keywordsai.resources import KeywordsAIResource

__all__ = ["KeywordsAIPlatform", "KeywordsAIResource", "metadata_filter", "where"]
