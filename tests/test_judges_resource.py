"""The judge endpoint bound by a Dagster resource key, through `dg.materialize` and a YAML component.

The fake OpenAI server accepts only the resource's key; the `OPENAI_*` environment points at a second fake
with another key, which must receive no call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from dagster_evals import (
    ConfigError,
    EvalSuite,
    EvalSuiteComponent,
    JudgeResource,
    LocalResource,
    build_eval_suite_assets,
    judge,
    prompt_task,
)
from dagster_evals.testing.openai import OpenAIFake, ToolCall
from tests.conftest import materialization, write_jsonl

KEY = "sk-resource-bound-key-98765"
ENV_KEY = "sk-env-key-that-the-fake-refuses"
MODEL = "gpt-4.1-mini"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[OpenAIFake, str]]:
    fake = OpenAIFake(api_key=KEY)
    fake.add_rule(contains="[Expert]: 4\n", reply=ToolCall("select_choice", {"reasons": "ok", "choice": "C"}))
    fake.add_rule(contains="[Expert]:", reply=ToolCall("select_choice", {"reasons": "no", "choice": "D"}))
    other = OpenAIFake(api_key=ENV_KEY)  # where the environment points: must receive nothing
    with fake.serve() as server, other.serve() as other_server:
        monkeypatch.setenv("OPENAI_BASE_URL", other.base_url(other_server))
        monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
        monkeypatch.setenv("JUDGE_TEST_KEY", KEY)
        monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", f"sqlite:///{tmp_path / 'judge_cache.sqlite'}")
        monkeypatch.delenv("DAGSTER_EVALS_MAX_COST_USD", raising=False)
        yield fake, fake.base_url(server)
        assert other.model_calls == 0


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "input": f"What is 2 + {i}?", "expected": str(2 + i)} for i in range(n)]


def answer(input: str) -> str:
    return "4"


def test_suite_judges_and_prompt_task_call_the_resource_bound_under_judge(
    fake: tuple[OpenAIFake, str], tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    server, base_url = fake
    suite = EvalSuite(
        name="bound",
        source=write_jsonl(tmp_path / "rows.jsonl", rows(3)),
        key_field="id",
        task=prompt_task(default={"messages": [{"role": "user", "content": "Answer: {{input}}"}]}),
        scorers=["factuality"],
        baseline=None,
        judge_resource_key="judge",
    )
    resources = {
        "evals": LocalResource(path=str(db_path)),
        "judge": JudgeResource(api_key=dg.EnvVar("JUDGE_TEST_KEY"), base_url=base_url, model=MODEL),
    }
    result = dg.materialize(
        build_eval_suite_assets(suite), instance=instance, resources=resources, raise_on_error=False
    )
    assert result.success
    meta = materialization(result, suite.eval_report_key)
    # 3 prompt-task calls and 3 judge calls, all on the resource's endpoint, key and model.
    assert server.requests["POST /v1/chat/completions"] == 6
    assert {body["model"] for body in server.bodies} == {MODEL}
    usage = meta["details"]["usage"]
    assert usage["model_calls/task"] == 3 and usage["model_calls/factuality"] == 3
    assert meta["details"]["scorer_errors"] == 0 and usage["tokens/factuality/total"] > 0
    # The key is nowhere in the run's event log (logs, metadata), its stored config, or the resource's repr.
    logged = "".join(repr(entry) for entry in instance.all_logs(result.run_id))
    assert logged and KEY not in logged and KEY not in repr(meta)
    assert KEY not in repr(instance.get_run_by_id(result.run_id))
    assert KEY not in repr(resources["judge"])


def test_an_explicit_endpoint_wins_over_the_bound_resource(
    fake: tuple[OpenAIFake, str], tmp_path: Path, instance: dg.DagsterInstance, db_path: Path
) -> None:
    server, base_url = fake
    own = JudgeResource(api_key=dg.EnvVar("JUDGE_TEST_KEY"), base_url=base_url, model="gpt-4o")
    suite = EvalSuite(
        name="explicit",
        source=write_jsonl(tmp_path / "rows.jsonl", rows(3)),
        key_field="id",
        task=answer,
        scorers=[judge("factuality", endpoint=own)],
        baseline=None,
        judge_resource_key="judge",
    )
    bound = JudgeResource(api_key=dg.EnvVar("JUDGE_TEST_KEY"), base_url=base_url, model=MODEL)
    result = dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": LocalResource(path=str(db_path)), "judge": bound},
    )
    assert materialization(result, suite.eval_report_key)["score/factuality"] == pytest.approx(
        1 / 3, abs=5e-5
    )
    assert {body["model"] for body in server.bodies} == {"gpt-4o"}


def test_a_suite_naming_a_judge_resource_requires_it_and_checks_the_key() -> None:
    suite = EvalSuite(
        name="needs_judge",
        source="rows.jsonl",
        task=answer,
        scorers=["factuality"],
        judge_resource_key="judge",
    )
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="judge"):
        dg.Definitions(
            assets=build_eval_suite_assets(suite), resources={"evals": LocalResource()}
        ).resolve_all_job_defs()
    bad = EvalSuite(
        name="bad_key",
        source="rows.jsonl",
        task=answer,
        scorers=["factuality"],
        judge_resource_key="my-judge",
    )
    with pytest.raises(ConfigError, match="judge_resource_key must be a Python identifier"):
        build_eval_suite_assets(bad)


def test_yaml_judge_resource_is_bound_under_judge_and_reads_the_key_at_run_time(
    fake: tuple[OpenAIFake, str], tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    server, base_url = fake
    attributes = {
        "name": "yaml_judged",
        "source": "rows.jsonl",
        "key_field": "id",
        "task": "tests.test_judges_resource:answer",
        "scorers": ["factuality"],
        "baseline": None,
        "resource": {"type": "local", "config": {"path": str(tmp_path / "e.sqlite")}},
        "judge_resource": {"api_key_env": "JUDGE_TEST_KEY", "base_url": base_url, "model": MODEL},
    }
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            component_cls=EvalSuiteComponent,
            defs_yaml_contents={"type": "dagster_evals.EvalSuiteComponent", "attributes": attributes},
        )
        write_jsonl(Path(path) / "rows.jsonl", rows(2))
        with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
            assert KEY not in repr(defs.resources)
            result = defs.resolve_job_def("yaml_judged_eval_job").execute_in_process(instance=instance)
    assert result.success
    assert server.requests["POST /v1/chat/completions"] == 2
    assert {body["model"] for body in server.bodies} == {MODEL}


def test_yaml_judge_resource_errors_name_the_field() -> None:
    from dagster_evals.judges.binding import judge_resource_from_config

    with pytest.raises(
        ConfigError, match=r"judge_resource: unknown field\(s\) modle; the judge resource has"
    ):
        judge_resource_from_config({"modle": "gpt-4o"})
    with pytest.raises(ConfigError, match="judge_resource: max_concurrency: Input should be a valid integer"):
        judge_resource_from_config({"max_concurrency": "many"})
