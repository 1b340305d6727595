"""A sharded eval report (plan → N shard steps → combine) equals an unsharded one of the same rows: scores,
counts, baseline diffs, checks and every row result. Steps run in separate processes (multiprocess
executor); one test gives every step process its own working directory and shares state only through
PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import ConfigError, EvalSuite, LocalEvalResource, build_eval_suite_definitions
from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.engine.models import EvalReport, PlatformFunction
from dagster_evals.engine.runner import DEFAULT_MAX_CONCURRENCY
from dagster_evals.sharding import shard_of
from tests import sharding_defs
from tests.conftest import qa_rows, write_jsonl

ROWS = 150
REPORT = dg.AssetKey(["evals", sharding_defs.SUITE_NAME, "eval_report"])
# Step processes fork from a server that has imported dagster_evals once (spawning each is slow).
MULTIPROCESS = {
    "execution": {
        "config": {
            "multiprocess": {
                "max_concurrent": 3,
                "start_method": {"forkserver": {"preload_modules": ["dagster_evals"]}},
            }
        }
    }
}
# Differ between two runs of the same rows (wall time), so they are left out of the comparison.
TIMING_METRICS = ("duration_s",)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    values = {
        "SHARD_TEST_SOURCE": str(write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS))),
        "SHARD_TEST_DB": f"sqlite:///{tmp_path / 'evals.sqlite'}",
        "SHARD_TEST_CALLS": str(tmp_path / "calls.txt"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yield values


def execute(instance: dg.DagsterInstance, *, multiprocess: bool = True) -> dg.DagsterRun:
    """Run the suite's job, with the multiprocess executor (every step in its own process) or in process."""
    if not multiprocess:
        result = sharding_defs.eval_job().execute_in_process(instance=instance)
        return result.dagster_run
    with dg.execute_job(
        sharding_defs.reconstructable_job(),
        instance,
        run_config=MULTIPROCESS,
        raise_on_error=False,
    ) as result:
        run = result.dagster_run
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    return run


def report_of(instance: dg.DagsterInstance, run_id: str, platform: LocalPlatform) -> EvalReport:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=REPORT), limit=20).records
    [record] = [r for r in records if r.run_id == run_id]
    assert record.asset_materialization is not None
    report_id = record.asset_materialization.metadata["report_id"].value
    return platform.get_eval_report(str(report_id))


def checks_of(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[bool, dict[str, Any]]]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    found = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        found[evaluation.check_name] = (
            evaluation.passed,
            {k: getattr(v, "value", v) for k, v in evaluation.metadata.items() if k != "report_id"},
        )
    return found


def comparable(report: EvalReport) -> dict[str, Any]:
    """Everything in a report that the rows decide (not its id, name, run metadata or wall time)."""
    data = report.model_dump(mode="json")
    kept = {
        k: data[k]
        for k in (
            "rows_in_snapshot",
            "trial_count",
            "rows_scored",
            "rows_errored",
            "task_errors",
            "scorer_errors",
            "scores",
            "baseline_id",
            "dataset_version",
            "usage",
        )
    }
    kept["metrics"] = {
        k: v for k, v in data["metrics"].items() if k not in TIMING_METRICS and "latency" not in k
    }
    return kept


def rows_of(platform: LocalPlatform, report_id: str) -> list[tuple[Any, ...]]:
    return [
        (r.row_id, r.trial, r.output, r.scores, r.scorer_errors, r.error)
        for r in platform.iter_report_rows(report_id)
    ]


def calls(path: str) -> list[list[str]]:
    if not Path(path).exists():
        return []
    return [line.split(" ") for line in Path(path).read_text().splitlines()]


def test_rows_fall_into_disjoint_stable_shards() -> None:
    ids = [f"q{i}" for i in range(1000)]
    shards = [[row_id for row_id in ids if shard_of(row_id, 4) == i] for i in range(4)]
    assert sorted(row_id for shard in shards for row_id in shard) == sorted(ids)
    assert all(150 < len(s) < 350 for s in shards), [len(s) for s in shards]
    # SHA-256 of the id, first 8 bytes big-endian, modulo N: the same in every process and every release.
    assert (shard_of("q7", 4), shard_of("q8", 4), shard_of("q9", 4)) == (3, 1, 0)


