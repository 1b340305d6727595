"""What the example evaluates, shared by its Dagster code location (`definitions.py`) and its Airflow DAGs
(`example/airflow/support_bot_dags.py`): the tasks that run the bot, a custom scorer, the scorers and the
gate's thresholds. Imports no orchestrator.
"""

from __future__ import annotations

from typing import Any

from dagster_evals.engine.models import PromptVersion
from example.support_bot import answer


def support_bot_task(input: dict[str, Any]) -> str:
    """The application under test: answer the row's question."""
    return answer(input["question"])


def support_bot_with_prompt(input: dict[str, Any], prompt: PromptVersion | None) -> str:
    """The bot with the prompt version under evaluation: its `sign_off` is appended to every answer."""
    sign_off = str((prompt.content.get("sign_off") if prompt else "") or "")
    return f"{answer(input['question'])} {sign_off}".strip()


def mentions_required_facts(output: str, metadata: dict[str, Any]) -> float | None:
    """Share of the row's `must_mention` facts that appear in the answer (None when the row lists none)."""
    facts = metadata.get("must_mention") or []
    if not facts:
        return None
    return sum(fact.lower() in output.lower() for fact in facts) / len(facts)


#: The support bot's scorers: two built-in heuristics and the custom scorer above.
SCORERS: list[Any] = ["exact_match", "levenshtein", mentions_required_facts]
#: The gate: the mean score each scorer must reach.
THRESHOLDS: dict[str, float] = {"levenshtein": 0.7, "mentions_required_facts": 0.75}
