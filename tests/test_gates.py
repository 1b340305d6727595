"""Gates that cannot be walked around: baselines that fail closed, empty snapshots, pinned versions,
per-partition verdicts and suite validation — through real Dagster runs on real SQLite files."""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import ConfigError, EvalSuite, LocalEvalResource, LocalPlatform, build_eval_suite_assets
from dagster_evals.baselines import BASELINE_LOOKBACK
from dagster_evals.engine.sources import as_source, load_rows
from dagster_evals.engine.sync import sync_rows
from tests.conftest import add_task, materialization, qa_rows, write_jsonl


def suite_for(source: Path, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "name": "gated",
        "source": source,
        "key_field": "id",
        "task": add_task,
        "scorers": ["exact_match"],
        "thresholds": {},
        "max_regression": 0.05,
    }
    options.update(overrides)
    return EvalSuite(**options)


def worse_task(input: dict[str, Any]) -> str:
    """Gets the first two rows wrong: exact_match drops by 0.2 on ten rows."""
    return "0" if input["a"] < 2 else add_task(input)


def run(suite: EvalSuite, instance: dg.DagsterInstance, db: Path, **kwargs: Any) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": LocalEvalResource(path=str(db))},
        raise_on_error=False,
        **kwargs,
    )


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return str(failure.step_failure_data.error.message)


def test_rerunning_a_blocked_regression_is_still_blocked(tmp_path: Path, instance, db_path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    first = run(suite_for(source), instance, db_path)
    check = checks_of(first)["no_regression"]
    assert check.passed and "no baseline yet" in check.description
    good = materialization(first, suite_for(source).eval_report_key)
    assert good["gate_passed"] is True

    regressed = suite_for(source, task=worse_task)
    blocked = materialization(second := run(regressed, instance, db_path), regressed.eval_report_key)
    assert not checks_of(second)["no_regression"].passed and blocked["gate_passed"] is False

    # The same job simply runs again: the failed report is not a baseline, so the gate still holds.
    third = run(regressed, instance, db_path)
    check = checks_of(third)["no_regression"]
    assert not check.passed, check.description
    assert "exact_match dropped 0.2" in check.description
    assert materialization(third, regressed.eval_report_key)["baseline_id"] == good["report_id"]

    # "previous" stays available and means the latest report, passed or not.
    explicit = suite_for(source, task=worse_task, baseline="previous")
    fourth = materialization(run(explicit, instance, db_path), explicit.eval_report_key)
    assert fourth["baseline_id"] == materialization(third, regressed.eval_report_key)["report_id"]


def test_a_long_series_of_failed_reports_does_not_hide_the_last_passing_one(
    tmp_path: Path, instance, db_path
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    suite = suite_for(source)
    good = materialization(run(suite, instance, db_path), suite.eval_report_key)
    for n in range(BASELINE_LOOKBACK + 1):  # more failed reports than one page of history
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                suite.eval_report_key,
                metadata={"platform": "local", "report_id": f"failed-{n}", "gate_passed": False},
            )
        )
    result = run(suite_for(source, task=worse_task), instance, db_path)
    assert not checks_of(result)["no_regression"].passed
    assert materialization(result, suite.eval_report_key)["baseline_id"] == good["report_id"]


def test_a_recorded_baseline_missing_from_the_backend_fails_closed(tmp_path: Path, instance) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    first_db, fresh_db = tmp_path / "pod1.sqlite", tmp_path / "pod2.sqlite"
    good = materialization(run(suite_for(source), instance, first_db), suite_for(source).eval_report_key)

    # The next run uses a fresh SQLite file (another pod): Dagster remembers a baseline this backend lacks.
    regressed = suite_for(source, task=worse_task)
    result = run(regressed, instance, fresh_db)
    check = checks_of(result)["no_regression"]
    assert not check.passed
    assert f"baseline report {good['report_id']}" in check.description
    assert f"is not there on the local backend at sqlite:///{fresh_db}" in check.description
    assert "allow_missing_baseline=True" in check.description
    assert not result.success

    allowed = suite_for(source, task=worse_task, allow_missing_baseline=True)
    check = checks_of(run(allowed, instance, tmp_path / "pod3.sqlite"))["no_regression"]
    assert check.passed and good["report_id"] in check.description


