"""`prompt_task()`: the prompt version under evaluation runs on the endpoint, through `dg.materialize`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import ConfigError, EvalSuite, LocalEvalResource, PromptVersion, build_eval_suite_assets
from dagster_evals.judges.prompt_tasks import parse_prompt, prompt_task, render
from dagster_evals.testing.openai import OpenAIFake, ToolCall
from tests.conftest import materialization, write_jsonl

KEY = "sk-prompt-task-key"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIFake]:
    fake = OpenAIFake(api_key=KEY)
    with fake.serve() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url(server))
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", f"sqlite:///{tmp_path / 'cache.sqlite'}")
        yield fake


def run_task(task: Any, input: Any, prompt: PromptVersion | None, expected: Any = None) -> Any:
    return asyncio.run(task(input=input, expected=expected, metadata={"tone": "calm"}, prompt=prompt))


def version(content: dict[str, Any], platform: str = "local") -> PromptVersion:
    return PromptVersion(
        platform=platform, project=None, prompt_id="p1", slug="bot", version="3", content=content
    )


def test_render_is_mustache_without_html_escaping_and_json_for_objects() -> None:
    assert render("Q: {{question}} <{{input.n}}> {{input}}", {"question": "a & b", "input": {"n": 1}}) == (
        'Q: a & b <1> {"n":1}'
    )


def test_braintrust_prompt_data_with_tools(fake: OpenAIFake) -> None:
    fake.add_rule(contains="refund", reply=ToolCall("lookup_order", {"order_id": "A1"}))
    content = {
        "prompt": {
            "type": "chat",
            "messages": [
                {"role": "system", "content": "Be {{metadata.tone}}."},
                {"role": "user", "content": "{{question}}"},
            ],
            "tools": '[{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]',
        },
        "options": {"model": "gpt-4o", "params": {"temperature": 0, "use_cache": True}},
    }
    out = run_task(prompt_task(), {"question": "I want a refund"}, version(content, "braintrust"))
    assert out == {"content": None, "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A1"}}]}
    body = fake.bodies[-1]
    assert body["model"] == "gpt-4o" and body["temperature"] == 0 and "use_cache" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be calm."},
        {"role": "user", "content": "I want a refund"},
    ]
    assert body["tools"][0]["function"]["name"] == "lookup_order"


def test_keywordsai_style_prompt_with_json_output(fake: OpenAIFake) -> None:
    content = {
        "messages": [{"role": "user", "content": "Answer {{question}} as json"}],
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "response_format": {"type": "json_object"},
        "variables": {"question": "string"},
    }
    out = run_task(prompt_task(), {"question": "2+2?"}, version(content, "keywordsai"))
    assert out == {"text": "Answer 2+2? as json"}
    assert fake.bodies[-1]["response_format"] == {"type": "json_object"}


def test_no_prompt_is_a_clear_error_unless_a_default_is_given(fake: OpenAIFake) -> None:
    with pytest.raises(ConfigError, match="prompt_task has no prompt to run"):
        run_task(prompt_task(), "hi", None)
    task = prompt_task(default={"messages": [{"role": "user", "content": "Echo {{input}}"}]}, model="gpt-4o")
    assert run_task(task, "hi", None) == "fake reply: Echo hi"
    assert fake.bodies[-1]["model"] == "gpt-4o"
    with pytest.raises(ConfigError, match="has no messages"):
        parse_prompt({"model": "x"}, "prompt bot@1")


def test_prompt_version_partition_runs_the_prompt_and_reports_task_tokens(
    fake: OpenAIFake, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    fake.add_rule(contains="Reply with the number", reply="4")
    resource = LocalEvalResource(path=str(db_path))
    pushed = resource.get_platform().push_prompt_version(
        "adder", {"messages": [{"role": "user", "content": "Reply with the number {{a}} + {{b}}"}]}
    )
    versions = dg.DynamicPartitionsDefinition(name="adder_versions")
    instance.add_dynamic_partitions("adder_versions", [pushed.partition_key])
    rows = [{"id": f"r{i}", "input": {"a": 2, "b": i}, "expected": str(2 + i)} for i in range(3)]
    suite = EvalSuite(
        name="adder_prompts",
        source=write_jsonl(tmp_path / "rows.jsonl", rows),
        key_field="id",
        task=prompt_task(),
        scorers=["exact_match"],
        partitions_def=versions,
        baseline=None,
    )
    assets = build_eval_suite_assets(suite)
    dg.materialize(assets[:2], instance=instance, resources={"evals": resource})
    result = dg.materialize(
        assets[2:],
        instance=instance,
        resources={"evals": resource},
        partition_key=pushed.partition_key,
        raise_on_error=False,
    )
    meta = materialization(result, suite.eval_report_key)
    assert meta["prompt_version"] == pushed.version
    assert meta["score/exact_match"] == pytest.approx(1 / 3, abs=5e-5)  # only 2 + 2 answers "4"
    assert (
        meta["details"]["usage"]["model_calls/task"] == 3
        and meta["details"]["usage"]["tokens/task/total"] > 0
    )
    sent = sorted(b["messages"][0]["content"] for b in fake.bodies)
    assert sent == [f"Reply with the number 2 + {i}" for i in range(3)]
