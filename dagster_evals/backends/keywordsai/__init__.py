"""Keywords AI (Respan) backend: `KeywordsAIResource` and the `EvalPlatform` it hands out.

Importing this package loads no Dagster; `KeywordsAIResource` loads it on first use.
"""

from typing import TYPE_CHECKING, Any

from dagster_evals.backends.keywordsai.models import metadata_filter, where
from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform

if TYPE_CHECKING:
    from dagster_evals.backends.keywordsai.resources import KeywordsAIResource


def __getattr__(name: str) -> Any:
    if name == "KeywordsAIResource":
        from dagster_evals.backends.keywordsai.resources import KeywordsAIResource

        return KeywordsAIResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KeywordsAIPlatform", "KeywordsAIResource", "metadata_filter", "where"]
