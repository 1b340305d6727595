from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import EvalSuite, build_eval_suite_assets
from dagster_evals.backends.braintrust import BraintrustPlatform
from dagster_evals.backends.keywordsai import KeywordsAIResource
from dagster_evals.testing import BraintrustFake, KeywordsAIFake, ServerThread
from tests.airflow_harness import airflow, migrated_db  # noqa: F401  (fixtures of the Airflow tests)
from tests.pg_server import database_url, postgres_server, postgres_url  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent

# Durations (seconds) of the longest tests, by node id prefix, measured with `--durations` on the shared
# 2-core machine at a load average of about 5 (an idle machine needs roughly half). Only the order of the
# run depends on them: the longest start first, so that no worker is left with a long test at the end while
# the other one idles. A test not listed here runs after them, in collection order. The deployment proofs
# (`-m deployment`) are listed too, for the order of their own run.
LONGEST: dict[str, float] = {
    # The default run.
    "tests/test_static_checks.py::test_static_check_passes[pyright]": 127.0,
    "tests/test_cli.py::test_quick_start_ends_with_the_report_table": 106.0,
    "tests/test_secrets.py::test_example_jobs_never_reveal_the_api_key": 103.0,
    "tests/test_fault_proxy.py::test_write_paths_through_the_fault_proxy[keywordsai-platform_eval": 36.0,
    "tests/test_airflow.py::test_deferred_keywordsai_eval_waits_in_the_triggerer_and_no_key_leaks": 34.0,
    "tests/test_fault_proxy.py::test_write_paths_through_the_fault_proxy[keywordsai-dataset_sync": 28.0,
    "tests/test_cli.py::test_report_release_wait_exits_1_when_the_run_or_its_gate_fails": 26.0,  # one group
    "tests/test_airflow.py::test_each_new_prompt_version_is_evaluated_exactly_once": 26.0,
    "tests/test_faults.py::test_operations_under_faults_leave_exactly_the_source_rows[keywordsai-slow]": 26.0,
    "tests/test_resume.py::test_a_killed_eval_resumes_where_it_stopped": 25.0,
    "tests/test_airflow.py::test_each_new_release_is_evaluated_exactly_once": 25.0,
    "tests/test_example.py::test_example_job_runs_end_to_end_and_reports_scores": 24.0,
    "tests/test_sharding.py::test_shards_in_separate_processes_and_directories_share_only_postgresql": 23.0,
    "tests/test_sharding.py::test_sharded_report_equals_unsharded_row_by_row": 23.0,
    "tests/test_component.py::test_dg_scaffold_writes_a_commented_template_that_passes_dg_check": 23.0,
    "tests/test_airflow_inputs.py::test_deferred_braintrust_eval_runs_in_the_triggerer": 19.0,
    "tests/test_cli.py::test_push_prompt_records_versions_the_prompt_sensor_runs": 19.0,
    "tests/test_fault_proxy.py::test_write_paths_through_the_fault_proxy[braintrust": 16.0,
    "tests/test_faults.py::test_operations_under_faults_leave_exactly_the_source_rows[braintrust-slow]": 16.0,
    "tests/test_local_cli.py::test_report_on_a_missing_file_is_a_clear_error_and_creates_nothing": 15.0,
    "tests/test_airflow.py::test_release_dag_passes_then_a_regression_is_blocked_and_stays_blocked": 15.0,
    "tests/test_component_strict.py::test_dg_check_yaml_names_the_file_and_line_of_a_bool_threshold": 14.0,
    "tests/test_gate_cli.py": 14.0,
    "tests/test_postgres_example.py": 14.0,
    "tests/test_gates.py::test_a_long_series_of_failed_reports_does_not_hide_the_last_passing_one": 14.0,
    "tests/test_local_cli.py::test_report_reads_the_database_given_by_url_or_db": 13.0,
    "tests/test_fault_proxy.py::test_write_paths_through_the_fault_proxy[keywordsai-eval": 13.0,
    "tests/test_component_strict.py::test_dg_check_defs_refuses_a_task_that_is_not_callable": 13.0,
    "tests/test_component.py::test_dg_check_defs_names_a_limit_on_an_unknown_scorer": 12.0,
    "tests/test_crash_rerun.py": 12.0,
    # The deployment proofs (`-m deployment`).
    "tests/test_first_hour.py": 150.0,  # one fresh virtualenv and `dg` project for the module's tests
    "tests/test_dagster_postgres.py": 110.0,
    "tests/test_webserver.py": 90.0,  # one `dg dev` deployment for the module's tests
    "tests/test_dask_executor.py": 60.0,  # one Dask cluster for the module's tests (xdist_group)
    "tests/test_production_install.py": 63.0,  # a clean venv, a wheel installed twice
    "tests/test_deployment.py::test_per_pod_sqlite_files_fail_closed": 38.0,
    "tests/test_deployment.py::test_a_shared_backend_keeps_the_gate_closed_across_pods": 24.0,
}


