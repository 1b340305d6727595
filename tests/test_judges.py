"""LLM judges by name through `dg.materialize`, against the fake OpenAI server over real HTTP.

Only OPENAI_BASE_URL / OPENAI_API_KEY point the judges at the fake; judge calls are counted on the
fake's side.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import EvalSuite, LocalEvalResource, build_eval_suite_assets
from dagster_evals.testing.openai import OpenAIFake, ToolCall
from tests.conftest import materialization, write_jsonl

KEY = "sk-judge-test-key-123456"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OpenAIFake]:
    fake = OpenAIFake(api_key=KEY)
    # Factuality: an expert answer of "4" → (C) same details, anything else → (D) disagreement.
    fake.add_rule(
        contains="[Expert]: 4\n", reply=ToolCall("select_choice", {"reasons": "same", "choice": "C"})
    )
    fake.add_rule(
        contains="[Expert]:", reply=ToolCall("select_choice", {"reasons": "differs", "choice": "D"})
    )
    with fake.serve() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url(server))
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", f"sqlite:///{tmp_path / 'judge_cache.sqlite'}")
        monkeypatch.delenv("DAGSTER_EVALS_MAX_COST_USD", raising=False)
        yield fake


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "input": f"What is 2 + {i}?", "expected": str(2 + i)} for i in range(n)]


def answer(input: str) -> str:
    return "4"


def suite(source: Path, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "name": "judged",
        "source": source,
        "key_field": "id",
        "task": answer,
        "scorers": ["factuality"],
        "max_concurrency": 4,
        "baseline": None,
    }
    options.update(overrides)
    return EvalSuite(**options)


def run(s: EvalSuite, instance: dg.DagsterInstance, db: Path, **kwargs: Any) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_eval_suite_assets(s),
        instance=instance,
        resources={"evals": LocalEvalResource(path=str(db))},
        **kwargs,
    )


def test_factuality_by_name_scores_and_reports_tokens_then_rerun_is_served_from_cache(
    fake: OpenAIFake, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    s = suite(write_jsonl(tmp_path / "rows.jsonl", rows(5)))
    first = materialization(run(s, instance, db_path, raise_on_error=False), s.eval_report_key)
    # Row r2 expects "4" (C → 1.0); the other four disagree (D → 0.0).
    assert first["score/factuality"] == pytest.approx(0.2)
    assert fake.requests["POST /v1/chat/completions"] == 5
    usage = first["details"]["usage"]
    assert first["model_calls"] == usage["model_calls/factuality"] == 5
    assert usage["tokens/factuality/prompt"] > 0 and usage["tokens/factuality/completion"] > 0
    assert first["tokens_total"] == usage["tokens/prompt"] + usage["tokens/completion"]
    assert first["cost_usd"] > 0  # gpt-4o-mini is in the genai-prices table
    assert usage["judge/latency_p95_ms"] >= usage["judge/latency_p50_ms"] > 0
    assert usage["judge/cache_hits"] == 0
    # The judge saw the row's question, the expert answer and the task's output.
    prompt = fake.bodies[0]["messages"][0]["content"]
    assert "[Question]: What is 2 + " in prompt and "[Submission]: 4" in prompt

    second = materialization(run(s, instance, db_path, raise_on_error=False), s.eval_report_key)
    assert fake.requests["POST /v1/chat/completions"] == 5  # no judge call on the re-run
    assert second["score/factuality"] == pytest.approx(0.2)
    assert second["details"]["usage"]["judge/cache_hits"] == 5 and second["model_calls"] == 0


def test_cache_can_be_disabled(fake: OpenAIFake, tmp_path: Path, instance, db_path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_EVALS_JUDGE_CACHE", "0")
    s = suite(write_jsonl(tmp_path / "rows.jsonl", rows(3)))
    run(s, instance, db_path, raise_on_error=False)
    run(s, instance, db_path, raise_on_error=False)
    assert fake.requests["POST /v1/chat/completions"] == 6


def test_budget_stops_the_run_and_records_rows_as_not_run(
    fake: OpenAIFake, tmp_path: Path, instance, db_path
) -> None:
    from dagster_evals import judge

    # One row at a time: the first judge call spends more than the budget, so rows 2..6 are not run.
    s = suite(
        write_jsonl(tmp_path / "rows.jsonl", rows(6)),
        scorers=[judge("factuality", max_cost_usd=1e-9)],
        max_concurrency=1,
    )
    result = run(s, instance, db_path, raise_on_error=False)
    meta = materialization(result, s.eval_report_key)
    assert fake.requests["POST /v1/chat/completions"] == 1
    assert meta["details"]["usage"]["rows_not_run"] == 5 and meta["rows_scored"] == 1
    assert "max_cost_usd=1e-09 was reached" in meta["budget_stop"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["completeness"].passed is False


def test_auth_error_names_the_env_var_and_hides_the_key(
    fake: OpenAIFake, tmp_path: Path, instance, db_path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-abcdef")
    s = suite(write_jsonl(tmp_path / "rows.jsonl", rows(1)))
    result = run(s, instance, db_path, raise_on_error=False)
    meta = materialization(result, s.eval_report_key)
    assert meta["details"]["scorer_errors"] == 1
    from dagster_evals.backends.local.platform import LocalPlatform

    (row,) = LocalPlatform(str(db_path)).iter_report_rows(str(meta["report_id"]))
    error = row.scorer_errors["factuality"]
    assert "HTTP 401" in error and "set the OPENAI_API_KEY environment variable" in error
    assert "/v1/chat/completions" in error
    assert "sk-wrong-key-abcdef" not in error + repr(meta)
