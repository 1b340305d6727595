"""`require_passing_gates`: a gated asset materializes only when its eval report's blocking checks passed in
the same run and partition, read from the Dagster instance. Real runs on a real instance (the local backend
on SQLite); the Dask executor, where blocking checks alone do not hold, is covered in
`tests/test_dask_executor.py`."""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import ConfigError, EvalSuite, GateClosedError, LocalResource, require_passing_gates
from dagster_evals.assets import build_eval_suite_assets
from tests.conftest import arith_suite, failure_text, materialization, qa_rows, write_jsonl


def suite_over(tmp_path: Path, *, wrong: set[int] = frozenset(), **options: Any) -> EvalSuite:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10, wrong=wrong))
    return arith_suite(
        source, scorers=["exact_match"], thresholds={"exact_match": 0.8}, max_regression=0.1, **options
    )


def gated(suite: EvalSuite, name: str = "release_approved", **gate: Any) -> dg.AssetsDefinition:
    """A release marker guarded by `require_passing_gates` (with `gate` options), partitioned like `suite`."""

    @dg.asset(name=name, deps=[suite.eval_report_key], partitions_def=suite.partitions_def)
    def _release(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        approval = require_passing_gates(context, suite.eval_report_key, **gate)
        return dg.MaterializeResult(metadata={"approved": True, **approval.metadata})

    return _release


def run(
    suite: EvalSuite,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    *extra: dg.AssetsDefinition,
    selection: str | None = None,
    **kwargs: Any,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*build_eval_suite_assets(suite), *extra],
        instance=instance,
        resources={"evals": LocalResource(path=str(tmp_path / "evals.sqlite"))},
        selection=selection,
        raise_on_error=False,
        **kwargs,
    )


def refusal(result: dg.ExecuteInProcessResult) -> str:
    """The description of the failed steps' `GateClosedError`s (what the run page shows)."""
    return "\n".join(
        str(e.step_failure_data.user_failure_data.description)
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data and e.step_failure_data.user_failure_data
    ) or failure_text(result)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_a_passing_gate_approves_and_records_which_checks(tmp_path: Path, instance) -> None:
    suite = suite_over(tmp_path, wrong={1})
    result = run(suite, instance, tmp_path, gated(suite))
    assert result.success, failure_text(result)
    release = materialization(result, dg.AssetKey("release_approved"))
    assert release["gate_report"] == "evals/arith/eval_report"
    assert release["gate_checks_passed"] == "completeness, no_regression, threshold_exact_match"
    assert release["gate_run_id"] == result.run_id


def test_a_release_run_without_its_eval_refuses(tmp_path: Path, instance) -> None:
    suite = suite_over(tmp_path)
    first = run(suite, instance, tmp_path, gated(suite))
    assert first.success, failure_text(first)

    # The report passed, but in another run: this run proves nothing about the code it releases.
    again = run(suite, instance, tmp_path, gated(suite), selection="release_approved")
    assert not again.success
    assert materialized(again) == set()
    text = refusal(again)
    assert text.startswith(
        "release_approved refused to materialize: the blocking checks of eval report evals/arith/eval_report "
        f"did not pass in run {again.run_id}: no check of eval report evals/arith/eval_report was evaluated in "
        "this run: materialize the eval report in the same run as this asset; last materialized in run "
        + first.run_id
    ), text
    [failure] = [e for e in again.all_events if e.is_step_failure]
    assert (
        failure.step_failure_data.user_failure_data.metadata["gate_report"].value == "evals/arith/eval_report"
    )  # type: ignore[union-attr]


def test_a_failed_check_refuses_even_where_the_step_is_not_skipped(tmp_path: Path, instance) -> None:
    # Advisory checks do not skip the release step: the gate it names explicitly still holds.
    suite = suite_over(tmp_path, wrong={1, 2, 3}, blocking=False)
    result = run(suite, instance, tmp_path, gated(suite, checks=["threshold_exact_match", "completeness"]))
    assert "evals/arith/eval_report" in materialized(result)
    assert "release_approved" not in materialized(result)
    text = refusal(result)
    assert "threshold_exact_match FAILED: exact_match mean 0.7 is below the threshold 0.8" in text
    assert "completeness" not in text.split("did not pass in run")[1]  # it passed: not listed


def test_a_report_without_blocking_checks_gates_nothing_and_refuses(tmp_path: Path, instance) -> None:
    suite = suite_over(tmp_path, blocking=False)
    result = run(suite, instance, tmp_path, gated(suite))
    assert "release_approved" not in materialized(result)
    assert "declares no blocking checks, so nothing gates it" in refusal(result)


