"""What the UI shows for an eval report: `score/*` first, floats rounded for display with the exact values
kept beside them, a table of the rows that regressed or errored, numeric versions, platform links and a
failed check's reason."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import EvalSuite, LocalResource, build_eval_suite_definitions
from dagster_evals.metadata import (
    display_float,
    lineage_metadata,
    report_metadata,
    rounded_for_display,
    row_changes_metadata,
)
from dagster_evals.models import DatasetRef, EvalReport, ScoreSummary
from tests.conftest import qa_rows, write_jsonl

BROKEN: set[int] = set()
FAILING: set[int] = set()


def flaky_add(input: dict[str, Any]) -> str:
    if input["a"] in FAILING:
        raise RuntimeError(f"model timed out on a={input['a']}")
    return str(input["a"] + input["b"] + (1 if input["a"] in BROKEN else 0))


def a_report(**overrides: Any) -> EvalReport:
    fields: dict[str, Any] = {
        "id": "r1",
        "name": "bot-1",
        "platform": "braintrust",
        "dataset": DatasetRef(
            platform="braintrust", id="d1", name="bot", url="https://bt.example/datasets/d1"
        ),
        "dataset_version": "7",
        "rows_in_snapshot": 3,
        "rows_scored": 3,
        "scores": {
            "levenshtein": ScoreSummary(
                name="levenshtein", mean=2 / 3, count=3, baseline_mean=0.7, diff=2 / 3 - 0.7
            ),
            "exact_match": ScoreSummary(name="exact_match", mean=1 / 3, count=3),
        },
        "metrics": {"duration_s": 1.25, "latency_p50_s": 0.1},
        "url": "https://bt.example/experiments/r1",
    }
    fields.update(overrides)
    return EvalReport(**fields)


def test_scores_come_first_in_report_order_rounded_for_display_with_exact_values_kept() -> None:
    metadata = report_metadata(a_report(metrics={"duration_s": 1.25, "latency_p50_ms": 123.456789}))
    keys = list(metadata)
    assert keys[:2] == ["score/levenshtein", "score/exact_match"]
    assert keys.index("diff/levenshtein") > keys.index("rows_errored")
    assert keys.index("duration_s") > keys.index("diff/levenshtein")
    # What the UI prints and plots: six significant digits.
    assert metadata["score/levenshtein"] == 0.666667
    assert metadata["score/exact_match"] == 0.333333
    assert metadata["diff/levenshtein"] == -0.0333333
    assert metadata["latency_p50_ms"] == 123.457
    assert metadata["duration_s"] == 1.25
    # The exact values stay beside them.
    exact = metadata["scores_full_precision"].data
    assert exact["levenshtein"] == {"mean": 2 / 3, "baseline_mean": 0.7, "diff": 2 / 3 - 0.7}
    assert exact["exact_match"] == {"mean": 1 / 3}
    summary = metadata["summary"].value
    assert "| levenshtein | 0.6667 | 0.7000 | -0.0333 |" in summary
    assert "0.666666" not in summary


def test_display_rounding_keeps_integers_flags_and_non_finite_values() -> None:
    rounded = rounded_for_display(
        {
            "rows": 3,
            "ok": True,
            "nan": math.nan,
            "big": 123456789.0,
            "tiny": 1.23456789e-9,
            "text": "0.123456789",
        }
    )
    assert rounded["rows"] == 3 and rounded["ok"] is True and rounded["text"] == "0.123456789"
    assert math.isnan(rounded["nan"])
    assert rounded["big"] == 123457000.0 and rounded["tiny"] == 1.23457e-9
    assert display_float(math.inf) == math.inf


def test_links_to_the_experiment_and_dataset_and_numeric_versions() -> None:
    metadata = report_metadata(a_report())
    assert metadata["experiment_url"] == dg.MetadataValue.url("https://bt.example/experiments/r1")
    assert metadata["dataset_url"] == dg.MetadataValue.url("https://bt.example/datasets/d1")
    assert metadata["dataset_version"] == "7"
    assert metadata["dataset_version_number"] == 7
    text_version = report_metadata(a_report(dataset_version="1700000000-abc"))
    assert "dataset_version_number" not in text_version


def test_lineage_versions_are_numbers_when_they_are_numbers() -> None:
    assert lineage_metadata(dataset_version="12", prompt_version="v3", git_sha="f" * 40) == {
        "lineage/dataset_version": 12,
        "lineage/prompt_version": "v3",
        "lineage/git_sha": "f" * 40,
    }


def test_rows_to_review_lists_errors_then_the_biggest_drops_with_links() -> None:
    table = row_changes_metadata(
        a_report(),
        {"q1": {"em": 0.0, "lev": 0.9}, "q2": {"em": 0.5}, "q3": {"em": 1.0}},
        {"q1": {"em": 1.0, "lev": 1.0}, "q2": {"em": 1.0}, "q3": {"em": 1.0}},
        {"q9": "RuntimeError: boom"},
        limit=3,
    )
    assert table["rows_regressed"] == 3
    records = [r.data for r in table["rows_to_review"].records]
    assert [(r["row_id"], r["change"], r["scorer"]) for r in records] == [
        ("q9", "errored", ""),
        ("q1", "regressed", "em"),
        ("q2", "regressed", "em"),
    ]
    assert records[1]["drop"] == 1.0 and records[1]["baseline"] == 1.0
    assert records[0]["error"] == "RuntimeError: boom"
    assert {r["link"] for r in records} == {"https://bt.example/experiments/r1"}
    assert row_changes_metadata(a_report(), {"q1": {"em": 1.0}}, {"q1": {"em": 1.0}}, {}) == {}


@pytest.fixture
def reset_task():
    BROKEN.clear()
    FAILING.clear()
    yield
    BROKEN.clear()
    FAILING.clear()


def run_once(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("meta_eval_job").execute_in_process(instance=instance, raise_on_error=False)


def report_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key.path[-1] == "eval_report":
            return dict(event.materialization.metadata)
    raise AssertionError("no eval report")


def test_a_real_run_tables_the_rows_that_regressed_or_errored(
    tmp_path: Path, instance: dg.DagsterInstance, reset_task: None
) -> None:
    write_jsonl(tmp_path / "rows.jsonl", qa_rows(6))
    suite = EvalSuite(
        name="meta",
        source=tmp_path / "rows.jsonl",
        task=flaky_add,
        scorers=["exact_match"],
        key_field="id",
        thresholds={"exact_match": 0.9},
    )
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(resources={"evals": LocalResource(path=str(tmp_path / "e.sqlite"))}),
    )
    first = report_of(run_once(defs, instance))
    assert "rows_to_review" not in first
    assert first["dataset_version_number"].value == 1
    BROKEN.update({1, 4})
    FAILING.add(2)
    result = run_once(defs, instance)
    second = report_of(result)
    records = [r.data for r in second["rows_to_review"].value.records]
    assert [(r["row_id"], r["change"]) for r in records] == [
        ("q2", "errored"),
        ("q1", "regressed"),
        ("q4", "regressed"),
    ]
    assert "model timed out on a=2" in records[0]["error"]
    failed = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert "threshold_exact_match" in failed
    assert "is below the threshold 0.9000" in (failed["threshold_exact_match"].description or "")
    # exact_match is 3/5 here (the errored row scores nothing): the same value in the check and the report.
    assert failed["threshold_exact_match"].metadata["score"].value == 0.6
    assert second["scores_full_precision"].value["exact_match"]["mean"] == 0.6
