"""What the UI shows for an eval report, through real runs: few entries, one name per fact, plotted only
where they vary; the rows to review with their input, output, expected value, scores and the judge's
reason, headed "N of M"; regressed rows counted as rows; run links; one rounding rule."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from autoevals.score import Score

from dagster_evals import EvalSuite, LocalResource, build_eval_suite_definitions
from dagster_evals.engine.models import EvalReport, ScoreSummary
from dagster_evals.engine.review import REVIEW_ROWS
from dagster_evals.metadata import display_float, format_number, report_markdown, rounded_for_display
from tests.conftest import qa_rows, write_jsonl

BROKEN: set[int] = set()
FAILING: set[int] = set()


def flaky_add(input: dict[str, Any]) -> str:
    if input["a"] in FAILING:
        raise RuntimeError(f"model timed out on a={input['a']}")
    return str(input["a"] + input["b"] + (1 if input["a"] in BROKEN else 0))


def graded(output: str, expected: str) -> Score:
    """A judge-like scorer: a partial score and its rationale, as autoevals' LLM judges return them."""
    if output == expected:
        return Score(name="graded", score=1.0, metadata={"rationale": "The answer matches."})
    return Score(
        name="graded", score=0.25, metadata={"rationale": f"The submission says {output}, not {expected}."}
    )


def test_one_rounding_rule_in_entries_tables_and_descriptions() -> None:
    assert display_float(2 / 3) == 0.6667 and format_number(2 / 3) == "0.6667"
    assert (
        format_number(-1 / 30, signed=True) == "-0.03333"
        and format_number(0.00123456, usd=True) == "$0.001235"
    )
    rounded = rounded_for_display(
        {"rows": 3, "ok": True, "nan": math.nan, "big": 123456789.0, "text": "0.1234567"}
    )
    assert rounded["rows"] == 3 and rounded["ok"] is True and rounded["text"] == "0.1234567"
    assert math.isnan(rounded["nan"]) and rounded["big"] == 123500000.0
    report = EvalReport(
        id="r", name="r", platform="local",
        scores={"em": ScoreSummary(name="em", mean=2 / 3, count=3, baseline_mean=0.7, diff=2 / 3 - 0.7)},
        usage={"total": {"cost_usd": 0.0123456}},
    )  # fmt: skip
    summary = report_markdown(report)
    assert "| em | 0.6667 | 0.7 | -0.03333 |" in summary
    assert "$0.01235 (USD)" in summary


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


def suite_defs(tmp_path: Path, **overrides: Any) -> dg.Definitions:
    options: dict[str, Any] = {
        "name": "meta",
        "source": tmp_path / "rows.jsonl",
        "task": flaky_add,
        "scorers": ["exact_match", graded],
        "key_field": "id",
        "thresholds": {"exact_match": 0.9},
        "max_regression": 0.05,
        "max_errored_rows": 3,
        **overrides,
    }
    return dg.Definitions.merge(
        build_eval_suite_definitions(EvalSuite(**options)),
        dg.Definitions(resources={"evals": LocalResource(path=str(tmp_path / "e.sqlite"))}),
    )


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {str(e.check_name): e for e in result.get_asset_check_evaluations()}


