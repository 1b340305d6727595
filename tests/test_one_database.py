"""One setting names one database: a sharded suite with an LLM judge, configured only by the database named on
its resource, keeps its plan, row checkpoints and judge cache there (PostgreSQL), and writes no SQLite file of
its own; on the Braintrust and Keywords AI fakes `state_database_url` does the same; a run whose steps may
run on other hosts refuses a SQLite state database with one error naming the setting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from dagster_evals import BraintrustResource, EvalSuite, LocalResource, build_eval_suite_definitions
from dagster_evals.engine.embedded_db import RETRY_ENV
from dagster_evals.engine.errors import ConfigError
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.openai import OpenAIFake, ToolCall
from tests.conftest import (
    add_task,
    keywordsai_fake,
    keywordsai_resource,
    materialization,
    materialize_suite,
    qa_rows,
    write_jsonl,
)

OPENAI_KEY = "sk-one-database-test-123456"
BRAINTRUST_KEY = "bt-one-database-key"
ROWS = 12
SQLITE_HEADER = b"SQLite format 3\x00"


@pytest.fixture
def judge_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIFake]:
    """The OpenAI fake, answering every factuality question "(C) same details"."""
    fake = OpenAIFake(api_key=OPENAI_KEY)
    fake.add_rule(contains="[Expert]:", reply=ToolCall("select_choice", {"reasons": "same", "choice": "C"}))
    with fake.serve() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url(server))
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        yield fake


@pytest.fixture
def places(tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """`$DAGSTER_HOME` (the instance's directory) and a fresh working directory, where a default state
    database would be written."""
    home = Path(instance.root_directory)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return [home, work]


def sharded_judge_suite(source: Path) -> EvalSuite:
    return EvalSuite(
        name="arith",
        source=source,
        key_field="id",
        task=add_task,
        scorers=["exact_match", "factuality"],
        thresholds={"exact_match": 0.5},
        baseline=None,
        shards=2,
    )


def sqlite_files(places: list[Path]) -> list[Path]:
    """Every SQLite database file under `places` that is not one of the Dagster instance's own (`*.db`)."""
    found = []
    for place in places:
        for path in place.rglob("*"):
            if path.is_file() and path.suffix != ".db":
                with path.open("rb") as file:
                    if file.read(16) == SQLITE_HEADER:
                        found.append(path)
            elif path.name.startswith("dagster_evals"):
                found.append(path)
    return found


def state_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in (
                    "dagster_evals_eval_plans",
                    "dagster_evals_row_checkpoints",
                    "dagster_evals_judge_cache",
                )
            }
    finally:
        engine.dispose()


def assert_state_in_postgres(
    result: dg.ExecuteInProcessResult, suite: EvalSuite, url: str, judge: OpenAIFake, places: list[Path]
) -> None:
    assert result.success
    report = materialization(result, suite.eval_report_key)
    assert report["rows_scored"] == ROWS
    assert report["score/factuality"] == pytest.approx(1.0)
    assert judge.requests["POST /v1/chat/completions"] == ROWS  # each row judged once, in its shard
    assert state_counts(url) == {
        "dagster_evals_eval_plans": 1,
        "dagster_evals_row_checkpoints": ROWS,
        "dagster_evals_judge_cache": ROWS,
    }
    assert sqlite_files(places) == []


def test_local_resource_url_holds_plans_checkpoints_and_judge_cache(
    tmp_path: Path, instance: dg.DagsterInstance, postgres_url: str, judge_endpoint: OpenAIFake, places
) -> None:
    suite = sharded_judge_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS)))
    result = materialize_suite(suite, instance, LocalResource(url=postgres_url))
    assert_state_in_postgres(result, suite, postgres_url, judge_endpoint, places)
    # The datasets and reports are in the same database.
    with sa.create_engine(postgres_url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM experiment_rows")).scalar_one() == ROWS


def test_braintrust_state_database_url_holds_the_state(
    tmp_path: Path, instance: dg.DagsterInstance, postgres_url: str, judge_endpoint: OpenAIFake, places
) -> None:
    suite = sharded_judge_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS)))
    with BraintrustFake(api_key=BRAINTRUST_KEY).serve() as server:
        evals = BraintrustResource(
            api_key=BRAINTRUST_KEY,
            api_url=server.url,
            app_url=server.url,
            project="arith-project",
            collect_git=False,
            state_database_url=postgres_url,
        )
        result = materialize_suite(suite, instance, evals)
    assert_state_in_postgres(result, suite, postgres_url, judge_endpoint, places)