# Tests that share a module-scoped fixture (a deployment started once for them), by node id prefix: each
# group runs on one xdist worker, instead of building the fixture again on each worker that gets one of them.
SHARED_FIXTURE_TESTS = (
    "tests/test_webserver.py::",
    "tests/test_cli.py::test_report_release_wait_exits_1_when_the_run_or_its_gate_fails",
    "tests/test_braintrust_sdk.py::",
    "tests/test_openai_fake.py::",
    "tests/test_first_hour.py::",
)


def pytest_configure(config: pytest.Config) -> None:
    """Run with the default SIGINT and SIGTERM dispositions, however pytest was started.

    A process a non-interactive shell starts in the background (`cmd &` in a CI script, `nohup`) inherits
    SIGINT ignored, and Dagster's in-process execution gives SIGTERM whatever SIGINT has
    (`dagster._utils.interrupts.setup_interrupt_handlers`): after the first run on the main thread, SIGTERM is
    ignored too, and so is it in every process started afterwards. The compute-log `tail -F` processes of a
    run started from another thread then outlive `terminate()`, which Dagster waits 30 s for, twice a step,
    and a browser or server a test stops waits out its own deadline. With the defaults restored, the suite
    runs as it does from a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per CPU, at most 8. Most of a test's time is spent waiting (on the `dagster`
    processes it starts, on a fake server's slow answer, on a PostgreSQL restart) rather than computing, so
    twice as many workers as CPUs keep the CPUs busy; on 2 CPUs that ends the run in three quarters of the
    time of one worker per CPU."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadgroup`: every test is scheduled on its own, except the `SHARED_FIXTURE_TESTS`
    groups (and tests marked `xdist_group`), which go to one worker each."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedFixtureScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for prefix in SHARED_FIXTURE_TESTS:
                if nodeid.startswith(prefix):
                    return prefix
            return super()._split_scope(nodeid)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the longest tests first (`LONGEST`); the others keep their order."""

    def expected_seconds(item: pytest.Item) -> float:
        return max((s for prefix, s in LONGEST.items() if item.nodeid.startswith(prefix)), default=0.0)

    items.sort(key=lambda item: -expected_seconds(item))


