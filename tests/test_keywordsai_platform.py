"""Eval suites on Keywords AI, materialized through Dagster against the fake server over real HTTP."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    AuthError,
    EvalRequest,
    EvalSuite,
    NotFoundError,
    PlatformError,
    PlatformFunction,
)
from dagster_evals.backends.keywordsai import KeywordsAIResource, metadata_filter, where
from dagster_evals.testing import Fault, ServerThread
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.conftest import KEYWORDSAI_KEY as KEY
from tests.conftest import (
    arith_suite,
    failure_text,
    keywordsai_fake,
    keywordsai_resource,
    materialization,
    materialize_suite,
    qa_rows,
    write_jsonl,
)

BULK = "POST /api/datasets/{dataset_id}/logs/bulk/"
EXACT = PlatformFunction(platform="keywordsai", name="exact_match_eval")
CHARS = PlatformFunction(platform="keywordsai", name="char_count_eval")


@pytest.fixture
def fake() -> KeywordsAIFake:
    return keywordsai_fake()


def resource(server: ServerThread, **overrides: Any) -> KeywordsAIResource:
    return keywordsai_resource(server.url, **overrides)


def suite_for(source: Path, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "scorers": ["exact_match", EXACT, CHARS],
        "thresholds": {"exact_match": 0.9, "exact_match_eval": 0.9},
        "max_regression": 0.05,
    }
    return arith_suite(source, **(options | overrides))


def run(
    suite: EvalSuite,
    instance: dg.DagsterInstance,
    res: KeywordsAIResource,
    *,
    only: list[dg.AssetKey] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return materialize_suite(
        suite,
        instance,
        res,
        selection=only,
        raise_on_error=raise_on_error,
    )


def dataset_logs(fake: KeywordsAIFake, name: str = "arith") -> list[dict[str, Any]]:
    [dataset_id] = [d["id"] for d in fake.datasets.values() if d["name"] == name]
    return fake.dataset_logs(dataset_id)


def row_ids(fake: KeywordsAIFake, name: str = "arith") -> list[str]:
    return sorted(log["metadata"]["dagster_evals_row_id"] for log in dataset_logs(fake, name))


def test_suite_syncs_pins_and_merges_evaluator_scores_with_local_ones(
    tmp_path: Path, instance, fake, server
) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(20)))
    result = run(suite, instance, resource(server))

    dataset = materialization(result, suite.dataset_key)
    assert (dataset["rows_added"], dataset["rows_sent"], dataset["rows_total"]) == (20, 20, 20)
    assert row_ids(fake) == sorted(f"q{i}" for i in range(20))
    stored = {log["metadata"]["dagster_evals_row_id"]: log for log in dataset_logs(fake)}
    assert stored["q3"]["input"] == {"a": 3, "b": 2}
    assert stored["q3"]["expected_output"] == "5"
    assert stored["q3"]["metadata"]["kind"] == "add"

    snapshot = materialization(result, suite.snapshot_key)
    assert snapshot["row_count"] == 20
    assert snapshot["snapshot_version"] == snapshot["digest"][:16]

    report = materialization(result, suite.eval_report_key)
    assert report["details"]["status"] == "completed"
    assert report["score/exact_match"] == 1.0
    assert report["score/exact_match_eval"] == 1.0
    expected_chars = sum(len(str(i + 2)) for i in range(20)) / 20
    assert report["score/char_count_eval"] == pytest.approx(expected_chars, rel=5e-4)
    assert (report["rows_scored"], report["rows_errored"], report["rows_in_snapshot"]) == (20, 0, 20)
    eval_dataset_id, _, report_run_id = str(report["report_id"]).partition(":")
    assert [r["status"] for r in fake.reports[eval_dataset_id]] == ["completed"]
    task_ids = {t["task_id"] for t in fake.reports[eval_dataset_id][0]["tasks"]}
    assert set(report_run_id.split(",")) == task_ids
    assert str(report["experiment_url"]).endswith(eval_dataset_id)
    # The run's outputs are logs of a dataset of their own, scored by the evaluators.
    outputs = fake.dataset_logs(eval_dataset_id)
    assert sorted(log["output"] for log in outputs) == sorted(str(i + 2) for i in range(20))
    assert all(
        {s["evaluator_slug"] for s in log["scores"].values()} == {"exact_match_eval", "char_count_eval"}
        for log in outputs
    )
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "threshold_exact_match": True,
        "threshold_exact_match_eval": True,
        "no_regression": True,
        "completeness": True,
    }


def test_second_sync_sends_no_row(tmp_path: Path, instance, fake, server) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(30)))
    res = resource(server, batch_size=7)
    run(suite, instance, res, only=[suite.dataset_key])
    first_logs = {log["id"] for log in dataset_logs(fake)}
    bulk_before = fake.requests[BULK]

    again = materialization(run(suite, instance, res, only=[suite.dataset_key]), suite.dataset_key)

    assert (again["rows_sent"], again["rows_unchanged"], again["rows_added"]) == (0, 30, 0)
    assert fake.requests[BULK] == bulk_before
    assert {log["id"] for log in dataset_logs(fake)} == first_logs


def test_changed_row_is_the_only_one_resent_and_removed_row_disappears(
    tmp_path: Path, instance, fake, server
) -> None:
    rows = qa_rows(10)
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    suite = suite_for(source)
    res = resource(server)
    run(suite, instance, res, only=[suite.dataset_key])
    before = {log["metadata"]["dagster_evals_row_id"]: log["id"] for log in dataset_logs(fake)}

    rows[4]["expected"] = "changed"
    del rows[7]
    write_jsonl(source, rows)
    result = materialization(run(suite, instance, res, only=[suite.dataset_key]), suite.dataset_key)

    assert (result["rows_sent"], result["rows_updated"], result["rows_removed"]) == (1, 1, 1)
    after = {log["metadata"]["dagster_evals_row_id"]: log for log in dataset_logs(fake)}
    assert sorted(after) == sorted(r["id"] for r in rows)
    assert after["q4"]["expected_output"] == "changed"
    assert after["q4"]["id"] != before["q4"]
    assert all(after[i]["id"] == before[i] for i in after if i != "q4")


def test_every_insert_response_lost_still_leaves_exactly_the_source_rows_and_a_rerun_sends_nothing(
    tmp_path: Path, instance, fake, server
) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(30)))
    res = resource(server, batch_size=5, max_retries=1)
    # Two batches land cleanly; from the third on, every insert takes effect but its response is lost.
    fake.faults.randomize(0.0, paths=["/logs/bulk/"])
    fake.faults.schedule(Fault("slow"), Fault("slow"), *[Fault("reset", after=True)] * 10)

    first = materialization(run(suite, instance, res, only=[suite.dataset_key]), suite.dataset_key)

    assert first["rows_total"] == 30
    assert row_ids(fake) == sorted(f"q{i}" for i in range(30))
    fake.faults.clear()
    bulk_before = fake.requests[BULK]
    rerun = materialization(run(suite, instance, res, only=[suite.dataset_key]), suite.dataset_key)
    assert rerun["rows_sent"] == 0 and fake.requests[BULK] == bulk_before
    assert row_ids(fake) == sorted(f"q{i}" for i in range(30))


def test_insert_whose_response_was_lost_is_retried_without_duplicates(
    tmp_path: Path, instance, fake, server
) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(12)))
    fake.faults.randomize(0.0, paths=["/logs/bulk/"])
    fake.faults.schedule(Fault("slow"), Fault("reset", after=True), Fault("truncate", after=True))

    result = run(suite, instance, resource(server, batch_size=4), only=[suite.dataset_key])

    assert result.success
    assert row_ids(fake) == sorted(f"q{i}" for i in range(12))
    assert fake.faults.injected["reset"] == 1 and fake.faults.injected["truncate"] == 1


def test_baseline_comparison_and_failed_threshold(tmp_path: Path, instance, fake, server) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))
    suite = suite_for(source)
    res = resource(server)
    first = materialization(run(suite, instance, res), suite.eval_report_key)

    write_jsonl(source, qa_rows(10, wrong={0, 1, 2}))
    second = run(suite, instance, res, raise_on_error=False)

    report = materialization(second, suite.eval_report_key)
    assert report["baseline_id"] == first["report_id"]
    assert report["score/exact_match_eval"] == pytest.approx(0.7)
    assert report["diff/exact_match_eval"] == pytest.approx(-0.3)
    checks = {c.check_name: c for c in second.get_asset_check_evaluations()}
    assert not checks["threshold_exact_match_eval"].passed
    assert "0.7 is below the threshold 0.9" in checks["threshold_exact_match_eval"].description
    assert not checks["no_regression"].passed
    assert checks["completeness"].passed


def test_eval_refuses_a_dataset_changed_since_its_snapshot(tmp_path: Path, instance, fake, server) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(5)))
    res = resource(server)
    run(suite, instance, res, only=[suite.dataset_key, suite.snapshot_key])
    platform = res.get_platform()
    dataset = platform.ensure_dataset("arith")
    platform.delete_logs_where(dataset, where("metadata.dagster_evals_row_id", "eq", "q2"))

    result = run(suite, instance, res, only=[suite.eval_report_key], raise_on_error=False)

    assert not result.success
    assert "changed since snapshot" in failure_text(result)
    assert "5 rows then, 4 now" in failure_text(result)


def test_pacing_keeps_the_fake_rate_limit_from_answering_429(tmp_path: Path, instance) -> None:
    # The fake's minute lasts 1 s and allows 25 requests; the client is told the same rate (25 per second).
    fake = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=25, minute_s=1.0)
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(120)))
    with fake.serve() as server:
        res = resource(server, rate_limit_per_minute=25 * 60, batch_size=5)
        result = run(suite, instance, res)
    assert result.success
    assert sum(fake.requests.values()) > 50
    assert fake.throttled == 0
    assert row_ids(fake) == sorted(f"q{i}" for i in range(120))


def test_without_pacing_429s_are_waited_out_and_nothing_is_lost(tmp_path: Path, instance) -> None:
    # The fake's clock advances 0.04 s per request it sees, not with the wall clock: 10 requests per 0.5 s
    # window means every 11th request in a window is throttled however fast or slow the machine is.
    ticks = itertools.count()
    fake = KeywordsAIFake(
        api_keys=[KEY], rate_limit_per_minute=10, minute_s=0.5, clock=lambda: next(ticks) * 0.04
    )
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(60)))
    with fake.serve() as server:
        result = run(
            suite, instance, resource(server, batch_size=5, max_retries=20), only=[suite.dataset_key]
        )
    assert result.success
    assert fake.throttled > 0
    assert row_ids(fake) == sorted(f"q{i}" for i in range(60))


def test_rejected_key_names_the_env_var_and_never_shows_the_key(
    tmp_path: Path, instance, server, monkeypatch, caplog, capsys
) -> None:
    wrong = "kw-wrong-secret-key-987654"
    monkeypatch.setenv("KEYWORDSAI_API_KEY", wrong)
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(3)))
    res = resource(server, api_key=dg.EnvVar("KEYWORDSAI_API_KEY"))
    with caplog.at_level(logging.DEBUG):
        result = run(suite, instance, res, raise_on_error=False)
    text = failure_text(result)
    assert not result.success
    assert "KEYWORDSAI_API_KEY" in text and "HTTP 401" in text and "POST /api/datasets/list/" in text
    platform = KeywordsAIResource(api_key=wrong, base_url=server.url).get_platform()
    with pytest.raises(AuthError) as raised:
        platform.ensure_dataset("x")
    captured = capsys.readouterr()
    everything = [
        text,
        str(raised.value),
        repr(raised.value),
        caplog.text,
        captured.out,
        captured.err,
        repr(platform),
        repr(KeywordsAIResource(api_key=wrong)),
        str(KeywordsAIResource(api_key=wrong)),
    ]
    for event in instance.all_logs(result.run_id):
        everything.append(str(event))
    assert all(wrong not in chunk for chunk in everything)


def test_not_found_and_bad_request_show_status_endpoint_and_message(server) -> None:
    platform = resource(server).get_platform()
    with pytest.raises(NotFoundError) as missing:
        platform.client.get_dataset("no-such-dataset")
    assert "HTTP 404" in str(missing.value)
    assert "GET /api/datasets/no-such-dataset/" in str(missing.value)
    assert "Dataset not found" in str(missing.value)

    dataset = platform.ensure_dataset("bad-request")
    with pytest.raises(PlatformError) as bad:
        platform.client.create_eval_report(dataset.id, ["no_such_eval"])
    assert bad.value.status == 400
    assert f"POST /api/datasets/{dataset.id}/eval-reports/create" in str(bad.value)
    assert "no_such_eval" in str(bad.value)


def test_unknown_evaluator_fails_the_eval_report_asset(tmp_path: Path, instance, server) -> None:
    suite = suite_for(
        write_jsonl(tmp_path / "rows.jsonl", qa_rows(3)),
        scorers=["exact_match", PlatformFunction(platform="keywordsai", name="missing_eval")],
        thresholds={},
    )
    result = run(suite, instance, resource(server), raise_on_error=False)
    assert "Keywords AI has no evaluator 'missing_eval'" in failure_text(result)


def test_report_can_be_fetched_again_with_row_scores(tmp_path: Path, instance, fake, server) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(6, wrong={5})), trial_count=2)
    res = resource(server)
    meta = materialization(run(suite, instance, res, raise_on_error=False), suite.eval_report_key)
    platform = res.get_platform()

    report = platform.get_eval_report(str(meta["report_id"]))
    assert report.status == "completed"
    assert report.scores["exact_match_eval"].mean == pytest.approx(5 / 6)
    assert report.scores["exact_match"].mean == pytest.approx(5 / 6)
    assert (report.rows_in_snapshot, report.rows_scored, report.trial_count) == (6, 6, 2)
    rows = platform.report_row_scores(str(meta["report_id"]))
    assert rows["q5"]["exact_match_eval"] == 0.0 and rows["q0"]["exact_match"] == 1.0
    assert rows["q1"]["char_count_eval"] == 1.0


def test_task_errors_count_as_errored_rows(tmp_path: Path, instance, server) -> None:
    def flaky(input: dict[str, Any]) -> str:
        if input["a"] == 1:
            raise ValueError("boom")
        return str(input["a"] + input["b"])

    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(4)), task=flaky, thresholds={})
    result = run(suite, instance, resource(server), raise_on_error=False)
    report = materialization(result, suite.eval_report_key)
    assert (report["rows_errored"], report["details"]["task_errors"], report["rows_scored"]) == (1, 1, 3)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["completeness"] is False


def test_evaluators_over_sampled_production_logs(fake, server) -> None:
    now = datetime.now(UTC)
    fake.add_request_logs(
        {"input": f"q{i}", "output": "x" * i, "metadata": {"env": "prod" if i % 2 else "dev"}}
        for i in range(1, 21)
    )
    platform = resource(server).get_platform()
    dataset = platform.create_dataset_from_logs(
        "prod-sample",
        start_time=now - timedelta(hours=1),
        end_time=now + timedelta(hours=1),
        filters=metadata_filter("env", "prod"),
        sampling_percentage=50,
    )
    snapshot = platform.snapshot(dataset)
    assert snapshot.row_count == 5

    report = platform.run_eval(
        EvalRequest(
            name="prod-check", snapshot=snapshot, task=None, scorers=[CHARS, lambda output: len(output) > 5]
        )
    )

    lengths = sorted(len(log["output"]) for log in fake.dataset_logs(dataset.id))
    assert report.scores["char_count_eval"].mean == pytest.approx(sum(lengths) / 5)
    assert report.scores["<lambda>"].mean == pytest.approx(sum(n > 5 for n in lengths) / 5)
    assert report.rows_scored == 5 and report.id.startswith(dataset.id + ":")
    fetched = platform.get_eval_report(report.id)
    assert fetched.scores["char_count_eval"].mean == pytest.approx(sum(lengths) / 5)
    assert platform.report_row_scores(report.id) == {}


def test_prompt_versions_oldest_first(fake, server) -> None:
    support = fake.add_prompt(
        "Support", [{"messages": [{"role": "system", "content": "v1"}]}], slug="support"
    )
    fake.add_prompt("Summary", [{"messages": []}, {"messages": []}], slug="summary")
    fake.add_prompt_version(support, {"messages": [{"role": "system", "content": "v2"}]})
    platform = resource(server).get_platform()

    versions = platform.list_prompt_versions()
    assert [v.partition_key for v in versions] == ["support@1", "summary@1", "summary@2", "support@2"]
    assert versions[-1].content["messages"] == [{"role": "system", "content": "v2"}]
    assert [v.version for v in platform.list_prompt_versions(slug="support")] == ["1", "2"]
    assert fake.requests["GET /api/prompts/{prompt_id}/versions/"] == 3
