"""The judge endpoint bound by a Dagster resource key.

A suite that names a judge resource (`EvalSuite(judge_resource_key="judge")`) requires that resource on
its eval report step; while the step runs the eval, every LLM judge and `prompt_task()` built without an
explicit `endpoint=` calls the endpoint of that resource. Precedence, per judge or prompt task: its own
`endpoint=`, then the bound resource, then `OPENAI_BASE_URL` / `OPENAI_API_KEY`.

Examples:
    .. code-block:: python

        import dagster as dg
        from dagster_evals import EvalSuite, JudgeResource, LocalResource, build_eval_suite_definitions

        suite = EvalSuite(
            name="support_bot", source="data/support_bot.jsonl", task=answer,
            scorers=["factuality"], judge_resource_key="judge",
        )
        defs = dg.Definitions.merge(
            build_eval_suite_definitions(suite),
            dg.Definitions(resources={
                "evals": LocalResource(),
                "judge": JudgeResource(api_key=dg.EnvVar("OPENAI_API_KEY"), model="gpt-4o-mini"),
            }),
        )
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pydantic

from dagster_evals.engine.errors import ConfigError
from dagster_evals.judges.settings import JudgeSettings, endpoint_settings

DEFAULT_JUDGE_RESOURCE_KEY = "judge"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_bound: contextvars.ContextVar[JudgeSettings | None] = contextvars.ContextVar(
    "dagster_evals_bound_judge", default=None
)


def bound_settings() -> JudgeSettings | None:
    """The settings of the judge resource bound to the running eval, or None."""
    return _bound.get()


def judge_resource_keys(suite: Any) -> set[str]:
    """The resource keys the suite's eval step requires for its judges (`{judge_resource_key}` or none)."""
    key = getattr(suite, "judge_resource_key", None)
    if key is None:
        return set()
    if not isinstance(key, str) or not _IDENTIFIER.match(key):
        raise ConfigError(
            f"suite {getattr(suite, 'name', '?')!r}: judge_resource_key must be a Python identifier naming "
            f"a resource (e.g. 'judge'), got {key!r}"
        )
    return {key}


@contextlib.contextmanager
def bind_judge(context: Any, key: str | None) -> Iterator[None]:
    """Within the block, judges and prompt tasks without an explicit endpoint use the resource `key`."""
    if key is None:
        yield
        return
    resource = getattr(context.resources, key, None)
    if resource is None:
        raise ConfigError(f"no resource is bound under the judge resource key {key!r}")
    try:
        settings = endpoint_settings(resource)
    except ConfigError as exc:
        raise ConfigError(f"resource {key!r}: {exc}") from None
    token = _bound.set(settings)
    try:
        yield
    finally:
        _bound.reset(token)


def judge_resource_from_config(config: Mapping[str, Any], where: str = "judge_resource") -> Any:
    """An `OpenAIJudgeResource` from YAML fields (secrets as `"{{ env.OPENAI_API_KEY }}"`)."""
    from dagster_evals.judges.resource import OpenAIJudgeResource

    fields = OpenAIJudgeResource.model_fields
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; the judge resource has {', '.join(sorted(fields))}"
        )
    try:
        return OpenAIJudgeResource(**dict(config))
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None
