"""The official Fern-generated Keywords AI (Respan) client, `respan-api` on PyPI, runs against the fake over
real HTTP: every datasets endpoint it offers that the package uses, with the SDK's own request and
response types. Then the package reads what the SDK wrote.

Coverage of the official SDKs (checked on PyPI): `respan-api` 0.1.29 has the datasets, eval-run and
prompt endpoints (0.1.49 no longer ships `datasets`); `keywordsai` 1.0.4 calls different paths
(`datasets/create`, `logs/create`, no trailing slash, unlike every docs page) and `keywordsai-sdk` /
`respan-sdk` hold types and tracing only — so `respan-api` is the judge here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

respan_client = pytest.importorskip("respan.client")

from dagster_evals.backends.keywordsai import KeywordsAIResource  # noqa: E402
from dagster_evals.testing import ServerThread  # noqa: E402
from dagster_evals.testing.keywordsai import KeywordsAIFake  # noqa: E402
from tests.conftest import KEYWORDSAI_KEY as KEY  # noqa: E402
from tests.conftest import keywordsai_fake  # noqa: E402


@pytest.fixture
def fake() -> KeywordsAIFake:
    return keywordsai_fake(delete_lag=1)


@pytest.fixture
def sdk(server: ServerThread):
    return respan_client.RespanClient(base_url=server.url, respan_api_key=KEY)


def test_sdk_dataset_workflow_against_the_fake(sdk, fake: KeywordsAIFake, server: ServerThread) -> None:
    created = sdk.datasets.create_dataset(name="sdk-made", description="by the SDK", is_empty=True)
    assert created.name == "sdk-made" and created.id in fake.datasets
    listed = sdk.datasets.list_datasets(page=1, page_size=10)
    assert [d.name for d in listed.results] == ["sdk-made"]

    bulk = sdk.datasets.bulk_create_dataset_logs(
        created.id,
        logs=[
            {"input": {"q": "2+2"}, "output": "4", "expected_output": "4", "metadata": {"k": "a"}},
            {"input": {"q": "3+3"}, "output": "7", "expected_output": "6", "metadata": {"k": "b"}},
        ],
    )
    assert (bulk.success_count, bulk.error_count, bulk.errors) == (2, 0, [])
    one = sdk.datasets.create_dataset_log(created.id, input={"q": "1+1"}, output="2", metadata={"k": "c"})
    assert one.unique_id in {log["unique_id"] for log in fake.dataset_logs(created.id)}
    logs = sdk.datasets.list_dataset_logs(created.id, page=1, page_size=2, sort_by="-timestamp")
    assert logs.count == 3 and len(logs.results) == 2

    evaluator = fake.evaluators["exact_match_eval"]
    run = sdk.datasets.run_eval_on_dataset(created.id, evaluator_ids=[evaluator.id])
    assert [t.evaluator_slug for t in run.created_tasks] == ["exact_match_eval"]
    for _ in range(3):
        runs = sdk.datasets.list_dataset_eval_runs(created.id)
    assert [(t.status, t.evaluated_logs_count, t.score) for t in runs.results] == [("completed", 2, 0.5)]

    removed = sdk.datasets.remove_dataset_logs(
        created.id, filters={"metadata.k": {"operator": "", "value": ["c"]}}
    )
    assert "background" in removed.message
    sdk.datasets.retrieve_dataset(created.id)  # one more request: the removal lands
    assert len(fake.dataset_logs(created.id)) == 2

    now = datetime.now(UTC)
    fake.add_request_logs([{"input": "prod", "output": "x", "metadata": {"env": "prod"}}])
    imported = sdk.datasets.import_dataset_logs(
        created.id,
        start_time=now - timedelta(hours=1),
        end_time=now + timedelta(minutes=1),
        filters={"metadata__env": {"operator": "", "value": ["prod"]}},
    )
    assert "background" in imported.message and len(fake.dataset_logs(created.id)) == 3

    # The package reads what the SDK wrote: rows keyed by log id, evaluator scores read off the logs.
    platform = KeywordsAIResource(api_key=KEY, base_url=server.url, rate_limit_per_minute=None).get_platform()
    dataset = platform.find_dataset("sdk-made")
    assert dataset is not None and dataset.id == created.id
    rows = {r.id: r for r in platform.iter_rows(dataset)}
    assert sorted(r.input.get("q", "") if isinstance(r.input, dict) else r.input for r in rows.values()) == [
        "2+2", "3+3", "prod",
    ]  # fmt: skip
    task = runs.results[0].task_id
    report = platform.get_eval_report(f"{created.id}:{task}")
    assert report.status == "completed" and report.scores["exact_match_eval"].mean == pytest.approx(0.5)


def test_sdk_prompts_against_the_fake(sdk, fake: KeywordsAIFake) -> None:
    prompt_id = fake.add_prompt(
        "Bot", [{"messages": [{"role": "system", "content": "hi"}]}, {"messages": []}]
    )
    prompts = sdk.prompts.list_prompts()
    [item] = prompts.results
    assert item.id == prompt_id and item.current_version.version == 2
    versions = sdk.prompts.list_prompt_versions(prompt_id)
    assert [v.version for v in versions.results] == [2, 1]
