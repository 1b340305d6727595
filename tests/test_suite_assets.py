"""The dataset → snapshot → eval report assets and their checks, materialized through Dagster on real SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    ConfigError,
    EvalSuite,
    LocalEvalResource,
    build_eval_suite_assets,
)
from tests.conftest import add_task, materialization, qa_rows, write_jsonl


def suite_for(source: Path, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "name": "arith",
        "source": source,
        "key_field": "id",
        "task": add_task,
        "scorers": ["exact_match", "levenshtein"],
        "thresholds": {"exact_match": 0.9},
        "max_regression": 0.05,
    }
    options.update(overrides)
    return EvalSuite(**options)


def run(
    suite: EvalSuite,
    instance: dg.DagsterInstance,
    db_path: Path,
    *,
    extra: list[dg.AssetsDefinition] = (),  # type: ignore[assignment]
    batch_size: int = 500,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*build_eval_suite_assets(suite), *extra],
        instance=instance,
        resources={"evals": LocalEvalResource(path=str(db_path), batch_size=batch_size)},
        raise_on_error=raise_on_error,
    )


def live_rows(db_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT row_id, input FROM dataset_rows WHERE version_removed IS NULL ORDER BY row_id"
        ).fetchall()


def test_second_sync_sends_nothing_and_keeps_the_version(tmp_path: Path, instance, db_path) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(20)))
    first = materialization(run(suite, instance, db_path), suite.dataset_key)
    assert (first["rows_added"], first["rows_sent"], first["rows_total"]) == (20, 20, 20)

    second = materialization(run(suite, instance, db_path), suite.dataset_key)
    assert second["rows_sent"] == 0
    assert second["rows_unchanged"] == 20
    assert second["dataset_version"] == first["dataset_version"]


def test_one_changed_row_is_the_only_row_resent(tmp_path: Path, instance, db_path) -> None:
    rows = qa_rows(20)
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    suite = suite_for(source)
    run(suite, instance, db_path)
    rows[7]["expected"] = "nine!"
    write_jsonl(source, rows)

    meta = materialization(run(suite, instance, db_path, raise_on_error=False), suite.dataset_key)
    assert (meta["rows_sent"], meta["rows_updated"], meta["rows_added"], meta["rows_unchanged"]) == (
        1,
        1,
        0,
        19,
    )
    assert len(live_rows(db_path)) == 20


def test_a_row_deleted_from_the_source_disappears(tmp_path: Path, instance, db_path) -> None:
    rows = qa_rows(10)
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    suite = suite_for(source)
    run(suite, instance, db_path)
    write_jsonl(source, [r for r in rows if r["id"] != "q4"])

    result = run(suite, instance, db_path)
    meta = materialization(result, suite.dataset_key)
    assert meta["rows_removed"] == 1 and meta["rows_sent"] == 0
    assert "q4" not in [row_id for row_id, _ in live_rows(db_path)]
    assert materialization(result, suite.snapshot_key)["row_count"] == 9
    assert materialization(result, suite.eval_report_key)["rows_in_snapshot"] == 9


def test_crash_between_batches_then_rerun_leaves_exactly_the_source_rows(
    tmp_path: Path, instance, db_path
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(12))
    suite = suite_for(source)
    # The database itself fails once 5 rows are stored (like a full disk): the sync is staged in batches of
    # 5 and published as one version, so the failed publish leaves no row of it visible.
    from dagster_evals import LocalPlatform

    LocalPlatform(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER disk_full BEFORE INSERT ON dataset_rows "
            "WHEN (SELECT COUNT(*) FROM dataset_rows) >= 5 BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    crashed = run(suite, instance, db_path, batch_size=5, raise_on_error=False)
    assert not crashed.success
    assert len(live_rows(db_path)) == 0

    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TRIGGER disk_full")
    meta = materialization(run(suite, instance, db_path, batch_size=5), suite.dataset_key)
    assert (meta["rows_added"], meta["rows_unchanged"], meta["rows_total"]) == (12, 0, 12)
    stored = live_rows(db_path)
    assert sorted(row_id for row_id, _ in stored) == sorted(f"q{i}" for i in range(12))


def test_snapshot_pins_the_version_the_eval_runs_on(tmp_path: Path, instance, db_path) -> None:
    rows = qa_rows(6)
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    suite = suite_for(source)
    first = run(suite, instance, db_path)
    snap = materialization(first, suite.snapshot_key)
    assert snap["row_count"] == 6 and len(snap["digest"]) == 64
    preview = snap["preview"]
    assert len(preview.records) == 5

    # The dataset grows, but the eval runs against the pinned snapshot until it is re-materialized.
    write_jsonl(source, qa_rows(9))
    dataset_only = dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": LocalEvalResource(path=str(db_path))},
        selection=[suite.dataset_key, suite.eval_report_key],
    )
    report = materialization(dataset_only, suite.eval_report_key)
    assert report["rows_in_snapshot"] == 6
    assert report["dataset_version"] == snap["snapshot_version"]


def test_eval_report_metadata_plots_scores_and_compares_with_the_previous_run(
    tmp_path: Path, instance, db_path
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10, wrong={3}))
    suite = suite_for(source, thresholds={})
    first = materialization(run(suite, instance, db_path), suite.eval_report_key)
    assert first["score/exact_match"] == pytest.approx(0.9)
    assert isinstance(first["score/levenshtein"], float)
    assert (first["rows_scored"], first["rows_errored"], first["rows_in_snapshot"]) == (10, 0, 10)
    assert first["latency_p95_ms"] >= first["latency_p50_ms"] >= 0
    assert "baseline_id" not in first
    assert "| exact_match | 0.9 |" in first["summary"]

    second = materialization(run(suite, instance, db_path), suite.eval_report_key)
    assert second["baseline_id"] == first["report_id"]
    assert second["diff/exact_match"] == pytest.approx(0.0)
    assert "| exact_match | 0.9 | 0.9 | +0 |" in second["summary"]


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def release_gate(suite: EvalSuite) -> dg.AssetsDefinition:
    @dg.asset(deps=[suite.eval_report_key])
    def release_approved() -> None:
        return None

    return release_approved


def test_threshold_check_passes_and_fails_and_gates_the_release(tmp_path: Path, instance, db_path) -> None:
    good = suite_for(write_jsonl(tmp_path / "good.jsonl", qa_rows(10, wrong={1})))
    result = run(good, instance, db_path, extra=[release_gate(good)])
    checks = checks_of(result)
    assert checks["threshold_exact_match"].passed
    assert checks["completeness"].passed
    assert "release_approved" in {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}

    bad_db = tmp_path / "bad.sqlite"
    bad = suite_for(write_jsonl(tmp_path / "bad.jsonl", qa_rows(10, wrong={1, 2, 3})))
    result = run(bad, instance, bad_db, extra=[release_gate(bad)], raise_on_error=False)
    checks = checks_of(result)
    assert not checks["threshold_exact_match"].passed
    assert "0.7 is below the threshold 0.9" in checks["threshold_exact_match"].description
    assert not result.success
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "eval_report" in materialized and "release_approved" not in materialized


def test_non_blocking_checks_report_but_do_not_gate(tmp_path: Path, instance, db_path) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(10, wrong={1, 2, 3})), blocking=False)
    result = run(suite, instance, db_path, extra=[release_gate(suite)])
    assert not checks_of(result)["threshold_exact_match"].passed
    assert "release_approved" in {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_regression_check_fails_when_a_score_drops_against_the_baseline(
    tmp_path: Path, instance, db_path
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    baseline = suite_for(source, thresholds={})
    assert checks_of(run(baseline, instance, db_path))["no_regression"].passed

    def worse_task(input: dict[str, Any]) -> str:
        return "0" if input["a"] < 2 else add_task(input)

    worse = suite_for(source, thresholds={}, task=worse_task)
    result = run(worse, instance, db_path, raise_on_error=False)
    check = checks_of(result)["no_regression"]
    assert not check.passed
    assert "exact_match dropped 0.2 (allowed 0.05; 2 rows regressed)" in check.description
    report = materialization(result, worse.eval_report_key)
    assert report["diff/exact_match"] == pytest.approx(-0.2)


def test_completeness_check_counts_errored_rows_against_the_allowance(
    tmp_path: Path, instance, db_path
) -> None:
    def flaky(input: dict[str, Any]) -> str:
        if input["a"] == 5:
            raise TimeoutError("upstream model timed out")
        return add_task(input)

    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    strict = suite_for(source, thresholds={}, task=flaky)
    result = run(strict, instance, db_path, raise_on_error=False)
    check = checks_of(result)["completeness"]
    assert not check.passed
    assert "1 rows errored (1 task errors, 0 scorer errors); at most 0 allowed" in check.description
    report = materialization(result, strict.eval_report_key)
    assert (report["rows_scored"], report["rows_errored"], report["details"]["task_errors"]) == (9, 1, 1)

    lenient = suite_for(source, thresholds={}, task=flaky, max_errored_rows=1)
    assert checks_of(run(lenient, instance, db_path))["completeness"].passed


def test_suite_configuration_errors_are_clear(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    with pytest.raises(ConfigError, match="thresholds name unknown scorer"):
        suite_for(source, thresholds={"accuracy": 0.5})
    with pytest.raises(ConfigError, match=r"threshold for scorer 'exact_match' must be a number in \[0, 1\]"):
        suite_for(source, thresholds={"exact_match": 90})
    with pytest.raises(ConfigError, match="unknown scorer 'bleu'; known scorers: "):
        suite_for(source, scorers=["bleu"])


def test_bad_source_file_fails_the_dataset_asset_with_file_and_line(
    tmp_path: Path, instance, db_path
) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"id": "a", "input": 1}\n{"id": "b", "input": \n', encoding="utf-8")
    result = run(suite_for(source), instance, db_path, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "rows.jsonl:2: malformed JSON" in str(failure.step_failure_data.error.message)
    assert not Path(db_path).exists() or live_rows(db_path) == []
