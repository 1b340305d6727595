"""Eval memory is bounded by concurrency, not dataset size: the eval pulls the snapshot's rows lazily, and
the report built from spilled per-row values equals the report of the in-memory computation it replaces
(reference implementation below), field by field and bit for bit."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dagster_evals import EvalSuite
from dagster_evals.backends.local import datasets as local_datasets
from dagster_evals.backends.local.platform import LocalPlatform
from dagster_evals.engine import report_spill
from dagster_evals.engine.models import (
    DatasetRef,
    DatasetRow,
    EvalReport,
    EvalRequest,
    RowResult,
    RunRow,
    ScoreSummary,
)
from dagster_evals.engine.summary import ROW_CHANGE_EPSILON, ReportBuilder, percentile
from dagster_evals.engine.usage import TASK_SCOPE
from dagster_evals.engine.usage_report import UsageTotals
from dagster_evals.sharding import shard_of, shard_rows
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.conftest import (
    keywordsai_fake,
    keywordsai_resource,
    materialization,
    materialize_suite,
    qa_rows,
    write_jsonl,
)

SCORERS = ["exact_match", "judge"]


# -- the in-memory computation the spilled report must equal (dicts and lists of every row) -------------
def reference_report(
    results: list[RowResult],
    baseline: Mapping[str, Mapping[str, float]] | None,
    scorers: list[str] = SCORERS,
    **fields: Any,
) -> EvalReport:
    row_scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    scorer_errors: dict[str, int] = defaultdict(int)
    skipped: dict[str, int] = defaultdict(int)  # results a scorer returned None for (not an error)
    seen: set[str] = set()
    errored: set[str] = set()
    task_errors = scorer_error_count = 0
    latencies: list[float] = []
    totals = UsageTotals()
    for r in results:
        seen.add(r.row_id)
        if r.usage:
            totals.add(r.usage, r.error)
        if r.latency_s is not None and r.error is None:
            latencies.append(r.latency_s)
        if r.error is not None:
            task_errors += 1
            errored.add(r.row_id)
            continue
        for name, value in r.scores.items():
            if value is not None:
                row_scores[r.row_id][name].append(value)
            elif name not in r.scorer_errors:
                skipped[name] += 1
        for name in r.scorer_errors:
            scorer_errors[name] += 1
            scorer_error_count += 1
            errored.add(r.row_id)
    means = {row: {n: sum(v) / len(v) for n, v in s.items() if v} for row, s in row_scores.items()}
    summaries = {}
    for scorer in scorers:
        values = [s[scorer] for s in means.values() if scorer in s]
        mean = sum(values) / len(values) if values else None
        baseline_mean = None
        improvements = regressions = 0
        if baseline:
            base_values = [s[scorer] for s in baseline.values() if scorer in s]
            baseline_mean = sum(base_values) / len(base_values) if base_values else None
            for row_id, scores in means.items():
                before = baseline.get(row_id, {}).get(scorer)
                if before is None or scorer not in scores:
                    continue
                if scores[scorer] > before + ROW_CHANGE_EPSILON:
                    improvements += 1
                elif scores[scorer] < before - ROW_CHANGE_EPSILON:
                    regressions += 1
        summaries[scorer] = ScoreSummary(
            name=scorer,
            mean=mean,
            count=len(values),
            errors=scorer_errors.get(scorer, 0),
            skipped=skipped.get(scorer, 0),
            baseline_mean=baseline_mean,
            diff=mean - baseline_mean if mean is not None and baseline_mean is not None else None,
            improvements=improvements,
            regressions=regressions,
        )
    metrics = {"duration_s": 1.0}
    if latencies:
        metrics["latency_p50_ms"] = round(percentile(latencies, 0.5) * 1000, 3)  # type: ignore[operator]
        metrics["latency_p95_ms"] = round(percentile(latencies, 0.95) * 1000, 3)  # type: ignore[operator]
    return EvalReport(
        rows_scored=len(seen) - len(errored),
        rows_errored=len(errored),
        task_errors=task_errors,
        scorer_errors=scorer_error_count,
        scores=summaries,
        metrics=metrics,
        usage=totals.report(),
        **fields,
    )


def random_results(seed: int, rows: int, trials: int) -> list[RowResult]:
    """Results with task errors, scorer errors, None scores, usage and judge latencies, trials of a row
    arriving interleaved with other rows (as concurrent runs deliver them)."""
    rng = random.Random(seed)
    results = []
    for i in range(rows):
        for trial in range(trials):
            roll = rng.random()
            usage = {
                "scopes": {
                    TASK_SCOPE: {"calls": 1, "total_tokens": 10, "latencies_s": [rng.random()]},
                    "judge": {"calls": 2, "cost_usd": 0.001, "latencies_s": [rng.random(), rng.random()]},
                }
            }
            if roll < 0.03:
                results.append(RowResult(row_id=f"r{i}", trial=trial, error="ValueError: boom", usage=usage))
                continue
            scores: dict[str, float | None] = {"exact_match": float(rng.random() < 0.7)}
            errors = {}
            if roll < 0.06:
                errors["judge"] = "TimeoutError: slow"
            elif roll < 0.1:
                scores["judge"] = None
            else:
                scores["judge"] = rng.random()
            results.append(
                RowResult(
                    row_id=f"r{i}",
                    trial=trial,
                    scores=scores,
                    scorer_errors=errors,
                    latency_s=rng.random() / 10,
                    usage=usage,
                )
            )
    # Deliver in a window-shuffled order: a trial of a row may come after later rows' results.
    window = 7
    for start in range(0, len(results), window):
        chunk = results[start : start + window]
        rng.shuffle(chunk)
        results[start : start + window] = chunk
    return results


def baseline_means(seed: int, rows: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    return {
        f"r{i}": {"exact_match": float(rng.random() < 0.6), "judge": rng.random()}
        for i in range(rows + 20)
        if rng.random() > 0.05
    }


FIELDS = {
    "id": "r",
    "name": "r",
    "platform": "local",
    "dataset": None,
    "dataset_version": "1",
    "rows_in_snapshot": 0,
    "trial_count": 3,
}


def build(results: list[RowResult], baseline: Any = None) -> EvalReport:
    builder = ReportBuilder(SCORERS)
    for result in results:
        builder.add(result)
    return builder.build(duration_s=1.0, baseline_row_scores=baseline, **FIELDS)


@pytest.mark.parametrize("trials", [1, 3])
def test_the_spilled_report_equals_the_in_memory_one(monkeypatch: pytest.MonkeyPatch, trials: int) -> None:
    monkeypatch.setattr(report_spill, "BUFFER", 17)  # many small writes to the spill file
    results = random_results(trials, 600, trials)
    baseline = baseline_means(trials + 10, 600)
    expected = reference_report(results, baseline, **FIELDS)
    got = build(results, baseline)
    fields = {"created_at"}
    assert got.model_dump(exclude=fields) == expected.model_dump(exclude=fields)
    assert got.scores["judge"].regressions > 0 and got.scores["judge"].improvements > 0
    assert got.usage["judge_latency_p95_ms"] > got.usage["judge_latency_p50_ms"]
    # Without a baseline, and with the baseline given per result (one per trial, averaged per row).
    alone = build(results)
    assert alone.model_dump(exclude=fields) == reference_report(results, None, **FIELDS).model_dump(
        exclude=fields
    )
    per_trial = [(row, {n: v}) for row, scores in baseline.items() for n, v in scores.items()]
    assert build(results, iter(per_trial)).scores == got.scores


@pytest.mark.parametrize("trials", [1, 3])
def test_a_report_that_fits_in_the_buffer_equals_the_spilled_one(
    monkeypatch: pytest.MonkeyPatch, trials: int
) -> None:
    """Without a baseline and under `BUFFER` values, the report is computed from the buffer (no spill
    file): it equals the reference and the report of the same results spilled a few values at a time."""
    results = random_results(trials + 20, 500, trials)
    assert 2 * len(results) < report_spill.BUFFER  # every score, row and latency fits in the buffer
    fields = {"created_at"}
    in_memory = build(results).model_dump(exclude=fields)
    assert in_memory == reference_report(results, None, **FIELDS).model_dump(exclude=fields)
    monkeypatch.setattr(report_spill, "BUFFER", 17)
    assert build(results).model_dump(exclude=fields) == in_memory


def test_an_empty_eval_gives_the_same_empty_report() -> None:
    got = build([])
    assert got.model_dump(exclude={"created_at"}) == reference_report([], None, **FIELDS).model_dump(
        exclude={"created_at"}
    )


def test_regressed_rows_rank_the_same_rows_as_the_full_dicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_spill, "BUFFER", 17)
    current = {f"r{i}": {"em": (i % 5) / 4, "judge": (i % 7) / 6} for i in range(400)}
    baseline = {f"r{i}": {"em": (i % 3) / 2, "judge": 1.0} for i in range(0, 400, 2)}
    fell = {
        row: {
            s: (baseline[row][s], v) for s, v in scores.items() if v < baseline[row][s] - ROW_CHANGE_EPSILON
        }
        for row, scores in current.items()
        if row in baseline
    }
    fell = {row: pairs for row, pairs in fell.items() if pairs}
    ranked = sorted(fell, key=lambda row: (-sum(b - v for b, v in fell[row].values()), row))[:10]
    spill = report_spill.ResultSpill()
    try:
        for row, scores in baseline.items():
            spill.add_scores("baseline", row, scores)
        for row, scores in current.items():
            spill.add_scores("current", row, scores)
        rows, pairs, top = spill.regressed_rows(ROW_CHANGE_EPSILON, 10)
    finally:
        spill.close()
    assert (rows, pairs) == (len(fell), sum(len(p) for p in fell.values())) and rows > 10
    assert [row for row, _ in top] == ranked
    assert dict(top)[ranked[0]] == {
        s: (baseline[ranked[0]][s], current[ranked[0]][s]) for s in ("em", "judge")
    }


# -- the eval pulls rows lazily -------------------------------------------------------------------------
class RowsAhead(Exception):
    pass


class GuardedPlatform(LocalPlatform):
    """The local backend, with a guard on the row stream an eval reads: reading a row while more than
    `bound` rows already read have not reached the task raises `RowsAhead`."""

    bound = 0
    read = 0
    started = 0

    def iter_run_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[RunRow]:
        for row in super().iter_run_rows(dataset, version=version):
            if self.read - self.started > self.bound:
                raise RowsAhead(f"{self.read} rows read, {self.started} started")
            self.read += 1
            yield row


def eval_request(platform: LocalPlatform, rows: int, concurrency: int, task: Any) -> EvalRequest:
    dataset = platform.ensure_dataset("lazy")
    platform.upsert_rows(
        dataset, [DatasetRow.build(input={"i": i}, expected=str(i), id=f"r{i:05d}") for i in range(rows)]
    )
    return EvalRequest(
        name="lazy",
        snapshot=platform.snapshot(dataset),
        task=task,
        scorers=["exact_match"],
        max_concurrency=concurrency,
    )


@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_eval_reads_rows_no_further_ahead_than_its_concurrency(tmp_path: Path, concurrency: int) -> None:
    platform = GuardedPlatform(tmp_path / "evals.sqlite")
    platform.bound = concurrency + 1

    lock = threading.Lock()

    def task(input: dict[str, Any]) -> str:
        with lock:
            platform.started += 1
        return str(input["i"]) if input["i"] % 9 else "wrong"

    request = eval_request(platform, 2500, concurrency, task)
    report = platform.run_eval(request)
    assert platform.read == platform.started == 2500
    stored = list(platform.iter_report_rows(report.id))
    expected = reference_report(stored, None, ["exact_match"], **FIELDS)
    assert report.rows_scored == expected.rows_scored == 2500
    assert report.scores == expected.scores
    assert report.metrics["latency_p95_ms"] == expected.metrics["latency_p95_ms"]


def test_the_guard_catches_an_eval_that_reads_every_row_first(tmp_path: Path) -> None:
    """The guard itself can fail: a consumer that lists the stream before running anything trips it."""
    platform = GuardedPlatform(tmp_path / "evals.sqlite")
    platform.bound = 5
    request = eval_request(platform, 50, 2, str)
    with pytest.raises(RowsAhead):
        list(platform.iter_run_rows(request.snapshot.dataset, version=request.snapshot.version))


# -- a shard reads only its rows ----------------------------------------------------------------------
class ShardOnlyPlatform(LocalPlatform):
    """The local backend, refusing to stream the whole snapshot: a shard must select its rows."""

    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        raise AssertionError("a shard read every row of the snapshot")


def test_each_shard_selects_exactly_its_rows_in_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_datasets, "PAGE_SIZE", 7)  # many pages
    platform = LocalPlatform(database_url)
    dataset = platform.ensure_dataset("shards")
    ids = [f"row-{i}" for i in range(150)] + ["ünïcødé-😀", "quote'd", "x" * 300]
    platform.upsert_rows(dataset, [DatasetRow.build(input=i, id=row_id) for i, row_id in enumerate(ids)])
    snapshot = platform.snapshot(dataset)
    every = [row.id for row in platform.iter_rows(dataset, version=snapshot.version)]
    selecting = ShardOnlyPlatform(database_url)
    for shards in (2, 3, 7):
        seen: list[str] = []
        for index in range(shards):
            mine = [row.id for row in shard_rows(selecting, snapshot, index, shards)]
            assert mine == [i for i in every if shard_of(i, shards) == index]
            seen += mine
        assert sorted(seen) == sorted(every) == sorted(ids)
    platform.close()
    selecting.close()


# -- Keywords AI results are written as the eval runs ----------------------------------------------
@pytest.fixture
def fake() -> KeywordsAIFake:
    return keywordsai_fake()


def test_keywords_ai_results_are_written_a_buffer_at_a_time_during_the_run(
    tmp_path: Path, instance: Any, fake: KeywordsAIFake, server: Any
) -> None:
    """With 5 logs a request and 10 requests a buffer, 100 results are on the platform when the task is
    called for the 120th row (one row at a time), long before the run ends: results are not held."""
    written_at_120: list[int] = []
    calls = {"n": 0}

    def task(input: dict[str, Any]) -> str:
        calls["n"] += 1
        if calls["n"] == 120:
            with fake.lock:
                written_at_120.append(
                    sum(len(fake.logs[i]) for i, d in fake.datasets.items() if d["name"] != "kw")
                )
        return str(int(input["a"]) + int(input["b"]))

    suite = EvalSuite(
        name="kw",
        source=write_jsonl(tmp_path / "rows.jsonl", qa_rows(130)),
        key_field="id",
        task=task,
        scorers=["exact_match"],
        max_concurrency=1,
    )
    result = materialize_suite(suite, instance, keywordsai_resource(server.url, batch_size=5))
    assert result.success
    assert written_at_120 == [100]
    assert materialization(result, suite.eval_report_key)["rows_scored"] == 130
