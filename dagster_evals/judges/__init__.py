"""LLM judges on any OpenAI-compatible endpoint: autoevals scorers by name, custom rubrics, a cache.

Importing this package loads no Dagster: the Dagster resources (`OpenAIJudgeResource`, `JudgeResource`)
load on first use.
"""

from typing import TYPE_CHECKING, Any

from dagster_evals.engine.scorers import register_named_scorers
from dagster_evals.judges.catalog import CATALOG, JUDGE_NAMES
from dagster_evals.judges.judge import Judge, judge
from dagster_evals.judges.rubric import rubric_judge, rubric_judges_from_yaml
from dagster_evals.judges.settings import JudgeSettings

# `resolve_scorer("factuality")` (a suite's `scorers=[...]`, YAML, the Airflow operator) builds the judge.
register_named_scorers(JUDGE_NAMES, judge)

if TYPE_CHECKING:
    from dagster_evals.judges.cache import JudgeCache
    from dagster_evals.judges.resource import JudgeResource, OpenAIJudgeResource


def __getattr__(name: str) -> Any:
    # JudgeCache imports SQLAlchemy: only when asked for.
    if name == "JudgeCache":
        from dagster_evals.judges.cache import JudgeCache

        return JudgeCache
    # The judge resources are Dagster resources: Dagster loads with them, not with this package.
    if name in ("JudgeResource", "OpenAIJudgeResource"):
        from dagster_evals.judges import resource

        return getattr(resource, name)
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
