"""The Keywords AI (Respan) fake server: `KeywordsAIFake` and the evaluators it runs (`FakeEvaluator`)."""

from dagster_evals.testing.keywordsai.evaluators import FakeEvaluator
from dagster_evals.testing.keywordsai.fake import KeywordsAIFake

__all__ = ["FakeEvaluator", "KeywordsAIFake"]
