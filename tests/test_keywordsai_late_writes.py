"""Writes the Keywords AI server applies after the client gave up on them (a slow network, not a dropped
request): a sync never reports success with a wrong count, eval datasets and runs are created once, and a
re-run converges to exactly the source rows. The fake holds each faulted request back and applies it
after a few more requests reach it (counter-driven, no timing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagster_evals import EvalSuite, PlatformFunction
from dagster_evals.backends.keywordsai import KeywordsAIResource
from dagster_evals.testing import Fault, ServerThread
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
from tests.fault_helpers import EndpointFaults

EXACT = PlatformFunction(platform="keywordsai", name="exact_match_eval")


@pytest.fixture
def fake() -> KeywordsAIFake:
    return keywordsai_fake()


@pytest.fixture
def endpoints(fake: KeywordsAIFake) -> EndpointFaults:
    return EndpointFaults(fake)


@pytest.fixture
def server(endpoints: EndpointFaults) -> Iterator[ServerThread]:
    with ServerThread(endpoints) as running:
        yield running


def resource(server: ServerThread, **overrides: Any) -> KeywordsAIResource:
    return keywordsai_resource(server.url, **({"backoff_base_s": 0.01, "batch_size": 10} | overrides))


def held_rows(fake: KeywordsAIFake, name: str) -> Counter[str]:
    fake.settle()
    [dataset_id] = [d["id"] for d in fake.datasets.values() if d["name"] == name]
    return Counter(log["metadata"]["dagster_evals_row_id"] for log in fake.dataset_logs(dataset_id))


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_sync_with_late_inserts_holds_exactly_the_source_rows(
    tmp_path: Path, instance, fake, server, rate: float
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(200))
    suite = EvalSuite(name="late", source=source, key_field="id", task=add_task, scorers=["exact_match"])
    fake.faults.randomize(rate, seed=7, kinds=["late"], paths=["/logs/bulk/"], late_by=3)

    result = materialize_suite(
        suite,
        instance,
        resource(server),
        selection=[suite.dataset_key],
    )

    assert result.success
    assert fake.faults.injected["late"] > 0 and fake.faults.late_pending == 0
    assert fake.faults.late_applied == fake.faults.injected["late"]
    held = held_rows(fake, "late")
    assert sorted(held) == sorted(f"q{i}" for i in range(200)) and set(held.values()) == {1}
    assert materialization(result, suite.dataset_key)["rows_total"] == 200

    fake.faults.clear()
    rerun = materialize_suite(
        suite,
        instance,
        resource(server),
        selection=[suite.dataset_key],
    )
    assert materialization(rerun, suite.dataset_key)["rows_sent"] == 0
    assert set(held_rows(fake, "late").values()) == {1}


def test_eval_dataset_and_eval_run_are_created_once_under_late_writes(
    tmp_path: Path, instance, fake, server, endpoints
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(20))
    suite = EvalSuite(
        name="once", source=source, key_field="id", task=add_task, scorers=["exact_match", EXACT]
    )
    res = resource(server)
    materialize_suite(suite, instance, res, selection=[suite.dataset_key, suite.snapshot_key])
    # The run's dataset, one batch of its results and the eval run each land after the client gave up.
    endpoints.arm("POST", r"^/api/datasets/$", Fault("late", late_by=2))
    endpoints.arm("POST", r"/logs/bulk/$", Fault("late", late_by=3))
    endpoints.arm("POST", r"/eval-reports/create$", Fault("late", late_by=2))

    result = materialize_suite(suite, instance, res, selection=[suite.eval_report_key])

    assert result.success
    assert len(endpoints.hits) == 3 and endpoints.injector.late_pending == 0
    report = materialization(result, suite.eval_report_key)
    eval_dataset_id = str(report["report_id"]).partition(":")[0]
    assert len(fake.datasets) == 2, "the eval dataset was created twice"
    assert len(fake.reports[eval_dataset_id]) == 1, "the eval run was started twice"
    keys = [log["metadata"]["dagster_evals_result_id"] for log in fake.dataset_logs(eval_dataset_id)]
    assert len(keys) == len(set(keys)) == 20
    assert report["score/exact_match_eval"] == 1.0


def test_sync_that_cannot_settle_fails_saying_how_to_repair(tmp_path: Path, instance, fake, server) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(30))
    suite = EvalSuite(name="stuck", source=source, key_field="id", task=add_task, scorers=["exact_match"])
    # Every insert is held back far longer than the client keeps checking.
    fake.faults.randomize(1.0, kinds=["late"], paths=["/logs/bulk/"], late_by=10_000)

    result = materialize_suite(
        suite, instance, resource(server, max_retries=50), selection=[suite.dataset_key], raise_on_error=False
    )

    assert not result.success
    text = failure_text(result)
    assert "did not settle" in text and "run the sync again" in text
    fake.faults.clear()
    fake.faults.apply_late()  # the held writes land at last: many copies of each row
    rerun = materialize_suite(suite, instance, resource(server), selection=[suite.dataset_key])
    assert rerun.success
    held = held_rows(fake, "stuck")
    assert sorted(held) == sorted(f"q{i}" for i in range(30)) and set(held.values()) == {1}


def test_dataset_create_landing_late_is_found_not_repeated(fake, server, endpoints) -> None:
    endpoints.arm("POST", r"^/api/datasets/$", Fault("late", late_by=2))
    platform = resource(server).get_platform()
    created = platform.ensure_dataset("ds")
    assert [d["name"] for d in fake.datasets.values()] == ["ds"]
    assert created.id in fake.datasets
    assert endpoints.hits == ["POST /api/datasets/"]
