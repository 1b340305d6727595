"""The Braintrust platform end to end: eval suites materialized through Dagster against the fake Braintrust
server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    AuthError,
    ConfigError,
    EvalSuite,
    InputError,
    NotFoundError,
    PlatformError,
    PlatformFunction,
)
from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.platform import (
    BraintrustPlatform,
    BraintrustResource,
    function_ref,
    git_repo_info,
)
from dagster_evals.engine.models import DatasetRow
from dagster_evals.engine.sync import sync_rows
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.faults import Fault
from dagster_evals.testing.server import ServerThread
from tests.conftest import arith_suite, materialization, materialize_suite, qa_rows, write_jsonl
from tests.fault_helpers import stored_rows

KEY = "test-key"
SUITE_PREFIX = ["evals", "arith"]
DATASET_KEY = dg.AssetKey([*SUITE_PREFIX, "dataset"])
SNAPSHOT_KEY = dg.AssetKey([*SUITE_PREFIX, "dataset_snapshot"])
REPORT_KEY = dg.AssetKey([*SUITE_PREFIX, "eval_report"])
REMOTE_TASK = PlatformFunction(
    platform="braintrust",
    name="adder",
    spec={
        "inline_context": {"runtime": "python", "version": "3.11"},
        "code": "def handler(input):\n    return str(input['a'] + input['b'])\n",
    },
)
REMOTE_SCORER = PlatformFunction(
    platform="braintrust", name="ExactMatch", spec={"global_function": "ExactMatch"}
)


@pytest.fixture
def fake() -> BraintrustFake:
    return BraintrustFake(api_key=KEY)


def resource(server: ServerThread, **overrides: Any) -> BraintrustResource:
    options: dict[str, Any] = {
        "api_key": KEY,
        "api_url": server.url,
        "app_url": server.url,
        "project": "arith-project",
        "backoff_base_s": 0.01,
    }
    options.update(overrides)
    return BraintrustResource(**options)


def platform(server: ServerThread, **overrides: Any) -> BraintrustPlatform:
    return resource(server, **overrides).get_platform()


def suite_for(source: Path, **overrides: Any) -> EvalSuite:
    return arith_suite(
        source,
        **({"scorers": ["exact_match", "levenshtein"], "thresholds": {"exact_match": 0.5}} | overrides),
    )


def dataset_ids(fake: BraintrustFake, name: str = "arith") -> list[str]:
    """Ids of the rows the fake itself holds (not read back through the client under test)."""
    return sorted(row["id"] for row in stored_rows(fake, name))


def test_sync_is_idempotent_and_sends_only_changes(tmp_path: Path, instance, fake, server) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(20, wrong={3}))
    suite = suite_for(source)
    res = resource(server)

    first = materialization(materialize_suite(suite, instance, res), DATASET_KEY)
    assert (first["rows_added"], first["rows_sent"]) == (20, 20)
    assert fake.events_written["dataset"] == 20
    assert str(first["dataset_url"]).startswith(server.url + "/app/fake-org/p/arith-project/datasets/arith")

    second = materialization(materialize_suite(suite, instance, res), DATASET_KEY)
    assert (second["rows_sent"], second["rows_unchanged"]) == (0, 20)
    assert fake.events_written["dataset"] == 20, "an unchanged source must send no rows"

    rows = qa_rows(20, wrong={3})
    rows[5]["expected"] = "changed"
    write_jsonl(source, rows)
    third = materialization(materialize_suite(suite, instance, res), DATASET_KEY)
    assert (third["rows_updated"], third["rows_sent"]) == (1, 1)
    assert fake.events_written["dataset"] == 21

    write_jsonl(source, rows[:7] + rows[8:])
    fourth = materialize_suite(suite, instance, res)
    synced = materialization(fourth, DATASET_KEY)
    assert (synced["rows_removed"], synced["rows_total"]) == (1, 19)
    assert "q7" not in dataset_ids(fake)
    assert len(dataset_ids(fake)) == 19
    assert materialization(fourth, SNAPSHOT_KEY)["row_count"] == 19


def test_snapshot_version_pins_rows_across_deletes_and_updates(server) -> None:
    bt = platform(server)
    ref = bt.ensure_dataset("pinned")
    rows = [DatasetRow.build({"n": i}, str(i), id=f"r{i}") for i in range(10)]
    bt.upsert_rows(ref, rows)
    bt.delete_rows(ref, ["r0", "r1"])
    after_delete = bt.snapshot(ref)
    assert after_delete.row_count == 8

    bt.upsert_rows(ref, [DatasetRow.build({"n": 2}, "new", id="r2")])
    bt.delete_rows(ref, ["r3"])
    assert bt.count_rows(ref) == 7

    pinned = {row.id: row.expected for row in bt.iter_rows(ref, version=after_delete.version)}
    assert sorted(pinned) == [f"r{i}" for i in range(2, 10)]
    assert pinned["r2"] == "2"
    again = bt.snapshot(ref)
    assert again.version != after_delete.version and again.row_count == 7

    bt.delete_all_rows(ref)
    assert bt.count_rows(ref) == 0
    assert bt.snapshot(ref).row_count == 0
    assert bt.count_rows(ref, version=after_delete.version) == 8


def test_local_eval_records_an_experiment_with_baseline_diffs(
    tmp_path: Path, instance, fake, server, git_checkout: str
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10, wrong={1, 2}))
    suite = suite_for(source, metadata={"owner": "ml-team"}, tags=["nightly"])
    res = resource(server)

    first = materialize_suite(suite, instance, res)
    report = materialization(first, REPORT_KEY)
    assert report["score/exact_match"] == pytest.approx(0.8)
    assert report["rows_scored"] == 10
    assert "diff/exact_match" not in report
    event = next(
        e.materialization
        for e in first.get_asset_materialization_events()
        if e.materialization.asset_key == REPORT_KEY
    )
    assert isinstance(event.metadata["experiment_url"], dg.UrlMetadataValue)
    assert "/experiments/arith-" in report["experiment_url"]

    experiment = fake.objects["experiment"][report["report_id"]].data
    snapshot = materialization(first, SNAPSHOT_KEY)
    assert experiment["dataset_id"] == snapshot["dataset_id"]
    assert experiment["dataset_version"] == snapshot["snapshot_version"]
    assert experiment["metadata"]["owner"] == "ml-team" and experiment["tags"] == ["nightly"]
    assert experiment["repo_info"]["commit"] == git_checkout, "repo_info comes from the local git checkout"

    write_jsonl(source, qa_rows(10, wrong={1}))
    second = materialization(materialize_suite(suite, instance, res), REPORT_KEY)
    assert second["score/exact_match"] == pytest.approx(0.9)
    assert second["diff/exact_match"] == pytest.approx(0.1)
    assert second["baseline_id"] == report["report_id"]
    new_experiment = fake.objects["experiment"][second["report_id"]].data
    assert new_experiment["base_exp_id"] == report["report_id"]

    bt = platform(server)
    fetched = bt.get_eval_report(second["report_id"])
    assert fetched.scores["exact_match"].improvements == 1
    assert fetched.scores["exact_match"].regressions == 0
    assert fetched.rows_scored == 10


def test_remote_eval_runs_on_braintrust_with_the_pinned_version(
    tmp_path: Path, instance, fake, server, git_checkout: str
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(8, wrong={0, 1}))
    suite = suite_for(
        source, task=REMOTE_TASK, scorers=[REMOTE_SCORER], thresholds={"ExactMatch": 0.5}, tags=["remote"]
    )
    res = resource(server, stream_evals=True)

    first = materialize_suite(suite, instance, res)
    report = materialization(first, REPORT_KEY)
    assert report["score/ExactMatch"] == pytest.approx(0.75)
    assert report["rows_scored"] == 8
    assert report["experiment_url"].startswith(server.url)
    body = fake.bodies["POST /v1/eval"][-1]
    snapshot = materialization(first, SNAPSHOT_KEY)
    assert body["data"] == {
        "dataset_id": snapshot["dataset_id"],
        "dataset_version": snapshot["snapshot_version"],
    }
    assert body["stream"] is True and body["tags"] == ["remote"]
    assert body["scores"] == [{"global_function": "ExactMatch"}]
    assert body["repo_info"]["commit"] == git_checkout

    write_jsonl(source, qa_rows(8, wrong={0}))
    second = materialization(materialize_suite(suite, instance, res), REPORT_KEY)
    assert second["score/ExactMatch"] == pytest.approx(0.875)
    assert second["diff/ExactMatch"] == pytest.approx(0.125)
    assert fake.bodies["POST /v1/eval"][-1]["base_experiment_id"] == report["report_id"]


def test_sync_under_random_faults_ends_with_exactly_the_source_rows(server, fake) -> None:
    bt = platform(server, insert_batch_size=25, max_retries=10, request_concurrency=3)
    ref = bt.ensure_dataset("faulty")
    rows = [DatasetRow.build({"n": i, "pad": "x" * 50}, str(i), id=f"row-{i:04d}") for i in range(400)]
    fake.faults.schedule(
        Fault("reset", after=True), Fault("truncate", after=True), Fault("429", retry_after=0.01)
    )
    fake.faults.randomize(
        0.2, seed=7, kinds=("429", "500", "502", "503", "reset", "truncate"), retry_after=0.01
    )
    result = sync_rows(bt, ref, rows)
    changed = rows[:350]
    changed[1] = DatasetRow.build({"n": 1}, "changed", id="row-0001")
    result2 = sync_rows(bt, ref, changed)
    fake.faults.clear()

    assert result.rows_sent == 400
    assert sum(fake.faults.injected.values()) > 10
    assert fake.faults.injected["reset"] >= 1
    events = stored_rows(fake, "faulty")
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == 350 == result2.rows_total
    assert next(e for e in events if e["id"] == "row-0001")["expected"] == "changed"


def test_oversized_row_is_named(server) -> None:
    bt = platform(server, insert_max_bytes=4096)
    ref = bt.ensure_dataset("big")
    rows = [DatasetRow.build("small", id="ok-1"), DatasetRow.build("y" * 10_000, id="too-big")]
    with pytest.raises(InputError, match="too-big"):
        bt.upsert_rows(ref, rows)


def test_bad_key_names_the_env_var_and_never_shows_the_key(
    tmp_path: Path, instance, server, caplog, capfd
) -> None:
    secret = "sk-bt-very-secret-123"
    res = resource(server, api_key=secret)
    assert secret not in repr(res)
    assert secret not in repr(res.get_platform()) and secret not in repr(res.get_platform().http)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as raised:
        res.get_platform().ensure_dataset("x")
    assert "BRAINTRUST_API_KEY" in str(raised.value) and secret not in str(raised.value)
    assert raised.value.status == 401 and raised.value.endpoint == "/v1/project"

    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(3)))
    result = materialize_suite(suite, instance, resource(server, api_key=secret), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    assert "BRAINTRUST_API_KEY" in str(failure.event_specific_data)
    out, err = capfd.readouterr()
    logs = [str(r.getMessage()) for r in caplog.records]
    assert secret not in out + err + "\n".join(logs) + str(failure.event_specific_data)


def test_not_found_and_bad_request_show_status_endpoint_and_message(server) -> None:
    bt = platform(server)
    with pytest.raises(NotFoundError) as missing:
        bt.get_eval_report("no-such-experiment")
    assert missing.value.status == 404
    assert "/v1/experiment/no-such-experiment" in str(missing.value)
    assert "not found" in str(missing.value)

    project = bt.project()
    with pytest.raises(PlatformError) as bad:
        bt.http.post(
            "/v1/eval", json={"project_id": project.id, "data": {"data": []}, "task": {}, "scores": []}
        )
    assert bad.value.status == 400
    assert "POST /v1/eval" in str(bad.value) and "task" in str(bad.value)

    with pytest.raises(PlatformError) as bad_version:
        ref = bt.ensure_dataset("v")
        list(bt.iter_rows(ref, version="not-a-version"))
    assert bad_version.value.status == 400 and "invalid version" in str(bad_version.value)


def test_prompt_versions_are_latest_per_prompt_oldest_first(server) -> None:
    bt = platform(server)
    project = bt.project()
    first = bt.client.create_prompt(
        api.CreatePrompt(
            project_id=project.id,
            name="Greeter",
            slug="greeter",
            prompt_data={"prompt": {"type": "completion", "content": "hi {{input}}"}},
        )
    )
    bt.client.create_prompt(api.CreatePrompt(project_id=project.id, name="Closer", slug="closer"))
    before = bt.list_prompt_versions()
    assert [p.slug for p in before] == ["greeter", "closer"]
    assert before[0].version == first.xact_id

    updated = bt.client.patch_prompt(
        first.id,
        api.PatchPrompt(prompt_data={"prompt": {"type": "completion", "content": "hello {{input}}"}}),
    )
    after = bt.list_prompt_versions()
    assert [p.slug for p in after] == ["closer", "greeter"]
    assert after[-1].version == updated.xact_id != first.xact_id
    assert after[-1].content["prompt"]["content"] == "hello {{input}}"
    assert [p.slug for p in bt.list_prompt_versions(slug="greeter")] == ["greeter"]


def test_copy_sampled_logs_into_a_dataset(server, fake) -> None:
    bt = platform(server)
    project = bt.project()
    logs = [
        api.InsertProjectLogsEvent(id=f"log-{i}", input={"q": i}, output=f"a{i}", scores={"thumbs": i % 2})
        for i in range(30)
    ]
    bt.client.insert_project_logs(project.id, logs)
    ref = bt.ensure_dataset("from-logs")
    copied = bt.copy_logs_to_dataset(ref, where=lambda e: e["scores"]["thumbs"] == 0, limit=10)
    assert copied == 10
    rows = stored_rows(fake, "from-logs")
    assert len(rows) == 10 and all(r["input"]["q"] % 2 == 0 for r in rows)
    assert all(r["expected"] == f"a{r['input']['q']}" for r in rows)
    assert bt.copy_logs_to_dataset(ref, where=lambda e: e["scores"]["thumbs"] == 0, limit=10) == 10
    assert bt.count_rows(ref) == 10, "copying again updates the same rows"


def test_repo_info_comes_from_git_and_tolerates_no_repo(tmp_path: Path) -> None:
    assert git_repo_info(tmp_path) is None
    repo = tmp_path / "repo"
    repo.mkdir()
    env = ["-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "f.txt").write_text("x")
    subprocess.run(["git", "add", "f.txt"], cwd=repo, check=True)
    subprocess.run(["git", *env, "commit", "-q", "-m", "first commit"], cwd=repo, check=True)
    subprocess.run(["git", "tag", "v1.0"], cwd=repo, check=True)
    info = git_repo_info(repo)
    assert info is not None
    assert (info.branch, info.tag, info.dirty, info.author_name) == ("main", "v1.0", False, "Dev")
    assert info.commit and len(info.commit) == 40 and info.commit_message == "first commit"
    (repo / "f.txt").write_text("changed")
    assert git_repo_info(repo).dirty is True


def test_platform_function_specs_are_checked(server) -> None:
    assert isinstance(function_ref(REMOTE_TASK), api.InlineCodeRef)
    assert isinstance(function_ref(REMOTE_SCORER), api.GlobalFunctionRef)
    slug = PlatformFunction(platform="braintrust", name="s", spec={"project_name": "p", "slug": "s"})
    assert isinstance(function_ref(slug), api.ProjectSlugRef)
    with pytest.raises(ConfigError, match="not a Braintrust function reference"):
        function_ref(PlatformFunction(platform="braintrust", name="bad", spec={"fn": "x"}))
    with pytest.raises(ConfigError, match="keywordsai"):
        function_ref(PlatformFunction(platform="keywordsai", name="k", spec={}))
