"""LLM judges on any OpenAI-compatible endpoint: autoevals scorers by name, custom rubrics, a cache."""

from typing import TYPE_CHECKING, Any

from dagster_evals.judges.catalog import CATALOG, JUDGE_NAMES
from dagster_evals.judges.judge import Judge, judge
from dagster_evals.judges.resource import JudgeResource, OpenAIJudgeResource
from dagster_evals.judges.rubric import rubric_judge, rubric_judges_from_yaml
from dagster_evals.judges.settings import JudgeSettings

if TYPE_CHECKING:
    from dagster_evals.judges.cache import JudgeCache


def __getattr__(name: str) -> Any:
    # JudgeCache imports SQLAlchemy: only when asked for.
    if name == "JudgeCache":
        from dagster_evals.judges.cache import JudgeCache

        return JudgeCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CATALOG",
    "JUDGE_NAMES",
    "Judge",
    "JudgeCache",
    "JudgeResource",
    "JudgeSettings",
    "OpenAIJudgeResource",
    "judge",
    "rubric_judge",
    "rubric_judges_from_yaml",
]
