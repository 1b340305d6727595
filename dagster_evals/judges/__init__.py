"""LLM judges on any OpenAI-compatible endpoint: autoevals scorers by name, custom rubrics, a cache."""

from dagster_evals.judges.cache import JudgeCache
from dagster_evals.judges.catalog import CATALOG, JUDGE_NAMES
from dagster_evals.judges.judge import Judge, judge
from dagster_evals.judges.resource import JudgeResource, OpenAIJudgeResource
from dagster_evals.judges.rubric import rubric_judge, rubric_judges_from_yaml
from dagster_evals.judges.settings import JudgeSettings

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
