"""LLM judges as scorers: an autoevals scorer or a custom rubric, on the configured endpoint, cached.

`judge("factuality")` (or the name alone in `EvalSuite(scorers=[...])`) returns a `Scorer` that, per row:
maps the row to the judge's arguments (see `dagster_evals.judges.catalog`), looks the call up in the judge
cache, and otherwise runs the autoevals scorer through the governed client (`dagster_evals.judges.client`),
recording tokens, cost and latency under the scorer's name.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_evals.engine import usage
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.scorers import Scorer
from dagster_evals.judges.binding import bound_settings
from dagster_evals.judges.catalog import CATALOG, DEFAULT_PATHS, JudgeSpec
from dagster_evals.judges.client import client_for
from dagster_evals.judges.settings import JudgeSettings, endpoint_settings


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value  # a list of passages (context): autoevals joins it
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


_MISSING = object()


def _lookup(row: Mapping[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value: Any = row.get(head, _MISSING)
    for part in rest.split(".") if rest else ():
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


@dataclass(frozen=True, eq=False)
class Judge:
    """One LLM judge. Build it with `judge(...)` or `rubric_judge(...)`.

    Args:
        name: The scorer name in reports.
        spec: The autoevals scorer it runs (None for a custom rubric).
        endpoint: An `OpenAIJudgeResource` or `JudgeSettings`; default: the suite's judge resource
            (`judge_resource_key`), else `OPENAI_BASE_URL`/`OPENAI_API_KEY`.
        model: The judge model (default: the endpoint's model, or its embedding model for embedding scorers).
        fields: judge argument → row path, overriding the defaults (e.g. `{"context": "input.docs"}`).
        options: Fixed arguments: `criteria`/`language` for every row, or autoevals constructor options
            (`use_cot`, `temperature`, `expected_min`, `threshold`, ...).
        cache: Whether to use the judge cache (default: the endpoint's `cache`).
        max_cost_usd: Budget per run (default: the endpoint's).
        rubric: For a custom rubric: `prompt`, `choice_scores`, `use_cot`.
    """

    name: str
    spec: JudgeSpec | None = None
    endpoint: Any = None
    model: str | None = None
    fields: Mapping[str, str] | None = None
    options: Mapping[str, Any] | None = None
    cache: bool | None = None
    max_cost_usd: float | None = None
    rubric: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_scorers", weakref.WeakKeyDictionary())
        object.__setattr__(self, "_resolved", {})
        for arg, path in (self.fields or {}).items():
            if path.partition(".")[0] not in ("input", "output", "expected", "metadata"):
                raise ConfigError(
                    f"judge {self.name!r}: fields[{arg!r}] = {path!r} must start with input, output, expected "
                    "or metadata (e.g. 'metadata.context')"
                )

    # -- configuration -------------------------------------------------------------------------------
    def settings(self) -> JudgeSettings:
        """Its endpoint's settings: `endpoint`, else the judge resource bound to the run
        (`EvalSuite(judge_resource_key=...)`), else `OPENAI_BASE_URL` / `OPENAI_API_KEY`."""
        base = endpoint_settings(self.endpoint) or bound_settings() or JudgeSettings.from_env()
        resolved: dict[JudgeSettings, JudgeSettings] = self._resolved  # type: ignore[attr-defined]
        settings = resolved.get(base)
        if settings is None:  # once per distinct endpoint, not once per row
            settings = resolved[base] = base.with_options(cache=self.cache, max_cost_usd=self.max_cost_usd)
        return settings

    def run_budget(self) -> float | None:
        """The run's `max_cost_usd` this judge declares (see `dagster_evals.engine.usage.budget_for`)."""
        return self.settings().max_cost_usd

    @property
    def required(self) -> tuple[str, ...]:
        if self.spec is not None:
            return self.spec.required
        return ("output",)

    def _model(self, settings: JudgeSettings) -> str:
        if self.model:
            return self.model
        if self.spec is not None and self.spec.kind == "embedding":
            return settings.embedding_model
        if self.spec is not None and self.spec.kind == "moderation":
            return settings.moderation_model
        return settings.model

    def prompt_fingerprint(self) -> str:
        """What identifies the judge prompt: the rubric, or autoevals' template / scorer class and version."""
        if self.rubric is not None:
            return json.dumps(dict(self.rubric), sort_keys=True)
        assert self.spec is not None
        from autoevals.version import VERSION

        if self.spec.template:
            import autoevals

            path = Path(autoevals.__file__).parent / "templates" / f"{self.spec.template}.yaml"
            if path.exists():
                return path.read_text(encoding="utf-8")
        return f"autoevals {VERSION} {self.spec.module}.{self.spec.cls}"

    # -- arguments -------------------------------------------------------------------------------------
    def arguments(
        self, input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The judge's arguments for one row; raises `ValueError` naming the row field a required one lacks."""
        row = {"input": input, "output": output, "expected": expected, "metadata": dict(metadata or {})}
        options = dict(self.options or {})
        wanted = self.required + (self.spec.optional if self.spec else ())
        if self.rubric is not None:
            wanted = ("input", "output", "expected")
        args: dict[str, Any] = {}
        for arg in wanted:
            if arg in options:
                args[arg] = options[arg]
                continue
            paths = (
                (self.fields[arg],) if self.fields and arg in self.fields else DEFAULT_PATHS.get(arg, (arg,))
            )
            value = next(
                (v for v in (_lookup(row, p) for p in paths) if v is not _MISSING and v is not None), None
            )
            if value is None and arg in self.required:
                raise ValueError(
                    f"judge {self.name!r} needs {arg!r}, but the row has no {' or '.join(paths)}; "
                    f"map it with judge({self.name!r}, fields={{{arg!r}: '<input|metadata|expected>.<field>'}})"
                )
            args[arg] = _text(value)
        return args

    # -- scoring ---------------------------------------------------------------------------------------
    def _build(self, settings: JudgeSettings, model: str) -> Any:
        client = client_for(settings).llm_client()
        constructor = {k: v for k, v in (self.options or {}).items() if k not in DEFAULT_PATHS}
        if self.rubric is not None:
            from autoevals.llm import LLMClassifier

            return LLMClassifier(
                self.name,
                self.rubric["prompt"],
                dict(self.rubric["choice_scores"]),
                model=model,
                use_cot=bool(self.rubric.get("use_cot", True)),
                client=client,
                **constructor,
            )
        assert self.spec is not None
        if self.spec.needs_module and importlib.util.find_spec(self.spec.needs_module) is None:
            raise ConfigError(
                f"judge {self.name!r} needs the {self.spec.needs_module} package: pip install 'autoevals[scipy]'"
            )
        cls = self.spec.load()
        if self.spec.kind == "moderation":
            return cls(client=client, **constructor)
        if self.spec.kind == "embedding":
            return cls(model=model, client=client, **constructor)
        if self.spec.name in ("answer_relevancy", "answer_correctness"):
            return cls(model=model, embedding_model=settings.embedding_model, client=client, **constructor)
        return cls(model=model, client=client, **constructor)

    def _scorer(self, settings: JudgeSettings, model: str) -> Any:
        loop = asyncio.get_running_loop()
        cache: weakref.WeakKeyDictionary = self._scorers  # type: ignore[attr-defined]
        key = (settings, model)
        per_loop = cache.setdefault(loop, {})
        if key not in per_loop:
            per_loop[key] = self._build(settings, model)
        return per_loop[key]

    async def evaluate(self, input: Any, output: Any, expected: Any, metadata: Mapping[str, Any]) -> Any:
        """Score one row: a cached score, or one judge run on the endpoint."""
        from autoevals.score import Score

        from dagster_evals.engine.embedded_db import judge_cache_allowed
        from dagster_evals.judges.cache import cache_for, cache_key  # SQLAlchemy: imported on first use

        args = self.arguments(input, output, expected, metadata)
        settings = self.settings()
        model = self._model(settings)
        with usage.scope(self.name):
            key = None
            if settings.cache and judge_cache_allowed():
                key = cache_key(
                    {
                        "scorer": self.name,
                        "model": model,
                        "prompt": self.prompt_fingerprint(),
                        "args": args,
                        "options": dict(self.options or {}),
                    }
                )
                hit = await asyncio.to_thread(cache_for().get, key)
                if hit is not None:
                    usage.record_cache_hit()
                    return Score(name=self.name, score=hit[0], metadata=hit[1])
            scorer = self._scorer(settings, model)
            kwargs = dict(args)
            if self.spec is not None and self.spec.name == "battle":
                kwargs["instructions"] = kwargs.pop("instructions", None)
            result = await scorer.eval_async(**kwargs)
            if key is not None and getattr(result, "error", None) is None:
                details = {k: v for k, v in (result.metadata or {}).items() if k in ("choice", "rationale")}
                await asyncio.to_thread(cache_for().put, key, self.name, model, result.score, details)
            return result


def as_scorer(j: Judge) -> Scorer:
    return Scorer.from_callable(j.evaluate, name=j.name)


def judge(
    name: str,
    *,
    endpoint: Any = None,
    model: str | None = None,
    fields: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    cache: bool | None = None,
    max_cost_usd: float | None = None,
    scorer_name: str | None = None,
) -> Scorer:
    """An autoevals LLM scorer by snake_case name, as a scorer for `EvalSuite(scorers=[...])`.

    Examples:
        .. code-block:: python

            from dagster_evals import EvalSuite, judge

            suite = EvalSuite(
                name="rag_bot", source="data/rag.jsonl", task=answer,
                scorers=["factuality", judge("faithfulness", fields={"context": "input.docs"})],
            )
    """
    spec = CATALOG.get(name)
    if spec is None:
        raise ConfigError(f"unknown LLM judge {name!r}; known judges: {', '.join(sorted(CATALOG))}")
    return as_scorer(
        Judge(
            name=scorer_name or name,
            spec=spec,
            endpoint=endpoint,
            model=model,
            fields=fields,
            options=options,
            cache=cache,
            max_cost_usd=max_cost_usd,
        )
    )
