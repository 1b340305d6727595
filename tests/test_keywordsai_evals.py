"""Keywords AI eval runs through Dagster (`dg.materialize`) against the fake over real HTTP: a run that
ends failed or outlives `eval_timeout_s` fails the eval_report asset with a clear reason, and
`EvalSuite(task=None)` scores outputs already on the platform (production logs sampled into a dataset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dagster_evals import EvalSuite, PlatformFunction
from dagster_evals.backends.keywordsai import KeywordsAIResource, metadata_filter
from dagster_evals.testing import ServerThread
from dagster_evals.testing.keywordsai import KeywordsAIFake
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

CHARS = PlatformFunction(platform="keywordsai", name="char_count_eval")
EXACT = PlatformFunction(platform="keywordsai", name="exact_match_eval")


@pytest.fixture
def fake() -> KeywordsAIFake:
    return keywordsai_fake()


def resource(server: ServerThread, **overrides: Any) -> KeywordsAIResource:
    return keywordsai_resource(server.url, **overrides)


def suite_for(tmp_path: Path, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "name": "kw",
        "source": write_jsonl(tmp_path / "rows.jsonl", qa_rows(6)),
        "key_field": "id",
        "task": add_task,
        "scorers": [EXACT],
    }
    return EvalSuite(**(options | overrides))


def test_eval_run_that_ends_failed_fails_the_eval_report_asset(
    tmp_path: Path, instance, fake, server
) -> None:
    suite = suite_for(tmp_path)
    fake.fail_next_evals = 1

    result = materialize_suite(
        suite,
        instance,
        resource(server),
        raise_on_error=False,
    )

    assert not result.success
    text = failure_text(result)
    assert "ended failed" in text and "exact_match_eval: failed Evaluation failed" in text
    assert [r["status"] for reports in fake.reports.values() for r in reports] == ["failed"]
    assert not [m for m in result.asset_materializations_for_node("evals__kw__eval_report")]


@pytest.mark.parametrize("shape", ["spec", "docs"])
def test_eval_run_past_eval_timeout_fails_naming_the_run_to_fetch_later(
    tmp_path: Path, instance, fake, server, shape: str
) -> None:
    fake.eval_report_shape = shape
    fake.hold_evals = True  # the run never gets past "running"
    suite = suite_for(tmp_path)

    result = materialize_suite(
        suite,
        instance,
        resource(server, eval_timeout_s=0.2),
        raise_on_error=False,
    )

    assert not result.success
    text = failure_text(result)
    assert "is still running after 0s" in text and "raise eval_timeout_s" in text
    [reports] = fake.reports.values()
    assert [r["status"] for r in reports] == ["running"]
    assert f"get_eval_report('{reports[0]['dataset_id']}:" in text


def test_task_none_scores_sampled_production_logs_through_dagster(
    tmp_path: Path, instance, fake, server
) -> None:
    now = datetime.now(UTC)
    fake.add_request_logs(
        {"input": f"q{i}", "output": "x" * i, "metadata": {"env": "prod" if i % 2 else "dev"}}
        for i in range(1, 13)
    )
    platform = resource(server).get_platform()
    sampled = platform.create_dataset_from_logs(
        "prod-sample", start_time=now - timedelta(hours=2), end_time=now + timedelta(minutes=1),
        filters=metadata_filter("env", "prod"),
    )  # fmt: skip
    outputs = sorted(len(log["output"]) for log in fake.dataset_logs(sampled.id))
    suite = suite_for(
        tmp_path,
        name="prod",
        dataset_name="prod-sample",
        task=None,
        scorers=[CHARS, "exact_match"],
        thresholds={},
    )

    result = materialize_suite(
        suite,
        instance,
        resource(server),
        selection=[suite.snapshot_key, suite.eval_report_key],
    )

    report = materialization(result, suite.eval_report_key)
    assert report["rows_in_snapshot"] == 6 and report["rows_scored"] == 6
    assert report["score/char_count_eval"] == pytest.approx(sum(outputs) / 6, rel=5e-4)
    assert str(report["report_id"]).startswith(sampled.id + ":")
    assert len(fake.datasets) == 1  # scored in place: no dataset of outputs was written
    assert all(log["scores"] for log in fake.dataset_logs(sampled.id))


def test_task_none_suite_without_its_platform_dataset_fails_at_the_snapshot(
    tmp_path: Path, instance, fake, server
) -> None:
    suite = suite_for(tmp_path, name="prod", dataset_name="never-sampled", task=None, scorers=[CHARS])

    result = materialize_suite(
        suite,
        instance,
        resource(server),
        selection=[suite.snapshot_key],
        raise_on_error=False,
    )

    assert not result.success
    text = failure_text(result)
    assert "no materialization of evals/prod/dataset yet and no dataset 'never-sampled'" in text
    assert not fake.datasets  # nothing created in its place


def test_task_none_suite_still_fails_when_a_recorded_dataset_version_is_gone(
    tmp_path: Path, instance, fake, server
) -> None:
    suite = suite_for(tmp_path, name="prod", dataset_name="prod-sample", task=None, scorers=[CHARS])
    synced = materialize_suite(suite, instance, resource(server), selection=[suite.dataset_key])
    recorded = materialization(synced, suite.dataset_key)["dataset_version"]
    platform = resource(server).get_platform()
    dataset = platform.find_dataset("prod-sample")
    assert dataset is not None
    platform.delete_all_rows(dataset)  # the version the dataset materialization recorded is gone

    result = materialize_suite(
        suite,
        instance,
        resource(server),
        selection=[suite.snapshot_key],
        raise_on_error=False,
    )

    assert not result.success
    assert f"not {recorded}: its rows changed" in failure_text(result)  # not the platform's current rows