def test_a_report_without_baseline_shows_its_worst_rows_with_output_and_the_judges_reason(
    tmp_path: Path, instance: dg.DagsterInstance, reset_task: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_EVALS_REPORTS_DIR", str(tmp_path / "html"))
    write_jsonl(tmp_path / "rows.jsonl", qa_rows(6))
    BROKEN.update({1, 4})
    FAILING.add(3)
    result = run_once(suite_defs(tmp_path), instance)
    report = report_of(result)
    assert len(report) <= 25
    assert "baseline_id" not in report and "rows_regressed" not in report
    table = report["rows_to_review"].value
    assert table.startswith("**Rows to review: 3 of 3** (errored or below 1 on a scorer, of 6 rows;")
    lines = [line for line in table.splitlines() if line.startswith("| q")]
    # One line per row (not per scorer): the errored row first, then the lowest scores.
    assert [line.split(" | ")[0] for line in lines] == ["| q3", "| q1", "| q4"]
    assert "error: RuntimeError: model timed out on a=3" in lines[0]
    row, question, output, expected, exact, judged, reason = [c.strip(" |") for c in lines[1].split(" | ")]
    assert (row, output, expected, exact, judged) == ("q1", "4", "3", "0", "0.25")
    assert '"a": 1' in question
    assert reason == "graded: The submission says 4, not 3."
    # The producing run is a run link; the HTML report is linked.
    assert report["dagster_run_id"] == dg.MetadataValue.dagster_run(result.run_id)
    assert Path(report["html_report"].value).is_file()


def test_metadata_is_few_entries_one_name_per_fact_and_plots_only_what_varies(
    tmp_path: Path, instance: dg.DagsterInstance, reset_task: None
) -> None:
    write_jsonl(tmp_path / "rows.jsonl", qa_rows(6))
    defs = suite_defs(tmp_path)
    first_result = run_once(defs, instance)
    first = report_of(first_result)
    BROKEN.update({1, 4})
    FAILING.add(2)
    result = run_once(defs, instance)
    second = report_of(result)
    assert len(second) <= 25
    plotted = {k for k, v in second.items() if isinstance(v, dg.FloatMetadataValue | dg.IntMetadataValue)}
    assert plotted == {
        "score/exact_match", "score/graded", "diff/exact_match", "diff/graded", "rows_scored", "rows_errored",
        "rows_in_snapshot", "rows_regressed", "duration_s", "latency_p50_ms", "latency_p95_ms",
    }  # fmt: skip
    for gone in ("trial_count", "dataset_version_number", "snapshot_version", "lineage/dataset_version",
                 "snapshot_data_version", "gate", "baseline", "task_errors", "scores_full_precision"):  # fmt: skip
        assert gone not in second
    details = second["details"].value
    assert details["trial_count"] == 1 and details["gate"] == "FAILED: threshold_exact_match, no_regression"
    assert details["dataset"]["version"] == second["dataset_version"].value
    assert details["scores_exact"]["exact_match"]["mean"] == 0.6  # 3 of 5 scored rows right
    # Rows, not (row, scorer) pairs: q1 and q4 fell on both scorers.
    assert second["rows_regressed"].value == 2 and details["pairs_regressed"] == 4
    table = second["rows_to_review"].value
    assert (
        "**Regressed rows: 2 of 2** (baseline → now, biggest drop first; 4 (row, scorer) pairs fell)" in table
    )
    regressed = table.split("**Regressed rows")[1]
    assert "| q1 |" in regressed and "| 1 → 0 | 1 → 0.25 |" in regressed
    # Links: this run, the baseline and the baseline's run.
    assert second["baseline_id"].value == first["report_id"].value
    assert second["baseline_run"] == dg.MetadataValue.dagster_run(first_result.run_id)
    assert second["gate_passed"].value is False
    checks = checks_of(result)
    regression = checks["no_regression"]
    assert regression.metadata["allowed_drop/exact_match"].value == 0.05
    assert regression.metadata["baseline_id"].value == first["report_id"].value
    assert regression.metadata["baseline_run"] == dg.MetadataValue.dagster_run(first_result.run_id)
    threshold = checks["threshold_exact_match"]
    assert "mean 0.6 is below the threshold 0.9" in (threshold.description or "")
    assert threshold.metadata["score"].value == 0.6


def test_the_table_says_how_many_rows_it_leaves_out(
    tmp_path: Path, instance: dg.DagsterInstance, reset_task: None
) -> None:
    write_jsonl(tmp_path / "rows.jsonl", qa_rows(REVIEW_ROWS + 5))
    BROKEN.update(range(REVIEW_ROWS + 3))
    report = report_of(run_once(suite_defs(tmp_path, max_regression=None), instance))
    table = report["rows_to_review"].value
    assert table.startswith(f"**Rows to review: {REVIEW_ROWS} of {REVIEW_ROWS + 3}**")
    assert sum(1 for line in table.splitlines() if line.startswith("| q")) == REVIEW_ROWS


def test_the_documented_examples_run() -> None:
    import doctest

    from dagster_evals import translator
    from dagster_evals.engine import formatting, review, scorers

    for module in (formatting, review, scorers, translator):
        outcome = doctest.testmod(module)
        assert outcome.attempted > 0 and outcome.failed == 0, module.__name__


def test_an_llm_judges_rationale_reaches_the_report_also_from_its_cache(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_evals.testing.openai import OpenAIFake, ToolCall

    fake = OpenAIFake(api_key="sk-review-key-123456")
    fake.add_rule(
        contains="[Expert]: 4\n", reply=ToolCall("select_choice", {"reasons": "Same.", "choice": "C"})
    )
    fake.add_rule(
        contains="[Expert]:",
        reply=ToolCall(
            "select_choice", {"reasons": "The submission says 4; the expert disagrees.", "choice": "D"}
        ),
    )
    rows = [{"id": f"r{i}", "input": f"What is 2 + {i}?", "expected": str(2 + i)} for i in range(3)]
    suite = EvalSuite(
        name="judged", source=write_jsonl(tmp_path / "rows.jsonl", rows), key_field="id",
        task=lambda input: "4", scorers=["factuality"], baseline=None,
    )  # fmt: skip
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(resources={"evals": LocalResource(path=str(tmp_path / "e.sqlite"))}),
    )
    # The report of a suite with an LLM judge carries the `openai` kind.
    assert "openai" in defs.resolve_asset_graph().get(suite.eval_report_key).kinds
    with fake.serve() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url(server))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-review-key-123456")
        monkeypatch.setenv("DAGSTER_EVALS_DATABASE_URL", f"sqlite:///{tmp_path / 'cache.sqlite'}")
        for _ in range(2):  # the second run is served from the judge cache
            job = defs.resolve_job_def("judged_eval_job")
            table = report_of(job.execute_in_process(instance=instance, raise_on_error=False))[
                "rows_to_review"
            ].value
            assert table.startswith("**Rows to review: 2 of 2**")
            assert (
                "| r0 | What is 2 + 0? | 4 | 2 | 0 | factuality: The submission says 4; the expert disagrees. |"
                in table
            )
    assert fake.requests["POST /v1/chat/completions"] == 3