def test_each_partition_needs_its_own_passing_checks(tmp_path: Path, instance) -> None:
    versions = dg.DynamicPartitionsDefinition(name="versions")
    suite = suite_over(tmp_path, partitions_def=versions)
    instance.add_dynamic_partitions("versions", ["v1", "v2"])
    first = run(suite, instance, tmp_path, gated(suite), partition_key="v1")
    assert first.success, failure_text(first)
    assert materialization(first, dg.AssetKey("release_approved"))["gate_partitions"] == "v1"

    # v2's release alone: v1's passing checks do not approve it.
    other = run(suite, instance, tmp_path, gated(suite), selection="release_approved", partition_key="v2")
    assert "release_approved" not in materialized(other)
    assert "no check of eval report evals/arith/eval_report was evaluated in this run" in refusal(other)
    assert "for partition 'v2'" in refusal(other)

    # In a run of v1, asking for v2's checks finds only v1's.
    promote = gated(suite, name="promote_v2", partition="v2")
    mixed = run(suite, instance, tmp_path, promote, partition_key="v1")
    assert "promote_v2" not in materialized(mixed)
    assert "completeness was evaluated in this run only for partition v1, not 'v2'" in refusal(mixed)


def test_a_release_reexecuted_from_failure_reads_the_checks_of_the_run_it_reexecutes(
    tmp_path: Path, instance, monkeypatch
) -> None:
    pytest.importorskip("dagster_dask")  # the job's module also defines the Dask executor
    from tests import dask_defs

    for name, value in {
        "SHARD_TEST_SOURCE": str(write_jsonl(tmp_path / "rows.jsonl", qa_rows(12))),
        "SHARD_TEST_DB": f"sqlite:///{tmp_path / 'evals.sqlite'}",
        "SHARD_TEST_EXECUTOR": "in_process",
        "SHARD_TEST_RELEASE_FAILS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with dg.execute_job(dask_defs.reconstructable_release_job(), instance, raise_on_error=False) as first:
        assert not first.success
        parent = first.run_id
    assert "release_approved" not in {e.asset_key.path[-1] for e in first.get_asset_materialization_events()}

    # Only the release step runs again; its gate passed in the run it re-executes.
    monkeypatch.delenv("SHARD_TEST_RELEASE_FAILS")
    options = dg.ReexecutionOptions.from_failure(parent, instance)
    with dg.execute_job(
        dask_defs.reconstructable_release_job(), instance, reexecution_options=options, raise_on_error=False
    ) as second:
        assert second.success, [e.message for e in second.all_events if e.is_failure]
        steps = {e.step_key for e in second.all_events if e.is_step_start}
        assert steps == {"release_approved"}
        [release] = [
            e.materialization
            for e in second.get_asset_materialization_events()
            if e.materialization.asset_key == dg.AssetKey("release_approved")
        ]
        assert release.metadata["gate_run_id"].value == parent


def test_a_partitioned_report_needs_a_partition(tmp_path: Path, instance) -> None:
    versions = dg.DynamicPartitionsDefinition(name="versions")
    suite = suite_over(tmp_path, partitions_def=versions)

    @dg.asset(deps=[suite.eval_report_key])
    def ship(context: dg.AssetExecutionContext) -> None:
        require_passing_gates(context, suite.eval_report_key)

    result = run(suite, instance, tmp_path, ship, selection="ship")
    assert refusal(result) == (
        "require_passing_gates: eval report evals/arith/eval_report is partitioned but ship runs without a "
        "partition: pass partition=<key>"
    )


def test_bad_arguments_are_one_clear_error(tmp_path: Path, instance) -> None:
    suite = suite_over(tmp_path)
    result = run(suite, instance, tmp_path, gated(suite, checks=["threshold_levenshtein"]))
    assert refusal(result) == (
        "require_passing_gates: eval report evals/arith/eval_report has no check 'threshold_levenshtein' "
        "(its checks: completeness, no_regression, threshold_exact_match)"
    )

    @dg.asset
    def lonely(context: dg.AssetExecutionContext) -> None:
        require_passing_gates(context, ["evals", "nowhere", "eval_report"])

    result = dg.materialize([lonely], instance=instance, raise_on_error=False)
    assert "no check of eval report evals/nowhere/eval_report was evaluated in this run" in refusal(result)
    assert refusal(result).endswith("; it was never materialized")

    @dg.asset
    def confused(context: dg.AssetExecutionContext) -> None:
        require_passing_gates(context, 42)

    result = dg.materialize([confused], instance=instance, raise_on_error=False)
    assert "report must be an EvalSuite, an AssetKey" in refusal(result)
    assert issubclass(GateClosedError, dg.Failure) and not issubclass(GateClosedError, ConfigError)
    assert GateClosedError("closed").allow_retries is False


def test_the_example_release_assets_are_gated() -> None:
    import definitions

    source = Path(definitions.__file__).read_text(encoding="utf-8")
    assert "require_passing_gates(context, support_bot_suite.eval_report_key)" in source
    assert "require_passing_gates(context, versioned_suite.eval_report_key)" in source