def test_an_unreadable_baseline_fails_closed(tmp_path: Path, instance, db_path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    good = materialization(run(suite_for(source), instance, db_path), suite_for(source).eval_report_key)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE experiments SET report = '{\"truncated' WHERE id = ?", (good["report_id"],))

    check = checks_of(run(suite_for(source), instance, db_path))["no_regression"]
    assert not check.passed
    assert f"baseline report {good['report_id']}" in check.description
    assert "could not be read" in check.description and str(db_path) in check.description


def test_an_empty_snapshot_fails_completeness_and_thresholds(tmp_path: Path, instance, db_path) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(3)), thresholds={"exact_match": 0.5})
    # The dataset is managed outside this code location and reported to Dagster while still empty.
    platform = LocalPlatform(db_path)
    try:
        dataset = platform.ensure_dataset("gated")
        version = platform.current_version(dataset)
    finally:
        platform.close()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            suite.dataset_key,
            metadata={
                "platform": "local",
                "dataset_id": dataset.id,
                "dataset_name": dataset.name,
                "dataset_version": version,
                "rows_total": 0,
            },
        )
    )
    result = run(suite, instance, db_path, selection=[suite.snapshot_key, suite.eval_report_key])
    assert materialization(result, suite.snapshot_key)["row_count"] == 0
    checks = checks_of(result)
    for name in ("completeness", "threshold_exact_match"):
        assert not checks[name].passed
        assert checks[name].description.startswith("snapshot has 0 rows")
    assert materialization(result, suite.eval_report_key)["gate_passed"] is False


def test_the_snapshot_pins_the_version_its_dataset_materialization_recorded(
    tmp_path: Path, instance, db_path
) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(6)))
    synced = materialization(run(suite, instance, db_path, selection=[suite.dataset_key]), suite.dataset_key)

    # Another writer changes the dataset after the sync was recorded.
    platform = LocalPlatform(db_path)
    try:
        rows = load_rows(as_source(write_jsonl(tmp_path / "more.jsonl", qa_rows(9)), "id"))
        sync_rows(platform, platform.ensure_dataset("gated"), rows)
    finally:
        platform.close()

    pinned = materialization(
        run(suite, instance, db_path, selection=[suite.snapshot_key]), suite.snapshot_key
    )
    assert (pinned["snapshot_version"], pinned["row_count"]) == (synced["dataset_version"], 6)
    assert pinned["pinned_from"].startswith("latest materialization (run ")


def test_a_snapshot_step_on_another_backend_fails_closed(tmp_path: Path, instance) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(6)))
    run(suite, instance, tmp_path / "pod1.sqlite", selection=[suite.dataset_key])
    result = run(suite, instance, tmp_path / "pod2.sqlite", selection=[suite.snapshot_key])
    assert not result.success
    message = step_failure(result)
    assert "dataset 'gated'" in message
    assert f"is not on the local backend at sqlite:///{tmp_path / 'pod2.sqlite'}" in message
    assert "every step must use the same eval backend" in message


def test_concurrent_runs_each_evaluate_the_snapshot_they_pinned(tmp_path: Path, instance, db_path) -> None:
    """Run A pins 6 rows; run B syncs and pins 9 rows before A's eval starts; A still evaluates its 6."""
    a_pinned, b_done = threading.Event(), threading.Event()

    @dg.success_hook
    def hold_after_snapshot(context: dg.HookContext) -> None:
        if context.op.name.endswith("dataset_snapshot"):
            a_pinned.set()
            assert b_done.wait(120), "run B did not finish"

    def job(suite: EvalSuite, hooks: set[Any]) -> dg.JobDefinition:
        defs = dg.Definitions(
            assets=build_eval_suite_assets(suite),
            jobs=[dg.define_asset_job("all", selection=dg.AssetSelection.all(), hooks=hooks)],
            resources={"evals": LocalEvalResource(path=str(db_path))},
        )
        return defs.resolve_job_def("all")

    suite_a = suite_for(write_jsonl(tmp_path / "a.jsonl", qa_rows(6)))
    suite_b = suite_for(write_jsonl(tmp_path / "b.jsonl", qa_rows(9)))
    outcome: dict[str, dg.ExecuteInProcessResult] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(
            a=job(suite_a, {hold_after_snapshot}).execute_in_process(instance=instance)
        )
    )
    thread.start()
    assert a_pinned.wait(120), "run A did not pin its snapshot"
    try:
        result_b = job(suite_b, set()).execute_in_process(instance=instance)
    finally:
        b_done.set()
        thread.join(120)
    a_snap = materialization(outcome["a"], suite_a.snapshot_key)
    a_report = materialization(outcome["a"], suite_a.eval_report_key)
    b_report = materialization(result_b, suite_b.eval_report_key)
    assert (a_snap["row_count"], a_report["rows_in_snapshot"], b_report["rows_in_snapshot"]) == (6, 6, 9)
    assert a_report["dataset_version"] == a_snap["snapshot_version"] != b_report["dataset_version"]
    assert a_report["details"]["dataset"]["pinned_from"] == "this run"


def partitioned(source: Path, **overrides: Any) -> EvalSuite:
    return suite_for(
        source,
        thresholds={"exact_match": 0.9},
        partitions_def=dg.DynamicPartitionsDefinition(name="gated_versions"),
        **overrides,
    )