def test_keywordsai_state_database_url_holds_the_state(
    tmp_path: Path, instance: dg.DagsterInstance, postgres_url: str, judge_endpoint: OpenAIFake, places
) -> None:
    suite = sharded_judge_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS)))
    with keywordsai_fake().serve() as server:
        evals = keywordsai_resource(server.url, state_database_url=postgres_url.replace("+psycopg", ""))
        result = materialize_suite(suite, instance, evals)
    assert_state_in_postgres(result, suite, postgres_url, judge_endpoint, places)


# -- steps on other hosts -------------------------------------------------------------------------
REMOTE_EXECUTOR = dg.in_process_executor.configured({}, name="k8s_like")


def remote_job(shards: int) -> dg.JobDefinition:
    """The suite's job on an executor that is neither Dagster's in-process nor multiprocess one, with the
    local backend on the SQLite file `$ONE_DB_SQLITE` (steps run in this process all the same)."""
    suite = EvalSuite(
        name="arith",
        source=Path(os.environ["ONE_DB_SOURCE"]),
        key_field="id",
        task=add_task,
        scorers=["exact_match"],
        baseline=None,
        shards=shards,
    )
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(
            resources={"evals": LocalResource(url=os.environ["ONE_DB_SQLITE"])},
            executor=REMOTE_EXECUTOR,
        ),
    )
    return defs.resolve_job_def(suite.job_name)


def remote_sharded_job() -> dg.JobDefinition:
    return remote_job(2)


def remote_unsharded_job() -> dg.JobDefinition:
    return remote_job(1)


@pytest.mark.parametrize("shards", [2, 1])
def test_sqlite_state_on_an_executor_of_several_hosts_fails_naming_the_setting(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, shards: int
) -> None:
    db = tmp_path / "evals.sqlite"
    monkeypatch.setenv("ONE_DB_SOURCE", str(write_jsonl(tmp_path / "rows.jsonl", qa_rows(4))))
    monkeypatch.setenv("ONE_DB_SQLITE", f"sqlite:///{db}")
    job = dg.reconstructable(remote_sharded_job if shards > 1 else remote_unsharded_job)
    with dg.execute_job(job, instance=instance, raise_on_error=False) as result:
        assert not result.success
        failures = [e for e in result.all_events if e.is_step_failure]
        assert len(failures) == 1  # the first step that needs the state: nothing ran half-way after it
        message = failures[0].step_failure_data.error.message  # type: ignore[union-attr]
        assert failures[0].step_key.endswith(".plan" if shards > 1 else "eval_report")
    assert f"the SQLite file {db}" in message
    assert "the url field of LocalResource (or $DAGSTER_EVALS_DATABASE_URL)" in message
    assert "'k8s_like' executor may run its steps on other hosts" in message
    assert ("resume=False" in message) == (shards == 1)


def test_bad_state_database_url_names_the_field(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    suite = sharded_judge_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(4)))
    with BraintrustFake(api_key=BRAINTRUST_KEY).serve() as server:
        evals = BraintrustResource(
            api_key=BRAINTRUST_KEY,
            api_url=server.url,
            app_url=server.url,
            collect_git=False,
            state_database_url="mysql://evals:hunter2@db/evals",
        )
        result = materialize_suite(suite, instance, evals, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert failure.step_key.endswith(".plan")
    assert "BraintrustResource.state_database_url: unsupported database URL scheme 'mysql'" in message
    assert "hunter2" not in message


def test_a_bad_retry_setting_names_the_variable(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("soon", "-1", "nan", "7200"):
        monkeypatch.setenv(RETRY_ENV, bad)
        with pytest.raises(
            ConfigError, match=rf"{RETRY_ENV} must be a number of seconds from 0 to 3600, got '{bad}'"
        ):
            LocalResource(url=postgres_url).get_platform()
