"""`row_timeout_s` bounds a wedged scorer when `scorer_timeout_s` is not set: a user who sets a one-second
row timeout never waits five minutes per wedged scorer call. An explicit `scorer_timeout_s` still wins."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import ConfigError, DatasetRow, RowResult, run_eval_locally
from dagster_evals.backends.local import LocalEvalResource
from dagster_evals.engine.scorers import resolve_local_scorers
from tests.conftest import arith_suite, materialization, materialize_suite, qa_rows, write_jsonl

# Longer than any bound under test, far shorter than the 300 s scorer default: a run that ends within it
# was bounded by the row timeout (the wedged scorer is released only after it; the run itself takes seconds,
# and 2 minutes leaves room for a loaded machine).
RUN_LIMIT_S = 120.0


def rows(n: int) -> list[DatasetRow]:
    return [DatasetRow.build(input=i, expected=str(i), id=f"r{i}") for i in range(n)]


class Wedge:
    """A scorer that never answers until the test releases it (so no thread outlives the test)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, output: Any) -> float:
        self.release.wait(600)
        return 1.0


def run_in_thread(**kwargs: Any) -> tuple[list[RowResult], Any, float]:
    """`run_eval_locally` on 3 rows with a wedged scorer; fails the test (instead of hanging it) when the
    run outlives `RUN_LIMIT_S`."""
    wedge = Wedge()
    wedge.__name__ = "wedged"  # type: ignore[attr-defined]
    results: list[RowResult] = []
    outcome: dict[str, Any] = {}

    def run() -> None:
        scorers = resolve_local_scorers(["exact_match", wedge])
        outcome["stats"] = run_eval_locally(rows(3), str, scorers, results.append, **kwargs)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(RUN_LIMIT_S)
    elapsed = time.monotonic() - started
    wedge.release.set()
    assert not thread.is_alive(), f"a wedged scorer held the run past {RUN_LIMIT_S}s with {kwargs}"
    return results, outcome["stats"], elapsed


def test_a_wedged_scorer_is_bounded_by_the_row_timeout_when_no_scorer_timeout_is_set() -> None:
    results, stats, elapsed = run_in_thread(row_timeout_s=1)
    assert len(results) == 3 and stats.scorer_timeouts == 3
    for result in results:
        assert result.error is None and result.scores == {"exact_match": 1.0}
        error = result.scorer_errors["wedged"]
        assert error.startswith("TimeoutError: the scorer took longer than 1s (row_timeout_s:")
        assert "set scorer_timeout_s" in error
    assert elapsed < 10


def test_an_explicit_scorer_timeout_wins_over_the_row_timeout() -> None:
    results, stats, _ = run_in_thread(row_timeout_s=30, scorer_timeout_s=0.5)
    assert stats.scorer_timeouts == 3
    assert {r.scorer_errors["wedged"] for r in results} == {"TimeoutError: the scorer took longer than 0.5s"}


@pytest.mark.parametrize("value", ["soon", float("nan"), -1, True])
def test_a_bad_scorer_timeout_is_refused_before_anything_runs(value: Any) -> None:
    ran: list[int] = []
    with pytest.raises(ConfigError, match="scorer_timeout_s"):
        run_eval_locally(rows(1), ran.append, [], lambda r: None, row_timeout_s=1, scorer_timeout_s=value)
    assert ran == []


def test_a_suite_with_a_row_timeout_reports_the_wedged_scorer_through_dagster(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    wedge = Wedge()
    wedge.__name__ = "wedged"  # type: ignore[attr-defined]
    suite = arith_suite(
        write_jsonl(tmp_path / "rows.jsonl", qa_rows(2)),
        scorers=["exact_match", wedge],
        row_timeout_s=1,
        baseline=None,
        max_errored_rows=2,
    )
    outcome: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault(
            "result", materialize_suite(suite, instance, LocalEvalResource(path=str(tmp_path / "e.db")))
        ),
        daemon=True,
    )
    thread.start()
    thread.join(RUN_LIMIT_S)
    wedge.release.set()
    assert not thread.is_alive(), "the wedged scorer held the Dagster run past its row timeout"
    report = materialization(outcome["result"], suite.eval_report_key)
    assert (report["details"]["scorer_errors"], report["rows_errored"]) == (2, 2)
    assert report["score/exact_match"] == 1.0
