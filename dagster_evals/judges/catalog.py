"""Every LLM scorer of `autoevals` (0.4.x) by snake_case name, with the arguments each takes from a row.

| name | autoevals class | arguments |
|---|---|---|
| factuality | `llm.Factuality` | input, output, expected |
| closed_qa | `llm.ClosedQA` | input, output, criteria |
| battle | `llm.Battle` | instructions, output, expected |
| humor | `llm.Humor` | output |
| possible | `llm.Possible` | input, output |
| security | `llm.Security` | output |
| sql | `llm.Sql` | input, output, expected |
| summary | `llm.Summary` | input, output, expected |
| translation | `llm.Translation` | input, output, expected, language |
| context_recall | `ragas.ContextRecall` | input, expected, context |
| context_precision | `ragas.ContextPrecision` | input, expected, context |
| context_relevancy | `ragas.ContextRelevancy` | input, context |
| context_entity_recall | `ragas.ContextEntityRecall` | expected, context (needs `autoevals[scipy]`) |
| faithfulness | `ragas.Faithfulness` | input, output, context |
| answer_relevancy | `ragas.AnswerRelevancy` | input, output, context |
| answer_similarity | `ragas.AnswerSimilarity` | output, expected (embeddings) |
| answer_correctness | `ragas.AnswerCorrectness` | input, output, expected (LLM + embeddings) |
| embedding_similarity | `string.EmbeddingSimilarity` | output, expected (embeddings) |
| moderation | `moderation.Moderation` | output (moderations) |

Where each argument comes from, unless the judge's `fields` say otherwise (a dotted path into the row:
`input`, `input.question`, `metadata.docs`, `expected.answer`, `output`, ...):

- `input` / `instructions`: the row's input; `output`: the task's output; `expected`: the row's expected.
- `context`: `metadata.context`, else `input.context` (a list of passages is joined by autoevals).
- `criteria` (closed_qa): `metadata.criteria`; `language` (translation): `metadata.language`. Both can also
  be fixed for every row with `options={"criteria": "..."}`.

Values that are not strings are passed as compact JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_PATHS: dict[str, tuple[str, ...]] = {
    "input": ("input",),
    "instructions": ("input",),
    "output": ("output",),
    "expected": ("expected",),
    "context": ("metadata.context", "input.context"),
    "criteria": ("metadata.criteria",),
    "language": ("metadata.language",),
}


@dataclass(frozen=True)
class JudgeSpec:
    """How to build one autoevals scorer and what it needs from a row."""

    name: str
    module: str
    cls: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    kind: str = "classifier"  # classifier | ragas | embedding | moderation
    template: str | None = None  # autoevals/templates/<template>.yaml for classifiers
    needs_module: str | None = None  # an optional dependency autoevals imports for this scorer

    def load(self) -> Any:
        import importlib

        return getattr(importlib.import_module(f"autoevals.{self.module}"), self.cls)


def _classifier(name: str, cls: str, required: tuple[str, ...], template: str | None = None) -> JudgeSpec:
    return JudgeSpec(name, "llm", cls, required, kind="classifier", template=template or name)


CATALOG: dict[str, JudgeSpec] = {
    s.name: s
    for s in (
        _classifier("factuality", "Factuality", ("input", "output", "expected")),
        _classifier("closed_qa", "ClosedQA", ("input", "output", "criteria"), template="closed_q_a"),
        _classifier("battle", "Battle", ("instructions", "output", "expected")),
        _classifier("humor", "Humor", ("output",)),
        _classifier("possible", "Possible", ("input", "output")),
        _classifier("security", "Security", ("output",)),
        _classifier("sql", "Sql", ("input", "output", "expected")),
        _classifier("summary", "Summary", ("input", "output", "expected")),
        _classifier("translation", "Translation", ("input", "output", "expected", "language")),
        JudgeSpec(
            "context_recall", "ragas", "ContextRecall", ("input", "expected", "context"), ("output",), "ragas"
        ),
        JudgeSpec(
            "context_precision",
            "ragas",
            "ContextPrecision",
            ("input", "expected", "context"),
            ("output",),
            "ragas",
        ),
        JudgeSpec(
            "context_relevancy", "ragas", "ContextRelevancy", ("input", "context"), ("output",), "ragas"
        ),
        JudgeSpec(
            "context_entity_recall",
            "ragas",
            "ContextEntityRecall",
            ("expected", "context"),
            ("output",),
            "ragas",
            needs_module="scipy",
        ),
        JudgeSpec("faithfulness", "ragas", "Faithfulness", ("input", "output", "context"), (), "ragas"),
        JudgeSpec(
            "answer_relevancy", "ragas", "AnswerRelevancy", ("input", "output", "context"), (), "ragas"
        ),
        JudgeSpec("answer_similarity", "ragas", "AnswerSimilarity", ("output", "expected"), (), "embedding"),
        JudgeSpec(
            "answer_correctness", "ragas", "AnswerCorrectness", ("input", "output", "expected"), (), "ragas"
        ),
        JudgeSpec(
            "embedding_similarity", "string", "EmbeddingSimilarity", ("output", "expected"), (), "embedding"
        ),
        JudgeSpec("moderation", "moderation", "Moderation", ("output",), (), "moderation"),
    )
}
JUDGE_NAMES = tuple(CATALOG)
