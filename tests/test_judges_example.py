"""The example's LLM suite runs offline: prompt task and judges against the scripted fake, no key set."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dagster as dg
import pytest

from dagster_evals import LocalEvalResource
from tests.conftest import REPO, materialization


def load_definitions(monkeypatch: pytest.MonkeyPatch, db: Path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    # One database for the eval backend and the judge cache, as in a deployment: the example's
    # `LocalResource()` and the judge cache both read $DAGSTER_EVALS_DATABASE_URL (which wins over the
    # deprecated $DAGSTER_EVALS_LOCAL_DB), so the prompt version pushed below is the one the run sees.
    monkeypatch.delenv("DAGSTER_EVALS_LOCAL_DB", raising=False)
    monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", f"sqlite:///{db}")
    spec = importlib.util.spec_from_file_location("example_definitions_llm", REPO / "definitions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "example_definitions_llm", module)
    spec.loader.exec_module(module)
    return module


def test_llm_suite_evaluates_a_pushed_prompt_version_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    db = tmp_path / "evals.sqlite"
    module = load_definitions(monkeypatch, db)
    from example.llm_endpoint import STARTER_PROMPT, OfflineEndpoint

    assert isinstance(module.llm_endpoint, OfflineEndpoint)
    version = (
        LocalEvalResource(path=str(db))
        .get_platform()
        .push_prompt_version("support_bot_answer", STARTER_PROMPT)
    )
    instance.add_dynamic_partitions("support_bot_llm_prompts", [version.partition_key])
    job = module.defs.resolve_job_def("support_bot_llm_eval_job")
    result = job.execute_in_process(
        instance=instance, partition_key=version.partition_key, raise_on_error=False
    )
    meta = materialization(result, module.llm_suite.eval_report_key)
    assert meta["prompt_version"] == version.version
    assert meta["rows_scored"] == 36 and meta["rows_errored"] == 0
    # The fake answers like the support bot, so factuality mirrors exact match with the expected answers.
    assert 0.6 <= meta["score/factuality"] <= 1.0
    assert meta["score/on_topic"] == 1.0
    usage = meta["details"]["usage"]
    assert usage["model_calls/task"] == 36 and usage["model_calls/factuality"] == 36
    assert usage["tokens/task/total"] > 0 and usage["tokens/factuality/total"] > 0 and meta["cost_usd"] > 0
    assert result.success
