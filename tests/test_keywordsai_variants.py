"""The Keywords AI client against each published variant of the shapes its sources disagree on, served by
the fake (see `dagster_evals.testing.keywordsai.filters` and `.evals`):

- dataset-log metadata filters honoured as `metadata.<key>` only, `metadata__<key>` only, or both: a sync
  that removes and replaces rows leaves exactly the source rows, and the spelling that worked is reused;
- `eval-reports/create` taking `evaluator_slugs` only, `evaluator_ids` only, or both: the eval runs, with one
  refused create at most per run;
- a new eval run missing from the listing for its first polls: pending, not an error.

Each runs through `dg.materialize` against the fake over real HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import DatasetRow, EvalSuite, PlatformFunction
from tests.conftest import (
    add_task,
    failure_text,
    keywordsai_fake,
    keywordsai_resource,
    materialization,
    materialize_suite,
    qa_rows,
    write_jsonl,
)

EXACT = PlatformFunction(platform="keywordsai", name="exact_match_eval")
ROWS = 12
LOG_LISTS = "POST /api/datasets/{dataset_id}/logs/list/"
CREATES = (
    "POST /api/datasets/{dataset_id}/eval-reports/create",
    "POST /api/datasets/{dataset_id}/eval-reports/create/",
)


def suite(source: Path, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "name": "kwv",
        "source": source,
        "key_field": "id",
        "task": add_task,
        "scorers": [EXACT],
        "baseline": None,
    }
    return EvalSuite(**(options | overrides))


def stored(fake: Any, name: str) -> dict[str, Any]:
    [dataset] = [d for d in fake.datasets.values() if d["name"] == name]
    logs = fake.dataset_logs(dataset["id"])
    return {log["metadata"]["dagster_evals_row_id"]: log["expected_output"] for log in logs}


@pytest.mark.parametrize("syntax", ["both", "dotted", "double_underscore"])
def test_a_sync_removes_and_replaces_rows_whichever_metadata_filter_spelling_the_server_honours(
    syntax: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    fake = keywordsai_fake(metadata_syntax=syntax, delete_lag=0)
    rows = qa_rows(ROWS)
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    s = suite(source)
    with fake.serve() as server:
        resource = keywordsai_resource(server.url)
        assert materialize_suite(s, instance, resource, selection=[s.dataset_key]).success
        for round_, (removed, changed) in enumerate([(3, 5), (8, 9)]):
            rows = [r for r in rows if r["id"] != f"q{removed}"]
            for row in rows:
                if row["id"] == f"q{changed}":
                    row["expected"] = f"changed-{round_}"
            write_jsonl(source, rows)
            result = materialize_suite(s, instance, resource, selection=[s.dataset_key], raise_on_error=False)
            assert result.success, failure_text(result)
            synced = materialization(result, s.dataset_key)
            assert (synced["rows_removed"], synced["rows_updated"]) == (1, 1)
            assert stored(fake, "kwv") == {r["id"]: r["expected"] for r in rows}


@pytest.mark.parametrize("syntax", ["dotted", "double_underscore"])
def test_the_spelling_that_matched_is_remembered_by_the_platform(syntax: str) -> None:
    fake = keywordsai_fake(metadata_syntax=syntax, delete_lag=0)
    with fake.serve() as server:
        platform = keywordsai_resource(server.url).get_platform()
        dataset = platform.ensure_dataset("kwr")
        rows = [DatasetRow.build(input=i, expected=str(i), id=f"r{i}") for i in range(4)]
        platform.upsert_rows(dataset, rows)
        lists = []
        for row_id in ("r0", "r1"):
            before = fake.requests[LOG_LISTS]
            platform.delete_rows(dataset, [row_id])
            lists.append(fake.requests[LOG_LISTS] - before)
        assert platform.count_rows(dataset) == 2
        assert sorted(log["metadata"]["dagster_evals_row_id"] for log in fake.dataset_logs(dataset.id)) == [
            "r2",
            "r3",
        ]
    # The first removal found the spelling (a look at one log, then counts); the second only waits.
    assert lists[1] < lists[0]


@pytest.mark.parametrize(
    ("accepts", "shape"), [("both", "spec"), ("slugs", "spec"), ("ids", "spec"), ("ids", "docs")]
)
def test_an_eval_report_starts_whichever_evaluator_form_the_server_takes(
    accepts: str, shape: str, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    fake = keywordsai_fake(eval_report_evaluators=accepts, eval_report_shape=shape)
    s = suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(4, wrong={1})))
    with fake.serve() as server:
        resource = keywordsai_resource(server.url)
        for run in range(2):
            result = materialize_suite(s, instance, resource, raise_on_error=False)
            assert result.success, failure_text(result)
            report = materialization(result, s.eval_report_key)
            assert report["score/exact_match_eval"] == pytest.approx(0.75)
            # Slugs first, refused once per run where only ids are taken; then the ids.
            assert sum(fake.requests[c] for c in CREATES) == (2 if accepts == "ids" else 1) * (run + 1)
    assert sum(len(reports) for reports in fake.reports.values()) == 2, "an eval run started twice"


def test_an_eval_run_not_listed_on_the_first_polls_after_create_is_pending(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    fake = keywordsai_fake(eval_report_list_lag=3)
    s = suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(4)))
    with fake.serve() as server:
        result = materialize_suite(s, instance, keywordsai_resource(server.url), raise_on_error=False)
    assert result.success, failure_text(result)
    report = materialization(result, s.eval_report_key)
    assert report["score/exact_match_eval"] == 1.0 and report["rows_scored"] == 4


def test_an_eval_run_never_listed_fails_at_the_deadline_naming_it(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    fake = keywordsai_fake(eval_report_list_lag=10_000)
    s = suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(2)))
    with fake.serve() as server:
        resource = keywordsai_resource(server.url, eval_timeout_s=1.0)
        result = materialize_suite(s, instance, resource, raise_on_error=False)
    assert not result.success
    assert "is not among the dataset's eval runs 1s after it was started (eval_timeout_s)" in failure_text(
        result
    )