@contextlib.contextmanager
def dagster_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """A real, persistent Dagster instance with its DAGSTER_HOME at `home` (created if missing).

    Its event log is one SQLite database, as dagster-postgres keeps it in one database, rather than
    Dagster's default of one SQLite file per run, each created with its schema when the run starts.
    """
    home.mkdir(parents=True, exist_ok=True)
    event_log = {
        "module": "dagster._core.storage.event_log",
        "class": "ConsolidatedSqliteEventLogStorage",
        "config": {"base_dir": str(home / "history")},
    }
    with dg.instance_for_test(temp_dir=str(home), overrides={"event_log_storage": event_log}) as inst:
        yield inst


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real, persistent Dagster instance in a temp DAGSTER_HOME (`dagster_instance`)."""
    with dagster_instance(tmp_path / "dagster_home") as inst:
        yield inst


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "evals.sqlite"


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity; returns its stripped output."""
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def git_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh git repository with one commit, made the working directory; returns its HEAD commit.

    For code that reads the git state of the current directory, so that the test does not depend on where
    the suite runs from (a checkout, an unpacked sdist, a container without .git).
    """
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("VERSION = 1\n")
    git(repo, "add", "app.py")
    git(repo, "commit", "-qm", "first commit")
    monkeypatch.chdir(repo)
    return git(repo, "rev-parse", "HEAD")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def qa_rows(n: int, *, wrong: set[int] = frozenset()) -> list[dict[str, Any]]:
    """`n` arithmetic questions keyed q0..q{n-1}; rows in `wrong` carry a wrong expected answer."""
    return [
        {
            "id": f"q{i}",
            "input": {"a": i, "b": 2},
            "expected": str(i + 2 + (1 if i in wrong else 0)),
            "metadata": {"kind": "add"},
        }
        for i in range(n)
    ]


def add_task(input: dict[str, Any]) -> str:
    return str(input["a"] + input["b"])


def arith_suite(source: Path, **options: Any) -> EvalSuite:
    """An `arith` suite over `source` (rows from `qa_rows`, keyed by `id`, task `add_task`); `options`
    set the scorers, thresholds and anything else."""
    return EvalSuite(**({"name": "arith", "source": source, "key_field": "id", "task": add_task} | options))


def materialize_suite(
    suite: EvalSuite, instance: dg.DagsterInstance, evals: Any, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """Materialize the suite's assets with `evals` as the platform resource (`kwargs` go to
    `dg.materialize`: `selection`, `raise_on_error`…)."""
    return dg.materialize(
        build_eval_suite_assets(suite), instance=instance, resources={"evals": evals}, **kwargs
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The error text of every failed step of a run."""
    return "\n".join(
        str(event.step_failure_data.error.to_string())
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error
    )


KEYWORDSAI_KEY = "kw-test-key-0123456789"


def keywordsai_fake(**options: Any) -> KeywordsAIFake:
    """A Keywords AI fake that accepts `KEYWORDSAI_KEY` and has no rate limit (unless `options` set one)."""
    return KeywordsAIFake(**({"api_keys": [KEYWORDSAI_KEY], "rate_limit_per_minute": None} | options))


def keywordsai_resource(url: str, key: str = KEYWORDSAI_KEY, **overrides: Any) -> KeywordsAIResource:
    """A Keywords AI resource on a fake at `url`: no client-side rate limit, fast polls, no settle delay."""
    options: dict[str, Any] = {
        "api_key": key,
        "base_url": url,
        "rate_limit_per_minute": None,
        "eval_poll_interval_s": 0.01,
        "settle_delay_s": 0.0,
    }
    return KeywordsAIResource(**(options | overrides))


def braintrust_platform(url: str, key: str, **overrides: Any) -> BraintrustPlatform:
    """A Braintrust platform on a fake at `url`, project `p`, without git metadata."""
    options: dict[str, Any] = {"api_key": key, "api_url": url, "project": "p", "collect_git": False}
    return BraintrustPlatform(**(options | overrides))


@pytest.fixture
def server(fake: BraintrustFake | KeywordsAIFake) -> Iterator[ServerThread]:
    """The test module's `fake` served over real HTTP on 127.0.0.1."""
    with fake.serve() as running:
        yield running


def materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    """Plain metadata values of the materialization of `key` in a run result."""
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key == key:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    raise AssertionError(f"{key.to_user_string()} was not materialized")


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "BRAINTRUST_API_KEY",
        "KEYWORDSAI_API_KEY",
        "BRAINTRUST_API_URL",
        "BRAINTRUST_APP_URL",
        "KEYWORDSAI_BASE_URL",
        "RESPAN_BASE_URL",
        "DAGSTER_EVALS_LOCAL_DB",
        "DAGSTER_EVALS_DATABASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
