"""Local scorers: `autoevals` scorers by name, or any Python callable returning a score in [0, 1].

Names are the heuristics in `BUILTIN_SCORERS` or the LLM judges of `dagster_evals.judges.catalog`
(`factuality`, `closed_qa`, `faithfulness`, `embedding_similarity`, `moderation`, ...), which call the
endpoint in `OPENAI_BASE_URL` / `OPENAI_API_KEY` unless built with `judge(name, endpoint=...)`.

A scorer is called with keyword arguments `input`, `output`, `expected` and `metadata` (a plain function
may accept only the ones it needs) and returns a float in [0, 1], a bool, an `autoevals` `Score`, or None to
skip the row. Anything else — a value outside [0, 1], an exception — is recorded as a per-row scorer error.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.models import PlatformFunction

SCORER_ARGS = ("input", "output", "expected", "metadata")


def _autoevals(name: str) -> Callable[[], Any]:
    def make() -> Any:
        import autoevals

        return getattr(autoevals, name)()

    return make


BUILTIN_SCORERS: Mapping[str, Callable[[], Any]] = {
    "levenshtein": _autoevals("Levenshtein"),
    "exact_match": _autoevals("ExactMatch"),
    "numeric_diff": _autoevals("NumericDiff"),
    "json_diff": _autoevals("JSONDiff"),
    "list_contains": _autoevals("ListContains"),
}
"""The deterministic scorers available by name (from `autoevals`): each maps to a factory of the scorer."""


class ScoreError(ValueError):
    """A scorer returned something that is not a score."""


REASON_KEYS = ("rationale", "reason", "explanation")
REASON_CHARS = 2_000


def score_reason(value: Any) -> str | None:
    """Why a scorer gave its score, when it says: an LLM judge's rationale (autoevals keeps it in the
    `Score`'s `metadata["rationale"]`), cut to `REASON_CHARS` characters; None otherwise.

    Example:
        >>> from autoevals.score import Score
        >>> score_reason(Score(name="factuality", score=0.0, metadata={"rationale": "It disagrees."}))
        'It disagrees.'
        >>> score_reason(1.0) is None
        True
    """
    metadata = getattr(value, "metadata", None)
    if not isinstance(metadata, dict):
        return None
    for key in REASON_KEYS:
        text = metadata.get(key)
        if isinstance(text, str) and text.strip():
            text = text.strip()
            return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
    return None


def coerce_score(value: Any) -> float | None:
    """Turn a scorer's return value into a float in [0, 1] or None; raise `ScoreError` otherwise."""
    if value is None:
        return None
    if hasattr(value, "score") and not isinstance(value, int | float):
        error = getattr(value, "error", None)
        if error:
            raise ScoreError(str(error))
        value = value.score
        if value is None:
            return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise ScoreError(f"returned {type(value).__name__} {value!r}, not a number in [0, 1]")
    score = float(value)
    if math.isnan(score) or score < 0.0 or score > 1.0:
        raise ScoreError(f"returned {score!r}, outside [0, 1]")
    return score


