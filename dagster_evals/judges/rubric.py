"""Custom rubric judges: a prompt, its choices and their scores (an autoevals `LLMClassifier`).

In Python:

    politeness = rubric_judge(
        "politeness",
        prompt="Is this reply to a customer polite?\\n\\nReply: {{output}}\\n\\na) polite\\nb) rude",
        choice_scores={"a": 1.0, "b": 0.0},
    )

In YAML (`rubric_judges_from_yaml("judges.yaml")` returns one scorer per entry):

    judges:
      - name: politeness
        prompt: |
          Is this reply to a customer polite?
          Reply: {{output}}
          a) polite
          b) rude
        choice_scores: {a: 1.0, b: 0.0}
        use_cot: true          # optional (default true): ask for reasons before the choice
        model: gpt-4o-mini     # optional (default: the endpoint's model)

The prompt is a mustache template over `input`, `output` and `expected` (non-strings as JSON text).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.scorers import Scorer
from dagster_evals.judges.judge import Judge, as_scorer

RUBRIC_KEYS = {"name", "prompt", "choice_scores", "use_cot", "model", "cache", "max_cost_usd", "fields"}


def rubric_judge(
    name: str,
    prompt: str,
    choice_scores: Mapping[str, float],
    *,
    use_cot: bool = True,
    model: str | None = None,
    endpoint: Any = None,
    fields: Mapping[str, str] | None = None,
    cache: bool | None = None,
    max_cost_usd: float | None = None,
) -> Scorer:
    """A scorer that asks the judge model to pick one of `choice_scores`' keys for each row.

    Examples:
        .. code-block:: python

            from dagster_evals import rubric_judge

            concise = rubric_judge(
                "concise", "Is this answer concise?\\n{{output}}\\na) yes\\nb) no", {"a": 1, "b": 0}
            )
    """
    where = f"rubric judge {name!r}"
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{where}: prompt must be a non-empty string")
    if not isinstance(choice_scores, Mapping) or not choice_scores:
        raise ConfigError(f"{where}: choice_scores must map each choice to a score in [0, 1]")
    for choice, score in choice_scores.items():
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise ConfigError(f"{where}: choice_scores[{choice!r}] = {score!r} is not a number in [0, 1]")
    return as_scorer(
        Judge(
            name=name,
            endpoint=endpoint,
            model=model,
            fields=fields,
            cache=cache,
            max_cost_usd=max_cost_usd,
            rubric={"prompt": prompt, "choice_scores": dict(choice_scores), "use_cot": use_cot},
        )
    )


def rubric_judges_from_yaml(path: str | Path, *, endpoint: Any = None) -> list[Scorer]:
    """One scorer per entry of the `judges:` list in a YAML file (see the module docstring)."""
    source = Path(path)
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read rubric judges ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    entries = document.get("judges") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: expected a top-level 'judges:' list of rubric judges")
    scorers = []
    for index, entry in enumerate(entries):
        where = f"{source}: judges[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: each judge is a mapping with name, prompt and choice_scores")
        unknown = sorted(set(entry) - RUBRIC_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(RUBRIC_KEYS))}"
            )
        missing = [k for k in ("name", "prompt", "choice_scores") if k not in entry]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        try:
            scorers.append(
                rubric_judge(
                    str(entry["name"]),
                    entry["prompt"],
                    entry["choice_scores"],
                    use_cot=bool(entry.get("use_cot", True)),
                    model=entry.get("model"),
                    endpoint=endpoint,
                    fields=entry.get("fields"),
                    cache=entry.get("cache"),
                    max_cost_usd=entry.get("max_cost_usd"),
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
    return scorers
