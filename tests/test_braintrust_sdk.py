"""The official `braintrust` SDK (pinned in constraints.txt) as an independent judge of the fake and of the
package: the SDK writes through the fake over real HTTP, the fake's own state is checked, then dagster-evals
reads what the SDK wrote and must report the same scores and scorer errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dagster_evals.backends.braintrust import BraintrustPlatform
from dagster_evals.engine.models import DatasetRef
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.server import ServerThread

braintrust = pytest.importorskip("braintrust")

KEY = "sdk-key"


@pytest.fixture(scope="module")
def fake() -> BraintrustFake:
    return BraintrustFake(api_key=KEY)


@pytest.fixture(scope="module")
def server(fake: BraintrustFake) -> Iterator[ServerThread]:
    """One server for the module: the SDK keeps one background logger per process, bound to the first
    API URL it logged in to, so every test here talks to the same fake (each in its own project)."""
    with pytest.MonkeyPatch.context() as env, ServerThread(fake.app) as running:
        env.setenv("BRAINTRUST_SYNC_FLUSH", "1")
        env.setenv("BRAINTRUST_APP_URL", running.url)
        env.delenv("BRAINTRUST_API_URL", raising=False)
        env.delenv("BRAINTRUST_API_KEY", raising=False)
        braintrust.login(app_url=running.url, api_key=KEY, force_login=True)
        yield running
        braintrust.flush()


def stored_rows(fake: BraintrustFake, kind: str, object_id: str, version: int | None = None) -> list[dict]:
    """The rows as the fake itself holds them (not as any client reads them)."""
    store = fake.objects[kind][object_id].store
    assert store is not None
    return store.rows(version)


def test_sdk_dataset_insert_update_delete_fetch_and_pinned_version(fake, server) -> None:
    dataset = braintrust.init_dataset(project="sdk", name="ds", app_url=server.url, api_key=KEY)
    for i in range(30):
        dataset.insert(input={"i": i}, expected=str(i), metadata={"k": i % 3}, tags=["t"], id=f"row{i}")
    dataset.flush()
    pinned = dataset.version
    dataset.update(id="row1", expected="updated")
    dataset.delete("row2")
    dataset.flush()

    held = {r["id"]: r for r in stored_rows(fake, "dataset", dataset.id)}
    assert len(held) == 29 and "row2" not in held
    assert held["row1"]["expected"] == "updated" and held["row1"]["input"] == {"i": 1}
    assert held["row5"]["metadata"] == {"k": 2} and held["row5"]["tags"] == ["t"]
    assert len(list(dataset.fetch())) == 29

    old = braintrust.init_dataset(project="sdk", name="ds", version=pinned, app_url=server.url, api_key=KEY)
    old_rows = {r["id"]: r for r in old.fetch()}
    assert len(old_rows) == 30 and old_rows["row1"]["expected"] == "1" and "row2" in old_rows
    assert fake.requests["POST /logs3"] >= 2


def test_sdk_experiment_log_and_summarize(fake, server) -> None:
    experiment = braintrust.init(project="sdk-log", experiment="logged", app_url=server.url, api_key=KEY)
    for i, score in enumerate([1.0, 0.0, 0.5, 0.5]):
        experiment.log(input={"i": i}, output=str(i), expected=str(i), scores={"acc": score})
    summary = experiment.summarize()
    assert summary.scores["acc"].score == pytest.approx(0.5)
    held = stored_rows(fake, "experiment", experiment.id)
    assert sorted(r["scores"]["acc"] for r in held) == [0.0, 0.5, 0.5, 1.0]


def exact(input: Any, output: Any, expected: Any) -> float:
    return 1.0 if output == expected else 0.0


def shaky(input: Any, output: Any, expected: Any) -> float:
    if input["i"] % 3 == 0:
        raise RuntimeError("scorer fell over")
    return 0.25


def test_sdk_eval_over_a_dataset_then_the_package_reads_the_same_scores(fake, server) -> None:
    dataset = braintrust.init_dataset(project="sdk-eval", name="qa", app_url=server.url, api_key=KEY)
    for i in range(6):
        dataset.insert(input={"i": i}, expected=str(i if i % 2 else -1), id=f"row{i}")
    dataset.flush()
    result = braintrust.Eval(
        "sdk-eval",
        data=braintrust.init_dataset(project="sdk-eval", name="qa", app_url=server.url, api_key=KEY),
        task=lambda input: str(input["i"]),
        scores=[exact, shaky],
        experiment_name="judged",
    )
    summary = result.summary
    assert summary.scores["exact"].score == pytest.approx(0.5)
    assert summary.scores["shaky"].score == pytest.approx(0.25)

    experiment_id = summary.experiment_id
    held = stored_rows(fake, "experiment", experiment_id)
    score_spans = [r for r in held if (r.get("span_attributes") or {}).get("type") == "score"]
    assert score_spans and all(not r["is_root"] for r in score_spans), "the SDK logs scores on child spans"

    platform = BraintrustPlatform(api_key=KEY, api_url=server.url, project="sdk-eval", collect_git=False)
    try:
        per_row = platform.report_row_scores(experiment_id)
        assert per_row == {
            f"row{i}": {"exact": float(i % 2), **({} if i % 3 == 0 else {"shaky": 0.25})} for i in range(6)
        }
        report = platform.get_eval_report(experiment_id)
        assert report.scorer_errors == 2 and report.rows_errored == 2 and report.rows_scored == 4
        assert report.scores["exact"].mean == pytest.approx(0.5)
        assert platform.count_rows(DatasetRef(platform="braintrust", id=dataset.id, name="qa")) == 6
    finally:
        platform.close()