def test_sharded_report_equals_unsharded_row_by_row(env: dict[str, str], instance, monkeypatch) -> None:
    platform = LocalPlatform(url=env["SHARD_TEST_DB"])
    monkeypatch.setenv("SHARD_TEST_WRONG_EVERY", "5")  # the baseline answers other rows wrong
    baseline_run = execute(instance, multiprocess=False)
    baseline = report_of(instance, baseline_run.run_id, platform)
    monkeypatch.delenv("SHARD_TEST_WRONG_EVERY")
    monkeypatch.setenv("SHARD_TEST_BASELINE", baseline.id)

    unsharded_run = execute(instance, multiprocess=False)
    Path(env["SHARD_TEST_CALLS"]).unlink()
    monkeypatch.setenv("SHARD_TEST_SHARDS", "3")
    sharded_run = execute(instance)

    unsharded = report_of(instance, unsharded_run.run_id, platform)
    sharded = report_of(instance, sharded_run.run_id, platform)
    assert comparable(sharded) == comparable(unsharded)
    assert sharded.scores["exact_match"].regressions > 0 and sharded.scores["exact_match"].improvements > 0
    assert rows_of(platform, sharded.id) == rows_of(platform, unsharded.id)
    assert len(rows_of(platform, sharded.id)) == ROWS
    assert checks_of(instance, sharded_run.run_id) == checks_of(instance, unsharded_run.run_id)
    assert set(checks_of(instance, sharded_run.run_id)) == {
        "threshold_exact_match",
        "no_regression",
        "completeness",
    }

    # Every row was scored once, by the shard steps (three processes), and none again by the combine step.
    made = calls(env["SHARD_TEST_CALLS"])
    assert sorted(c[2] for c in made) == sorted(f"q{i}" for i in range(ROWS))
    assert len({c[0] for c in made}) == 3
    steps = {
        e.step_key for e in instance.all_logs(sharded_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    }
    assert {s for s in steps if ".shard_" in (s or "")} == {
        f"evals__sharded__eval_report.shard_{i}_of_3" for i in (1, 2, 3)
    }


def test_a_failed_gate_blocks_the_sharded_report_like_the_unsharded_one(env, instance, monkeypatch) -> None:
    monkeypatch.setenv("SHARD_TEST_WRONG_EVERY", "1")  # every answer wrong: exact_match 0 < 0.5
    monkeypatch.setenv("SHARD_TEST_SHARDS", "2")
    result = sharding_defs.eval_job().execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run_id = result.run_id
    checks = checks_of(instance, run_id)
    assert checks["threshold_exact_match"][0] is False
    assert checks["completeness"][0] is True
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=REPORT), limit=5).records
    assert [r.run_id for r in records] == [run_id]  # the report is recorded, the step then fails the gate
    # The report says how its rows were split and how long each shard's step took.
    mat = records[0].asset_materialization
    assert mat is not None
    shards = mat.metadata["details"].value["shards"]  # type: ignore[index]
    assert shards["count"] == 2 and [s["shard"] for s in shards["per_shard"]] == ["1/2", "2/2"]
    assert sum(s["rows"] for s in shards["per_shard"]) == ROWS and all(
        s["rows"] > 0 for s in shards["per_shard"]
    )
    assert all(s["step_s"] > 0 for s in shards["per_shard"])


@pytest.mark.parametrize("shards", [1, 2])
def test_without_max_concurrency_a_shard_runs_the_default_at_once_as_an_unsharded_eval(
    tmp_path: Path, instance, shards: int
) -> None:
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def task(input: dict[str, int]) -> str:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return str(input["a"] + input["b"])

    suite = EvalSuite(
        name=f"unbounded_{shards}",
        source=write_jsonl(tmp_path / "rows.jsonl", qa_rows(80)),
        key_field="id",
        task=task,
        scorers=["exact_match"],
        max_concurrency=None,
        shards=shards,
    )
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(resources={"evals": LocalEvalResource(url=f"sqlite:///{tmp_path / 'evals.sqlite'}")}),
    )
    result = defs.resolve_job_def(suite.job_name).execute_in_process(instance=instance)
    assert result.success
    assert 1 < peak[0] <= DEFAULT_MAX_CONCURRENCY  # each shard has 40 rows or so: not all of them at once


def test_shards_need_a_python_task(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(3))
    remote = PlatformFunction(platform="braintrust", name="task", spec={"function_id": "f"})
    with pytest.raises(ConfigError, match="shards=2 needs a Python task"):
        EvalSuite(name="s", source=source, task=remote, scorers=["exact_match"], shards=2)
    with pytest.raises(ConfigError, match="shards must be an integer from 1 to 100, got 0"):
        EvalSuite(name="s", source=source, task=str, scorers=["exact_match"], shards=0)
    with pytest.raises(ConfigError, match="needs resume=True"):
        EvalSuite(name="s", source=source, task=str, scorers=["exact_match"], shards=2, resume=False)


