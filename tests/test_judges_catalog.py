"""Every LLM judge by name, rubric judges, the judge endpoint's retries and limits, and the judge cache —
against the fake OpenAI server over real HTTP."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dagster_evals import (
    ConfigError,
    OpenAIJudgeResource,
    judge,
    rubric_judge,
    rubric_judges_from_yaml,
)
from dagster_evals.engine import usage
from dagster_evals.engine.scorers import resolve_scorer
from dagster_evals.judges.cache import JudgeCache
from dagster_evals.judges.catalog import CATALOG, JUDGE_NAMES
from dagster_evals.testing.openai import OpenAIFake, ToolCall

KEY = "sk-catalog-key-0001"
ROW = {
    "input": "What is the capital of France?",
    "output": "Paris is the capital of France.",
    "expected": "Paris",
    "metadata": {
        "context": ["Paris is the capital of France."],
        "criteria": "Is it correct?",
        "language": "French",
    },
}
ENDPOINTS = {
    "classifier": {"POST /v1/chat/completions"},
    "ragas": {"POST /v1/chat/completions"},
    "embedding": {"POST /v1/embeddings"},
    "moderation": {"POST /v1/moderations"},
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIFake]:
    fake = OpenAIFake(api_key=KEY)
    with fake.serve() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url(server))
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", f"sqlite:///{tmp_path / 'cache.sqlite'}")
        yield fake


def score(scorer, row=ROW):
    return scorer.score(row["input"], row["output"], row["expected"], row["metadata"])


def test_catalog_names_every_autoevals_llm_scorer() -> None:
    assert set(JUDGE_NAMES) == {
        "factuality", "closed_qa", "battle", "humor", "possible", "security", "sql", "summary", "translation",
        "context_recall", "context_precision", "context_relevancy", "context_entity_recall", "faithfulness",
        "answer_relevancy", "answer_similarity", "answer_correctness", "embedding_similarity", "moderation",
    }  # fmt: skip
    for spec in CATALOG.values():
        assert spec.load().__name__ == spec.cls


@pytest.mark.parametrize("name", [n for n in JUDGE_NAMES if n != "context_entity_recall"])
def test_every_judge_by_name_scores_through_the_endpoint(fake: OpenAIFake, name: str) -> None:
    value = score(resolve_scorer(name))
    assert value is not None and 0.0 <= value <= 1.0
    kind = CATALOG[name].kind
    assert set(fake.requests) >= ENDPOINTS[kind]
    if kind == "classifier":
        # The judge's request forces autoevals' select_choice tool on the configured model.
        body = fake.bodies[-1]
        assert body["model"] == "gpt-4o-mini"
        assert body["tool_choice"] == {"type": "function", "function": {"name": "select_choice"}}


def test_judge_without_its_optional_dependency_says_what_to_install(fake: OpenAIFake) -> None:
    import importlib.util

    if importlib.util.find_spec("scipy") is not None:
        pytest.skip("scipy is installed")
    with pytest.raises(ConfigError, match=r"autoevals\[scipy\]"):
        score(resolve_scorer("context_entity_recall"))


def test_factuality_choice_maps_to_its_score(fake: OpenAIFake) -> None:
    fake.add_rule(
        contains="[Expert]: Paris", reply=ToolCall("select_choice", {"reasons": "r", "choice": "B"})
    )
    assert score(resolve_scorer("factuality")) == pytest.approx(0.6)


def test_row_arguments_follow_fields_and_options(fake: OpenAIFake) -> None:
    row = {
        "input": {"question": "Capital of Spain?", "docs": ["Madrid is the capital of Spain."]},
        "output": "Madrid",
        "expected": "Madrid",
        "metadata": {},
    }
    s = judge("faithfulness", fields={"input": "input.question", "context": "input.docs"})
    assert score(s, row) is not None
    prompts = " ".join(str(m["content"]) for b in fake.bodies for m in b["messages"])
    assert "Capital of Spain?" in prompts and "Madrid is the capital of Spain." in prompts
    qa = judge("closed_qa", options={"criteria": "Does it name a city?"})
    score(qa, row)
    assert "Does it name a city?" in fake.bodies[-1]["messages"][0]["content"]
    # A dict input without a field mapping reaches the judge as compact JSON text.
    score(resolve_scorer("factuality"), row)
    assert (
        '[Question]: {"docs":["Madrid is the capital of Spain."],"question":"Capital of Spain?"}'
        in (fake.bodies[-1]["messages"][0]["content"])
    )


def test_missing_context_names_the_row_fields(fake: OpenAIFake) -> None:
    row = {**ROW, "metadata": {}}
    with pytest.raises(
        ValueError, match=r"needs 'context', but the row has no metadata.context or input.context"
    ):
        score(resolve_scorer("faithfulness"), row)
    assert fake.model_calls == 0
    with pytest.raises(ConfigError, match="must start with input, output, expected or metadata"):
        judge("faithfulness", fields={"context": "docs"})
    with pytest.raises(ConfigError, match="unknown LLM judge 'factual'"):
        judge("factual")


def test_rubric_judges_in_python_and_yaml(fake: OpenAIFake, tmp_path: Path) -> None:
    fake.add_rule(contains="polite", reply=ToolCall("select_choice", {"reasons": "kind", "choice": "a"}))
    polite = rubric_judge(
        "politeness", "Is this polite? {{output}}\na) polite\nb) rude", {"a": 1.0, "b": 0.0}
    )
    assert polite.name == "politeness" and score(polite) == 1.0
    assert "Is this polite? Paris is the capital of France." in fake.bodies[-1]["messages"][0]["content"]
    spec = tmp_path / "judges.yaml"
    spec.write_text(
        "judges:\n"
        "  - name: brevity\n"
        "    prompt: 'Is this short? {{output}} (expected {{expected}})'\n"
        "    choice_scores: {y: 1, n: 0}\n"
        "    use_cot: false\n"
        "    model: gpt-4o\n",
        encoding="utf-8",
    )
    (brevity,) = rubric_judges_from_yaml(spec)
    assert score(brevity) == 1.0  # schema default: the first choice
    assert fake.bodies[-1]["model"] == "gpt-4o"
    bad = tmp_path / "bad.yaml"
    bad.write_text("judges:\n  - name: x\n    prompt: p\n    choice_scores: {a: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: judges\[0\]: .*choice_scores\['a'\] = 2"):
        rubric_judges_from_yaml(bad)
    bad.write_text("judges:\n  - name: x\n    promt: p\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) promt"):
        rubric_judges_from_yaml(bad)
    bad.write_text("judges: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        rubric_judges_from_yaml(bad)


def test_resource_with_envvar_key_and_own_model(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GATEWAY_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-this-one")
    endpoint = OpenAIJudgeResource(api_key=dg.EnvVar("MY_GATEWAY_KEY"), model="gpt-4o", cache=False)
    s = judge("humor", endpoint=endpoint)
    score(s)
    score(s)
    assert fake.requests["POST /v1/chat/completions"] == 2 and fake.bodies[-1]["model"] == "gpt-4o"
    settings = endpoint.settings()
    assert KEY not in repr(settings) and settings.api_key_env == "MY_GATEWAY_KEY"
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-bad-gateway-key")
    with pytest.raises(Exception, match="set the MY_GATEWAY_KEY environment variable") as info:
        score(judge("security", endpoint=endpoint))
    assert "sk-bad-gateway-key" not in str(info.value)


def test_429_with_retry_after_is_retried_and_5xx_too(fake: OpenAIFake) -> None:
    fake.fail_next(2, retry_after=0)
    fake.fail_next(1, status=503)
    endpoint = OpenAIJudgeResource(cache=False, max_retries=3)
    assert score(judge("humor", endpoint=endpoint)) is not None
    assert fake.requests["POST /v1/chat/completions"] == 1  # the answered call; 3 refused before it
    fake.fail_next(3, retry_after=0)
    with pytest.raises(Exception, match=r"HTTP 429.*rate limited") as info:
        score(judge("humor", endpoint=OpenAIJudgeResource(cache=False, max_retries=2)))
    assert KEY not in str(info.value)


def test_concurrency_limit_holds_and_usage_is_per_scope(fake: OpenAIFake) -> None:
    fake.latency_s = 0.05
    s = judge("humor", endpoint=OpenAIJudgeResource(cache=False, max_concurrency=3))

    async def many() -> usage.RowUsage:
        with usage.row_scope() as spent:
            await asyncio.gather(*(s.score_async(f"q{i}", f"a{i}", None, {}) for i in range(12)))
        return spent

    spent = asyncio.run(many())
    assert fake.requests["POST /v1/chat/completions"] == 12
    assert 1 <= fake.peak_in_flight <= 3
    humor = spent.scopes["humor"]
    assert humor.calls == 12 and humor.total_tokens == humor.prompt_tokens + humor.completion_tokens > 0
    assert humor.cost_usd > 0 and len(humor.latencies_s) == 12


def _put_many(url: str, start: int) -> None:
    cache = JudgeCache(url)
    for i in range(200):
        cache.put(f"key-{(start + i) % 250}", "s", "m", i / 200, {"i": i})


def test_cache_is_safe_with_several_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    JudgeCache(url)  # create the table once
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_put_many, args=(url, start)) for start in (0, 50, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    cache = JudgeCache(url)
    assert cache.count() == 250
    assert cache.get("key-3") is not None and cache.get("absent") is None


def test_resource_repr_and_the_config_dagster_shows_hide_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GATEWAY_KEY", KEY)
    for resource in (
        OpenAIJudgeResource(api_key=KEY),
        OpenAIJudgeResource(api_key=dg.EnvVar("MY_GATEWAY_KEY")),
    ):
        assert KEY not in repr(resource) and KEY not in str(resource)
        assert "api_key='***'" in repr(resource)
        settings = resource.settings()
        assert settings.api_key == KEY and KEY not in repr(settings)
    with dg.build_resources({"judge": OpenAIJudgeResource(api_key=dg.EnvVar("MY_GATEWAY_KEY"))}) as built:
        assert built.judge.settings().api_key == KEY and KEY not in repr(built.judge)
