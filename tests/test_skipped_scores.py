"""A scorer that returns None skipped the row: kept out of the mean and out of the error budget, counted
apart (`ScoreSummary.skipped`, `skipped/<scorer>` metadata), the same on every backend. Braintrust's SDK
defines a None score as skipped (braintrust `score.py`, `Score.score`); a trace read back from Braintrust
with `{"Maybe": None}` is therefore not a failed scorer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import EvalSuite
from dagster_evals.backends.braintrust import BraintrustResource
from dagster_evals.backends.local import LocalEvalResource
from dagster_evals.engine.models import DatasetRow, EvalRequest, PlatformFunction, content_hash
from dagster_evals.testing import BraintrustFake
from tests.conftest import (
    add_task,
    braintrust_platform,
    keywordsai_fake,
    keywordsai_resource,
    materialization,
    materialize_suite,
    qa_rows,
    write_jsonl,
)

ROWS = 6
BT_KEY = "bt-test-key"


def maybe(input: dict[str, Any], output: str, expected: str) -> float | None:
    """Scores even questions only; odd ones are skipped (None)."""
    return None if input["a"] % 2 else float(output == expected)


def broken(input: dict[str, Any], output: str, expected: str) -> float:
    """Fails on question 0: a real scorer error, next to the skips."""
    if input["a"] == 0:
        raise ValueError("cannot score q0")
    return 1.0


@pytest.fixture(params=["local", "braintrust", "keywordsai"])
def evals(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "local":
        yield LocalEvalResource(path=str(tmp_path / "evals.db"))
    elif request.param == "braintrust":
        with BraintrustFake(BT_KEY).serve() as server:
            yield BraintrustResource(api_key=BT_KEY, api_url=server.url, project="p", collect_git=False)
    else:
        with keywordsai_fake().serve() as server:
            yield keywordsai_resource(server.url)


def test_a_scorer_returning_none_is_skipped_not_an_error_on_every_backend(
    evals: Any, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS, wrong={2}))
    suite = EvalSuite(
        name="skips",
        source=source,
        key_field="id",
        task=add_task,
        scorers=[maybe, broken],
        baseline=None,
        max_errored_rows=1,
    )
    result = materialize_suite(suite, instance, evals)
    assert result.success
    report = materialization(result, suite.eval_report_key)
    # q1, q3, q5 skipped by `maybe`; q0 errored by `broken` (the only errored row).
    assert (report["details"]["scorer_errors"], report["rows_errored"], report["rows_scored"]) == (
        1,
        1,
        ROWS - 1,
    )
    assert report["skipped/maybe"] == 3
    assert "skipped/broken" not in report
    # The mean is over the rows `maybe` scored: q0 and q4 (right), q2 (wrong).
    assert report["details"]["scores_exact"]["maybe"]["mean"] == pytest.approx(2 / 3)


TASK = PlatformFunction(
    platform="braintrust",
    name="echo",
    spec={
        "inline_context": {"runtime": "python", "version": "3.11"},
        "code": "def handler(input):\n    return str(input)",
    },
)
# A platform-side scorer that skips odd inputs, as a Braintrust scorer may (score None).
SKIPPER = PlatformFunction(
    platform="braintrust",
    name="Maybe",
    spec={
        "inline_context": {"runtime": "python", "version": "3.11"},
        "code": "def handler(input, output):\n    return None if int(input) % 2 else 1.0",
    },
)


def test_braintrust_none_scores_from_a_platform_eval_are_skipped_not_scorer_errors() -> None:
    fake = BraintrustFake(BT_KEY)
    with fake.serve() as server:
        bt = braintrust_platform(server.url, BT_KEY)
        dataset = bt.ensure_dataset("ds")
        rows = [
            DatasetRow(
                id=f"r{i}", input=str(i), expected=str(i), content_hash=content_hash(str(i), str(i), {}, [])
            )
            for i in range(ROWS)
        ]
        bt.upsert_rows(dataset, rows)
        request = EvalRequest(name="maybe", snapshot=bt.snapshot(dataset), task=TASK, scorers=[SKIPPER])
        report = bt.run_eval(request)
        again = bt.get_eval_report(report.id)
    for read in (report, again):
        assert (read.scorer_errors, read.rows_errored, read.rows_scored) == (0, 0, ROWS)
        # Inline code scores under the name Braintrust gives inline functions.
        summary = read.scores["inline_code"]
        assert (summary.mean, summary.count, summary.skipped, summary.errors) == (
            1.0,
            ROWS // 2,
            ROWS // 2,
            0,
        )