def test_sharded_report_asset_is_one_asset_with_its_checks(env: dict[str, str]) -> None:
    defs = sharding_defs.definitions(shards=4)
    job = defs.resolve_job_def(sharding_defs.suite(4).job_name)
    steps = sorted(node.name for node in job.graph.node_dict[REPORT.to_python_identifier()].definition.nodes)  # type: ignore[union-attr]
    # Step keys `<asset>.<node>`, without the asset's name repeated in the node's.
    assert steps == ["combine", "plan", *[f"shard_{i}_of_4" for i in range(1, 5)]]
    assets = defs.resolve_asset_graph()
    # In the suite's group like its dataset and snapshot (not `default`).
    assert {assets.get(k).group_name for k in assets.get_all_asset_keys()} == {sharding_defs.SUITE_NAME}
    assert REPORT in assets.get_all_asset_keys()
    assert {k.name for k in assets.get(REPORT).check_keys} == {
        "threshold_exact_match",
        "no_regression",
        "completeness",
    }
    assert json.dumps(sorted(str(k) for k in assets.get(REPORT).parent_keys))


def test_shards_in_separate_processes_and_directories_share_only_postgresql(
    env: dict[str, str], instance, tmp_path: Path, monkeypatch, postgres_url: str
) -> None:
    cwd_root = tmp_path / "step_dirs"
    cwd_root.mkdir()
    monkeypatch.setenv("SHARD_TEST_CWD_ROOT", str(cwd_root))
    monkeypatch.setenv("SHARD_TEST_DB", postgres_url)
    monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", postgres_url)
    monkeypatch.setenv("SHARD_TEST_SHARDS", "3")
    run = execute(instance)

    made = calls(env["SHARD_TEST_CALLS"])
    assert sorted(c[2] for c in made) == sorted(f"q{i}" for i in range(ROWS))
    shard_dirs = {c[1] for c in made}
    assert len(shard_dirs) == 3 and all(Path(d).parent == cwd_root for d in shard_dirs)
    # Each step had its own directory, and none fell back to a database file in it.
    step_dirs = list(cwd_root.iterdir())
    assert len(step_dirs) >= 6  # dataset, snapshot, plan, 3 shards, combine
    assert not [p for d in step_dirs for p in d.rglob("*")]

    platform = LocalPlatform(url=postgres_url)
    report = report_of(instance, run.run_id, platform)
    wrong = sum(1 for i in range(ROWS) if i % 7 == 3)
    assert (report.rows_scored, report.rows_errored) == (ROWS, 0)
    assert report.scores["exact_match"].mean == pytest.approx((ROWS - wrong) / ROWS)
    assert len(rows_of(platform, report.id)) == ROWS


def test_a_partitioned_yaml_suite_shards_too(tmp_path: Path, instance) -> None:
    from dagster_evals import LocalResource
    from tests.test_component import load, yaml_attributes

    sandbox_cm, loaded = load(
        yaml_attributes(shards=2, partitions="yaml_versions"), qa_rows(12, wrong={2, 5})
    )
    try:
        with loaded as (_, defs):
            merged = dg.Definitions.merge(
                defs, dg.Definitions(resources={"evals": LocalResource(path=str(tmp_path / "e.sqlite"))})
            )
            job = merged.resolve_job_def("yaml_suite_eval_job")
            assert any(
                step == "shard_2_of_2"
                for step in job.graph.node_dict["evals__yaml_suite__eval_report"].definition.node_dict
            )  # type: ignore[union-attr]
            instance.add_dynamic_partitions("yaml_versions", ["v1"])
            result = job.execute_in_process(instance=instance, partition_key="v1", raise_on_error=False)
            checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            assert checks == {"threshold_exact_match": False, "no_regression": True, "completeness": True}
            # Each gate result is recorded against the partition it checked, as in an unsharded suite.
            assert {e.partition for e in result.get_asset_check_evaluations()} == {"v1"}
            [report] = [
                e.materialization
                for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.path[-1] == "eval_report"
            ]
            assert report.partition == "v1"
            assert report.metadata["score/exact_match"].value == pytest.approx(10 / 12, abs=5e-5)
            assert report.metadata["partition"].value == "v1"
    finally:
        sandbox_cm.__exit__(None, None, None)
