"""A cost budget that a model missing from the price table cannot switch off: through `dg.materialize`,
against the fake OpenAI server answering with a model name genai-prices does not know."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from dagster_evals import ConfigError, OpenAIJudgeResource, judge
from dagster_evals.testing.openai import OpenAIFake
from tests.conftest import materialization, write_jsonl
from tests.test_judges import KEY, fake, rows, run, suite

__all__ = ["fake"]  # the fixture, shared with tests/test_judges.py

UNKNOWN_MODEL = "acme-judge-7b-2031"  # answered back by the fake; not in the genai-prices table


def endpoint(server_url: str, **options: float) -> OpenAIJudgeResource:
    return OpenAIJudgeResource(api_key=KEY, base_url=server_url, model=UNKNOWN_MODEL, **options)


def test_with_a_budget_an_unpriced_call_stops_the_run(
    fake: OpenAIFake, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    url = os.environ["OPENAI_BASE_URL"]
    s = suite(
        write_jsonl(tmp_path / "rows.jsonl", rows(8)),
        scorers=[judge("factuality", endpoint=endpoint(url, max_cost_usd=1e-6))],
        max_concurrency=1,
    )
    result = run(s, instance, db_path, raise_on_error=False)
    meta = materialization(result, s.eval_report_key)
    assert fake.requests["POST /v1/chat/completions"] == 1  # not 8 calls metered as free
    assert fake.bodies[0]["model"] == UNKNOWN_MODEL
    assert meta["details"]["usage"]["rows_not_run"] == 7 and meta["rows_scored"] == 1
    assert meta["details"]["usage"]["model_calls_unpriced"] == 1 and meta["cost_usd"] == 0.0
    assert f"a call to model '{UNKNOWN_MODEL}' could not be priced" in meta["budget_stop"]
    assert "set price_per_million_input_usd and price_per_million_output_usd" in meta["budget_stop"]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["completeness"] is False


def test_without_a_budget_unpriced_calls_run_and_are_counted(
    fake: OpenAIFake, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    s = suite(
        write_jsonl(tmp_path / "rows.jsonl", rows(4)),
        scorers=[judge("factuality", endpoint=endpoint(os.environ["OPENAI_BASE_URL"]))],
    )
    meta = materialization(run(s, instance, db_path, raise_on_error=False), s.eval_report_key)
    assert meta["model_calls"] == 4 and meta["details"]["usage"]["model_calls_unpriced"] == 4
    assert meta["details"]["usage"]["rows_not_run"] == 0 and meta["cost_usd"] == 0.0


def test_a_price_override_meters_the_unknown_model_against_the_budget(
    fake: OpenAIFake, tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    # $1,000 per million tokens: each judge call (a few hundred tokens) costs well over $0.01.
    priced = endpoint(
        os.environ["OPENAI_BASE_URL"],
        max_cost_usd=0.01,
        price_per_million_input_usd=1000.0,
        price_per_million_output_usd=1000.0,
    )
    s = suite(
        write_jsonl(tmp_path / "rows.jsonl", rows(8)),
        scorers=[judge("factuality", endpoint=priced)],
        max_concurrency=1,
    )
    meta = materialization(run(s, instance, db_path, raise_on_error=False), s.eval_report_key)
    assert fake.requests["POST /v1/chat/completions"] == 1
    assert meta["details"]["usage"]["model_calls_unpriced"] == 0
    tokens = meta["details"]["usage"]["tokens/prompt"] + meta["details"]["usage"]["tokens/completion"]
    assert meta["cost_usd"] == pytest.approx(tokens * 1000.0 / 1e6)
    assert "max_cost_usd=0.01 was reached" in meta["budget_stop"]


@pytest.mark.parametrize(
    "prices",
    [
        {"price_per_million_input_usd": 1.0},
        {"price_per_million_input_usd": -1.0, "price_per_million_output_usd": 1.0},
        {"price_per_million_input_usd": float("nan"), "price_per_million_output_usd": 1.0},
    ],
)
def test_a_half_or_negative_price_override_is_refused(prices: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="price_per_million_input_usd and price_per_million_output_usd"):
        OpenAIJudgeResource(api_key=KEY, **prices)


def test_the_moved_usage_report_names_still_import_with_a_warning() -> None:
    from dagster_evals.engine import usage, usage_report

    with pytest.warns(DeprecationWarning, match=r"import dagster_evals\.engine\.usage_report\.UsageTotals"):
        assert usage.UsageTotals is usage_report.UsageTotals
    with pytest.warns(
        DeprecationWarning, match=r"import dagster_evals\.engine\.usage_report\.usage_metadata"
    ):
        assert usage.usage_metadata is usage_report.usage_metadata
