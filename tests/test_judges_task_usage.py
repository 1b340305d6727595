"""Tokens and cost of a user's own task (and scorer) that call an OpenAI-compatible API with the official
`openai` SDK, through `dg.materialize` against the fake OpenAI server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import openai
import pytest

from dagster_evals import EvalSuite, LocalResource, build_eval_suite_assets
from dagster_evals.engine.usage import metered_async_http_client, metered_http_client
from dagster_evals.testing.openai import OpenAIFake
from tests.conftest import materialization, write_jsonl

KEY = "sk-task-usage-key-424242"


@pytest.fixture
def base_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    fake = OpenAIFake(api_key=KEY)
    with fake.serve() as server:
        monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", f"sqlite:///{tmp_path / 'cache.sqlite'}")
        monkeypatch.delenv("DAGSTER_EVALS_MAX_COST_USD", raising=False)
        yield fake.base_url(server)


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "input": f"Say hello to user {i}", "expected": "hello"} for i in range(n)]


def run(suite: EvalSuite, instance: dg.DagsterInstance, db: Path) -> dict[str, Any]:
    result = dg.materialize(
        build_eval_suite_assets(suite), instance=instance, resources={"evals": LocalResource(path=str(db))}
    )
    metadata = materialization(result, suite.eval_report_key)
    # The per-scope usage (`tokens/<scope>/*`, `cost_usd/<scope>`, `model_calls/<scope>`) is in `details`.
    return {**metadata, **metadata["details"].get("usage", {})}


def test_sync_task_calling_the_openai_sdk_reports_task_tokens_and_cost(
    base_url: str, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, http_client=metered_http_client())

    def answer(input: str) -> str:  # sync: runs in the runner's worker threads
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": input}]
        )
        return reply.choices[0].message.content or ""

    def judged(output: str) -> float:  # a sync scorer calling the model: counted under its own name
        client.embeddings.create(model="text-embedding-3-small", input=output)
        return 1.0

    suite = EvalSuite(
        name="sync_usage",
        source=write_jsonl(tmp_path / "rows.jsonl", rows(4)),
        key_field="id",
        task=answer,
        scorers=[judged],
        baseline=None,
        max_concurrency=2,
    )
    meta = run(suite, instance, db_path)
    assert meta["rows_errored"] == 0
    assert meta["model_calls/task"] == 4
    assert meta["tokens/task/prompt"] > 0 and meta["tokens/task/completion"] > 0
    assert meta["tokens/task/total"] == meta["tokens/task/prompt"] + meta["tokens/task/completion"]
    assert meta["cost_usd/task"] > 0  # gpt-4o-mini is in the genai-prices table
    assert meta["model_calls/judged"] == 4 and meta["tokens/judged/prompt"] > 0
    assert meta["model_calls"] == 8
    assert meta["cost_usd"] == pytest.approx(meta["cost_usd/task"] + meta["cost_usd/judged"])


def test_async_task_with_the_async_sdk_is_metered_the_same_way(
    base_url: str, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    async def answer(input: str) -> str:
        # One client per call: an httpx.AsyncClient is bound to the event loop that first uses it.
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key=KEY, http_client=metered_async_http_client()
        ) as client:
            reply = await client.responses.create(model="gpt-4o-mini", input=input)
        return reply.output_text

    suite = EvalSuite(
        name="async_usage",
        source=write_jsonl(tmp_path / "rows.jsonl", rows(3)),
        key_field="id",
        task=answer,
        scorers=["levenshtein"],
        baseline=None,
    )
    meta = run(suite, instance, db_path)
    assert meta["model_calls/task"] == 3 and meta["tokens/task/prompt"] > 0
    assert meta["cost_usd/task"] > 0


def test_record_answer_meters_an_sdk_answer_by_hand(
    base_url: str, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    from dagster_evals.engine.usage import record_answer

    client = openai.OpenAI(base_url=base_url, api_key=KEY)  # a client the package does not wrap

    def answer(input: str) -> str:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": input}]
        )
        record_answer(reply)
        return reply.choices[0].message.content or ""

    suite = EvalSuite(
        name="by_hand",
        source=write_jsonl(tmp_path / "rows.jsonl", rows(2)),
        key_field="id",
        task=answer,
        scorers=["levenshtein"],
        baseline=None,
    )
    meta = run(suite, instance, db_path)
    assert meta["model_calls/task"] == 2 and meta["tokens/task/completion"] > 0 and meta["cost_usd/task"] > 0


def test_a_task_in_its_own_process_reports_its_tokens_and_cost(
    base_url: str, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    def answer(input: str) -> str:  # runs in a worker process (isolation="process")
        with openai.OpenAI(base_url=base_url, api_key=KEY, http_client=metered_http_client()) as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": input}]
            )
        return reply.choices[0].message.content or ""

    suite = EvalSuite(
        name="isolated",
        source=write_jsonl(tmp_path / "rows.jsonl", rows(3)),
        key_field="id",
        task=answer,
        scorers=["levenshtein"],
        baseline=None,
        isolation="process",
    )
    meta = run(suite, instance, db_path)
    assert meta["model_calls/task"] == 3 and meta["tokens/task/prompt"] > 0 and meta["cost_usd/task"] > 0