def test_a_failed_gate_is_visible_per_partition(tmp_path: Path, instance, db_path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    instance.add_dynamic_partitions("gated_versions", ["v1", "v2"])
    good = partitioned(source)
    v1 = run(good, instance, db_path, partition_key="v1")
    bad = partitioned(source, task=worse_task)
    v2 = run(bad, instance, db_path, partition_key="v2")

    assert materialization(v1, good.eval_report_key)["details"]["gate"] == "passed"
    failed = materialization(v2, bad.eval_report_key)
    assert failed["gate_passed"] is False
    assert failed["details"]["gate"] == "FAILED: threshold_exact_match, no_regression"
    check = checks_of(v2)["threshold_exact_match"]
    assert check.description.startswith("[v2] exact_match mean 0.8 is below")
    assert check.metadata["partition"].value == "v2"
    # Dagster records each check result against the partition it checked.
    assert {e.partition for e in v1.get_asset_check_evaluations()} == {"v1"}
    assert {e.partition for e in v2.get_asset_check_evaluations()} == {"v2"}
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(good.eval_report_key, "threshold_exact_match"), limit=5
    )
    assert sorted((r.partition, r.status.value) for r in history) == [("v1", "SUCCEEDED"), ("v2", "FAILED")]

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=good.eval_report_key, asset_partitions=["v2"]), limit=1
    ).records
    assert records[0].asset_materialization.metadata["gate_passed"].value is False


def test_a_partitioned_eval_report_without_a_partition_key_is_a_clear_error(
    tmp_path: Path, instance, db_path
) -> None:
    suite = partitioned(write_jsonl(tmp_path / "rows.jsonl", qa_rows(3)))
    result = run(suite, instance, db_path)
    assert not result.success
    assert "is partitioned by 'gated_versions': run it for one partition" in step_failure(result)
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == suite.eval_report_key]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_regression": math.nan}, r"max_regression must be a finite number of at least 0.*got nan"),
        ({"max_regression": -0.1}, r"max_regression must be a finite number of at least 0"),
        ({"max_regression": "0.05"}, r"max_regression must be a finite number.*got '0.05'"),
        ({"max_regression": {"exact_match": math.inf}}, r"max_regression\['exact_match'\] must be a finite"),
        (
            {"thresholds": {"exact_match": math.nan}},
            r"threshold for scorer 'exact_match' must be a number in",
        ),
        ({"thresholds": {"exact_match": 1.5}}, r"threshold for scorer 'exact_match' must be a number in"),
        ({"thresholds": {"exact_match": True}}, r"threshold for scorer 'exact_match' must be a number in"),
        ({"row_timeout_s": 0}, r"row_timeout_s must be a finite number of seconds above 0"),
        ({"row_timeout_s": -1.0}, r"row_timeout_s must be a finite number of seconds above 0"),
        ({"row_timeout_s": math.nan}, r"row_timeout_s must be a finite number of seconds above 0"),
        ({"trial_count": 0}, r"trial_count must be an integer from 1 to 1000, got 0"),
        ({"trial_count": 2.5}, r"trial_count must be an integer from 1 to 1000, got 2.5"),
        ({"max_concurrency": 0}, r"max_concurrency must be an integer from 1 to 1000 \(or None\)"),
        ({"max_errored_rows": -1}, r"max_errored_rows must be an integer of 0 or more"),
        ({"max_errored_rows": 0.5}, r"max_errored_rows must be an integer of 0 or more"),
        ({"baseline": "last-passing"}, r"baseline is not a baseline mode \(did you mean 'last_passing'\?"),
        ({"baseline": "Previous"}, r"baseline is not a baseline mode \(did you mean 'previous'\?"),
        ({"baseline": ""}, r"baseline must be one of last_passing, previous, previous_partition"),
        ({"key_prefix": "evals"}, r"key_prefix must be a non-empty list of key parts"),
        ({"key_prefix": ["evals", "a b"]}, r"key_prefix must be a non-empty list of key parts"),
        ({"resource_key": "my-evals"}, r"resource_key must be a Python identifier"),
        ({"blocking": "yes"}, r"blocking must be True or False"),
        ({"allow_missing_baseline": 1}, r"allow_missing_baseline must be True or False"),
        ({"tags": "example"}, r"tags must be a list of non-empty strings"),
        ({"group_name": "a-b"}, r"group_name must be letters, digits and '_'"),
    ],
)
def test_every_suite_field_is_validated_when_the_definitions_load(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"^suite 'gated': " + message):
        suite_for(tmp_path / "rows.jsonl", **overrides)


def test_a_pinned_report_id_is_still_accepted_as_baseline(tmp_path: Path) -> None:
    assert suite_for(tmp_path / "rows.jsonl", baseline="0f3a9c-report").baseline == "0f3a9c-report"