@dataclass(frozen=True)
class Scorer:
    """A named scoring function run locally after the task."""

    name: str
    fn: Callable[..., Any]
    _params: tuple[str, ...] | None = field(default=None, compare=False)

    @classmethod
    def from_callable(cls, fn: Callable[..., Any], name: str | None = None) -> Scorer:
        """A scorer from any callable taking some of `input`, `output`, `expected`, `metadata` (or an autoevals
        scorer); `name` defaults to the callable's name. A `ConfigError` when it takes none of them."""
        scorer_name = name or getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__
        # autoevals scorers: their async entry point runs cheap heuristics inline and LLM judges without
        # blocking a thread.
        target = fn.eval_async if hasattr(fn, "eval") and hasattr(fn, "eval_async") else fn
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            params = {}
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            accepted = SCORER_ARGS
        else:
            accepted = tuple(a for a in SCORER_ARGS if a in params)
            if not accepted:
                raise ConfigError(
                    f"scorer {scorer_name!r} takes none of the arguments {', '.join(SCORER_ARGS)}; "
                    "define it as def scorer(output, expected) (or any of those names)"
                )
        return cls(name=str(scorer_name), fn=target, _params=accepted)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def _kwargs(self, input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
        values = {"input": input, "output": output, "expected": expected, "metadata": dict(metadata)}
        return {k: values[k] for k in (self._params or SCORER_ARGS)}

    def score(self, input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]) -> float | None:
        """Score one output (an async scorer is run to completion on a private event loop)."""
        return self.score_with_reason(input, output, expected, metadata)[0]

    async def score_async(
        self, input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]
    ) -> float | None:
        """Score one output, awaiting an async scorer on the running event loop."""
        return (await self.score_with_reason_async(input, output, expected, metadata))[0]

    def score_with_reason(
        self, input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]
    ) -> tuple[float | None, str | None]:
        """The score of one output and the scorer's reason for it (see `score_reason`), if it gave one."""
        result = self.fn(**self._kwargs(input, output, expected, metadata))
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return coerce_score(result), score_reason(result)

    async def score_with_reason_async(
        self, input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]
    ) -> tuple[float | None, str | None]:
        """The score of one output and the scorer's reason for it, awaiting an async scorer on the running event
        loop."""
        result = self.fn(**self._kwargs(input, output, expected, metadata))
        if inspect.isawaitable(result):
            result = await result
        return coerce_score(result), score_reason(result)


async def _await(awaitable: Any) -> Any:
    return await awaitable


#: Scorers known by name beyond `BUILTIN_SCORERS`, added by the package that provides them
#: (`dagster_evals.judges` adds its LLM judges when imported): name -> factory taking the name.
NAMED_SCORERS: dict[str, Callable[[str], Scorer]] = {}


def register_named_scorers(names: Iterable[str], factory: Callable[[str], Scorer]) -> None:
    """Make `resolve_scorer(name)` build these scorers with `factory(name)`.

    Examples:
        >>> from dagster_evals.engine.scorers import Scorer, register_named_scorers, resolve_scorer
        >>> register_named_scorers(["always_one"], lambda name: Scorer.from_callable(lambda **_: 1.0, name=name))
        >>> resolve_scorer("always_one").name
        'always_one'
    """
    for name in names:
        NAMED_SCORERS[name] = factory


def resolve_scorer(spec: str | Scorer | Callable[..., Any]) -> Scorer:
    """A `Scorer` from a built-in name (see `BUILTIN_SCORERS`), an LLM judge's name, a `Scorer`, or a callable."""
    if isinstance(spec, Scorer):
        return spec
    if isinstance(spec, str):
        factory = BUILTIN_SCORERS.get(spec)
        if factory is None:
            named = NAMED_SCORERS.get(spec)
            if named is not None:
                return named(spec)
            known = ", ".join(sorted(BUILTIN_SCORERS))
            raise ConfigError(
                f"unknown scorer {spec!r}; known scorers: {known}; LLM judges: {', '.join(sorted(NAMED_SCORERS))} "
                "(or pass a Python callable)"
            )
        return Scorer.from_callable(factory(), name=spec)
    if callable(spec):
        return Scorer.from_callable(spec)
    raise ConfigError(f"a scorer must be a name, a Scorer or a callable, got {type(spec).__name__}")


def resolve_local_scorers(specs: list[Any]) -> list[Scorer]:
    """Resolve every local scorer, rejecting platform-side ones and duplicate names."""
    scorers: list[Scorer] = []
    for spec in specs:
        if isinstance(spec, PlatformFunction):
            raise ConfigError(
                f"scorer {spec.name!r} runs on {spec.platform}; it cannot be used with a local task run"
            )
        scorers.append(resolve_scorer(spec))
    names = [s.name for s in scorers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two scorers share the name(s) {', '.join(dupes)}; give each a unique name")
    return scorers
