"""Progress lines: time-based (an injected clock, no sleeps), with done / total, rate, elapsed, ETA and errors,
for evals and dataset syncs, and visible in the Dagster run log while the step runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_evals import EvalSuite, LocalResource, build_eval_suite_definitions
from dagster_evals.engine.models import RowResult
from dagster_evals.engine.progress import ProgressReporter, format_duration, sync_progress, track_results
from tests.conftest import add_task, qa_rows, write_jsonl


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_are_time_based_not_per_n_rows() -> None:
    clock = FakeClock()
    lines: list[str] = []
    reporter = ProgressReporter("eval bot", 1000, log=lines.append, unit="row trials", clock=clock)
    for _ in range(400):  # 400 rows within 4 s: no line yet
        clock.now += 0.01
        reporter.advance()
    assert lines == []
    clock.now = 105.0  # 5 s after the start
    reporter.advance(errors=1)
    assert lines == ["eval bot: 401/1000 row trials (40%), 80.2/s, elapsed 5.0s, ETA 7.5s, 1 error"]
    clock.now = 106.0
    reporter.advance()
    assert len(lines) == 1  # less than interval_s since the last line
    clock.now = 110.0
    reporter.advance(errors=2)
    assert lines[-1] == "eval bot: 403/1000 row trials (40%), 40.3/s, elapsed 10.0s, ETA 14.8s, 3 errors"


def test_the_last_unit_logs_a_done_line_once() -> None:
    clock = FakeClock()
    lines: list[str] = []
    reporter = ProgressReporter("sync qa", 2, log=lines.append, clock=clock)
    clock.now += 1
    reporter.advance()
    clock.now += 1
    reporter.advance()
    reporter.finish()
    assert lines == ["sync qa: done, 2/2 rows, 1.0/s, elapsed 2.0s"]


def test_unknown_total_has_no_eta_and_finish_reports_a_partial_run() -> None:
    clock = FakeClock()
    lines: list[str] = []
    reporter = ProgressReporter("eval x", None, log=lines.append, clock=clock, interval_s=2)
    clock.now += 2
    reporter.advance(3)
    assert lines == ["eval x: 3 rows, 1.5/s, elapsed 2.0s"]
    clock.now += 1
    reporter.finish()
    assert lines[-1] == "eval x: done, 3/3 rows, 1.0/s, elapsed 3.0s"


def test_durations_read_well() -> None:
    assert [format_duration(s) for s in (9.84, 125, 3720)] == ["9.8s", "2m05s", "1h02m"]


def test_track_results_counts_task_and_scorer_errors() -> None:
    clock = FakeClock()
    lines: list[str] = []
    seen: list[RowResult] = []
    on_result = track_results(seen.append, total=3, what="eval e", log=lines.append, clock=clock)
    clock.now += 1
    on_result(RowResult(row_id="a"))
    on_result(RowResult(row_id="b", error="TimeoutError: row took longer than 60s"))
    on_result(RowResult(row_id="c", scorer_errors={"levenshtein": "boom"}))
    assert [r.row_id for r in seen] == ["a", "b", "c"]
    assert lines == ["eval e: done, 3/3 row trials, 3.0/s, elapsed 1.0s, 2 errors"]


def test_sync_progress_turns_backend_counts_into_timed_lines_and_passes_other_messages() -> None:
    clock = FakeClock()
    lines: list[str] = []
    report = sync_progress(lines.append, total=1000, what="sync qa", clock=clock)
    report("deleting 3 replaced rows")
    clock.now += 1
    report("wrote 500/1000 rows (1.0s elapsed, ETA 1.0s)")
    clock.now += 5
    report("wrote 900/1000 rows (6.0s elapsed, ETA 0.7s)")
    clock.now += 1
    report("wrote 1000/1000 rows (7.0s elapsed, ETA 0.0s)")
    assert lines == [
        "deleting 3 replaced rows",
        "sync qa: 900/1000 rows (90%), 150.0/s, elapsed 6.0s, ETA 0.7s",
        "sync qa: done, 1000/1000 rows, 142.9/s, elapsed 7.0s",
    ]


def test_eval_and_sync_progress_show_in_the_dagster_run_log(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    write_jsonl(tmp_path / "rows.jsonl", qa_rows(12))
    suite = EvalSuite(
        name="progress",
        source=tmp_path / "rows.jsonl",
        task=add_task,
        scorers=["exact_match"],
        key_field="id",
    )
    resource = LocalResource(path=str(tmp_path / "evals.sqlite"), batch_size=5)
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite), dg.Definitions(resources={"evals": resource})
    )
    result = defs.resolve_job_def("progress_eval_job").execute_in_process(instance=instance)
    assert result.success
    messages = [
        record.user_message
        for record in instance.all_logs(result.run_id)
        if record.step_key is not None and record.user_message
    ]
    assert any(m.startswith("sync progress: done, 12/12 rows") for m in messages), messages
    assert any(m.startswith("eval progress-") and ": done, 12/12 row trials" in m for m in messages), messages
