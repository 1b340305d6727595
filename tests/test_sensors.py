"""Prompt-version and release sensors and schedules, evaluated through Dagster with a real instance,
a real git repository and the real local backend."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    ConfigError,
    EvalSuite,
    LocalEvalResource,
    PromptVersion,
    build_eval_schedule,
    build_eval_suite_definitions,
    build_prompt_version_sensor,
    build_release_sensor,
)
from tests.conftest import qa_rows, write_jsonl


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "app.py").write_text("VERSION = 1\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "first")
    return path


def prompt_task(input: dict[str, Any], prompt: PromptVersion | None) -> str:
    offset = int(prompt.content.get("offset", 0)) if prompt else 0
    return str(input["a"] + input["b"] + offset)


def versioned_suite(source: Path, repo: Path | None = None, **overrides: Any) -> EvalSuite:
    options: dict[str, Any] = {
        "name": "versioned",
        "source": source,
        "key_field": "id",
        "task": prompt_task,
        "scorers": ["exact_match"],
        "thresholds": {"exact_match": 0.9},
        "partitions_def": dg.DynamicPartitionsDefinition(name="versioned_versions"),
        "git_repo": repo,
    }
    options.update(overrides)
    return EvalSuite(**options)


def sensor_context(
    sensor: dg.SensorDefinition,
    suite: EvalSuite,
    instance: dg.DagsterInstance,
    cursor: str | None,
    **resources: Any,
) -> dg.SensorEvaluationContext:
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(sensors=[sensor], resources={"evals": resources.get("evals", LocalEvalResource())}),
    )
    return dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=resources or None,
        definitions=defs,
        sensor_name=sensor.name,
    )


@dataclass
class Tick:
    run_requests: list[dg.RunRequest]
    dynamic_partitions_requests: list[Any]
    skip_message: str | None
    cursor: str | None


def evaluate(sensor: dg.SensorDefinition, context: dg.SensorEvaluationContext) -> Tick:
    """Evaluate the sensor the way Dagster's docs test sensors: call it with a built context."""
    with context:
        result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return Tick([], [], result.skip_message, context.cursor)
    assert isinstance(result, dg.SensorResult)
    return Tick(
        list(result.run_requests or []), list(result.dynamic_partitions_requests or []), None, result.cursor
    )


def tick(
    sensor: dg.SensorDefinition,
    suite: EvalSuite,
    instance: dg.DagsterInstance,
    cursor: str | None,
    **resources: Any,
) -> tuple[Tick, str | None]:
    outcome = evaluate(sensor, sensor_context(sensor, suite, instance, cursor, **resources))
    return outcome, outcome.cursor


def apply(result: Any, instance: dg.DagsterInstance) -> None:
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_release_sensor_runs_each_new_tag_exactly_once(tmp_path: Path, repo: Path, instance) -> None:
    suite = versioned_suite(tmp_path / "rows.jsonl", repo)
    sensor = build_release_sensor(suite, repo=repo)

    result, cursor = tick(sensor, suite, instance, None)
    assert result.run_requests == [] and "no new releases" in result.skip_message

    git(repo, "tag", "v1.0.0")
    result, cursor = tick(sensor, suite, instance, cursor)
    [request] = result.run_requests
    head = git(repo, "rev-parse", "HEAD")
    assert request.partition_key == "v1.0.0"
    assert request.run_key == f"release:v1.0.0:{head}"
    assert request.tags["dagster-evals/git_commit"] == head
    assert result.dynamic_partitions_requests[0].partition_keys == ["v1.0.0"]

    result, cursor = tick(sensor, suite, instance, cursor)
    assert result.run_requests == []

    (repo / "app.py").write_text("VERSION = 2\n")
    git(repo, "commit", "-qam", "second")
    git(repo, "tag", "-a", "v1.1.0", "-m", "annotated release")
    git(repo, "tag", "not-a-release")
    result, cursor = tick(sensor, suite, instance, cursor)
    assert [r.partition_key for r in result.run_requests] == ["v1.1.0"]
    assert result.run_requests[0].tags["dagster-evals/git_commit"] == git(repo, "rev-parse", "HEAD")


def test_release_sensor_first_tick_runs_only_the_latest_tag(tmp_path: Path, repo: Path, instance) -> None:
    for tag in ("v1.9.0", "v1.10.0", "v1.2.0"):
        git(repo, "tag", tag)
    suite = versioned_suite(tmp_path / "rows.jsonl", repo)
    result, cursor = tick(build_release_sensor(suite, repo=repo), suite, instance, None)
    assert [r.partition_key for r in result.run_requests] == ["v1.10.0"]
    result, _ = tick(build_release_sensor(suite, repo=repo), suite, instance, cursor)
    assert result.run_requests == []
    result, _ = tick(build_release_sensor(suite, repo=repo, initial="all"), suite, instance, None)
    assert [r.partition_key for r in result.run_requests] == ["v1.2.0", "v1.9.0", "v1.10.0"]


def test_release_sensor_outage_skips_and_keeps_the_cursor(tmp_path: Path, repo: Path, instance) -> None:
    suite = versioned_suite(tmp_path / "rows.jsonl", repo)
    sensor = build_release_sensor(suite, repo=repo)
    git(repo, "tag", "v1.0.0")
    _, cursor = tick(sensor, suite, instance, None)

    moved = tmp_path / "elsewhere"
    shutil.move(repo, moved)
    context = sensor_context(sensor, suite, instance, cursor)
    result = evaluate(sensor, context)
    assert result.run_requests == [] and "could not read tags" in result.skip_message
    assert context.cursor == cursor

    git(moved, "tag", "v2.0.0")
    shutil.move(moved, repo)
    result, cursor = tick(sensor, suite, instance, cursor)
    assert [r.partition_key for r in result.run_requests] == ["v2.0.0"]
    result, _ = tick(sensor, suite, instance, cursor)
    assert result.run_requests == []


def test_prompt_version_sensor_on_the_local_backend(tmp_path: Path, db_path: Path, instance) -> None:
    resource = LocalEvalResource(path=str(db_path))
    platform = resource.get_platform()
    suite = versioned_suite(tmp_path / "rows.jsonl")
    sensor = build_prompt_version_sensor(suite, prompt_slugs=["adder"])

    result, cursor = tick(sensor, suite, instance, None, evals=resource)
    assert result.run_requests == [] and "no new prompt versions" in result.skip_message

    v1 = platform.push_prompt_version("adder", {"offset": 0})
    platform.push_prompt_version("other", {"offset": 5})
    result, cursor = tick(sensor, suite, instance, cursor, evals=resource)
    [request] = result.run_requests
    assert request.partition_key == "adder@1"
    assert request.run_key == f"prompt:{v1.prompt_id}:1"
    assert request.tags["dagster-evals/prompt_version"] == "1"

    result, cursor = tick(sensor, suite, instance, cursor, evals=resource)
    assert result.run_requests == []

    platform.push_prompt_version("adder", {"offset": 1})
    platform.push_prompt_version("adder", {"offset": 2})
    result, cursor = tick(sensor, suite, instance, cursor, evals=resource)
    assert [r.partition_key for r in result.run_requests] == ["adder@2", "adder@3"]
    assert json.loads(cursor)["prompts"] == {v1.prompt_id: "3"}


@pytest.mark.parametrize(
    ("initial", "first_runs"),
    [
        ("none", []),
        ("latest", ["adder@3", "other@2"]),
        ("all", ["adder@1", "adder@2", "adder@3", "other@1", "other@2"]),
    ],
)
def test_prompt_version_sensor_first_tick_with_several_existing_versions(
    tmp_path: Path, db_path: Path, instance, initial: str, first_runs: list[str]
) -> None:
    resource = LocalEvalResource(path=str(db_path))
    platform = resource.get_platform()
    ids = {}
    for slug, offset in [("adder", 0), ("adder", 1), ("other", 0), ("adder", 2), ("other", 1)]:
        ids[slug] = platform.push_prompt_version(slug, {"offset": offset}).prompt_id
    suite = versioned_suite(tmp_path / "rows.jsonl")
    sensor = build_prompt_version_sensor(suite, initial=initial)  # type: ignore[arg-type]

    first, cursor = tick(sensor, suite, instance, None, evals=resource)
    assert sorted(r.partition_key for r in first.run_requests) == first_runs
    assert len({r.run_key for r in first.run_requests}) == len(first_runs)
    if not first_runs:
        assert first.skip_message is not None and "no new prompt versions" in first.skip_message
    # Whatever ran, every existing version now counts as seen: only versions pushed later run.
    assert json.loads(cursor or "{}")["prompts"] == {ids["adder"]: "3", ids["other"]: "2"}
    again, cursor = tick(sensor, suite, instance, cursor, evals=resource)
    assert again.run_requests == [] and "no new prompt versions" in (again.skip_message or "")

    platform.push_prompt_version("other", {"offset": 3})
    later, _ = tick(sensor, suite, instance, cursor, evals=resource)
    assert [r.partition_key for r in later.run_requests] == ["other@3"]
    assert later.run_requests[0].run_key == f"prompt:{ids['other']}:3"


def test_prompt_version_sensor_outage_skips_without_losing_versions(
    tmp_path: Path, db_path: Path, instance
) -> None:
    resource = LocalEvalResource(path=str(db_path))
    suite = versioned_suite(tmp_path / "rows.jsonl")
    sensor = build_prompt_version_sensor(suite)
    resource.get_platform().push_prompt_version("adder", {"offset": 0})
    _, cursor = tick(sensor, suite, instance, None, evals=resource)

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the database folder should be")
    broken = LocalEvalResource(path=str(blocked / "evals.sqlite"))
    context = sensor_context(sensor, suite, instance, cursor, evals=broken)
    result = evaluate(sensor, context)
    assert result.run_requests == [] and "could not list prompt versions" in result.skip_message
    assert context.cursor == cursor

    resource.get_platform().push_prompt_version("adder", {"offset": 1})
    result, cursor = tick(sensor, suite, instance, cursor, evals=resource)
    assert [r.partition_key for r in result.run_requests] == ["adder@2"]


def test_sensors_need_a_partitioned_suite(tmp_path: Path) -> None:
    suite = versioned_suite(tmp_path / "rows.jsonl", partitions_def=None)
    with pytest.raises(ConfigError, match="has no partitions_def"):
        build_prompt_version_sensor(suite)


def eval_job(suite: EvalSuite, resource: LocalEvalResource) -> dg.JobDefinition:
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite), dg.Definitions(resources={"evals": resource})
    )
    return defs.resolve_job_def(suite.job_name)


def run_request(suite: EvalSuite, request: dg.RunRequest, instance, resource):
    return eval_job(suite, resource).execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
    )


def report_of(result: dg.ExecuteInProcessResult, suite: EvalSuite) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key == suite.eval_report_key:
            return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    raise AssertionError("no eval report")


def test_prompt_versions_become_partitions_with_lineage_and_last_passing_baseline(
    tmp_path: Path, db_path: Path, instance
) -> None:
    resource = LocalEvalResource(path=str(db_path))
    platform = resource.get_platform()
    suite = versioned_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(10)), baseline="last_passing")
    sensor = build_prompt_version_sensor(suite, prompt_slugs=["adder"])

    reports = {}
    cursor = None
    for offset in (0, 1, 0):  # v1 passes, v2 breaks every answer, v3 fixes it again
        platform.push_prompt_version("adder", {"offset": offset, "note": f"rev {len(reports)}"})
        result, cursor = tick(sensor, suite, instance, cursor, evals=resource)
        apply(result, instance)
        [request] = result.run_requests
        run = run_request(suite, request, instance, resource)
        reports[request.partition_key] = report_of(run, suite)

    v1, v2, v3 = reports["adder@1"], reports["adder@2"], reports["adder@3"]
    assert (v1["score/exact_match"], v2["score/exact_match"], v3["score/exact_match"]) == (1.0, 0.0, 1.0)
    assert (v1["gate_passed"], v2["gate_passed"], v3["gate_passed"]) == (True, False, True)
    assert v2["baseline_id"] == v1["report_id"]
    assert v3["baseline_id"] == v1["report_id"]  # the last passing one, not the failed v2
    assert (v2["details"]["prompt"]["slug"], v2["prompt_version"], v2["partition"]) == (
        "adder",
        "2",
        "adder@2",
    )
    assert v2["dataset_version"] and len(v2["details"]["dataset"]["digest"]) == 64 and v2["dagster_run_id"]
    stored = platform.get_eval_report(v2["report_id"])
    assert (
        stored.metadata["prompt_version"] == "2" and stored.metadata["dagster_run_id"] == v2["dagster_run_id"]
    )
    assert instance.get_dynamic_partitions("versioned_versions") == ["adder@1", "adder@2", "adder@3"]


def test_release_partition_records_tag_and_commit(
    tmp_path: Path, repo: Path, db_path: Path, instance
) -> None:
    resource = LocalEvalResource(path=str(db_path))
    suite = versioned_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(5)), repo)
    git(repo, "tag", "v3.0.0")
    result, _ = tick(build_release_sensor(suite, repo=repo), suite, instance, None)
    apply(result, instance)
    report = report_of(run_request(suite, result.run_requests[0], instance, resource), suite)
    head = git(repo, "rev-parse", "HEAD")
    assert (report["release_tag"], report["git_commit"], report["partition"]) == ("v3.0.0", head, "v3.0.0")

    # A partition launched by hand (no sensor tags) still resolves the tag's commit from the repository.
    instance.add_dynamic_partitions("versioned_versions", ["v3.0.0"])
    by_hand = eval_job(suite, resource).execute_in_process(instance=instance, partition_key="v3.0.0")
    assert report_of(by_hand, suite)["git_commit"] == head


def test_previous_partition_baseline_and_pinned_baseline(tmp_path: Path, db_path: Path, instance) -> None:
    resource = LocalEvalResource(path=str(db_path))
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(4))
    suite = versioned_suite(source, baseline="previous_partition", thresholds={})
    instance.add_dynamic_partitions("versioned_versions", ["r1", "r2"])
    job = eval_job(suite, resource)
    r2 = report_of(job.execute_in_process(instance=instance, partition_key="r2"), suite)
    r1 = report_of(job.execute_in_process(instance=instance, partition_key="r1"), suite)
    assert "baseline_id" not in r1  # nothing before r1
    r2_again = report_of(job.execute_in_process(instance=instance, partition_key="r2"), suite)
    assert r2_again["baseline_id"] == r1["report_id"] != r2["report_id"]

    pinned = versioned_suite(source, baseline=r2["report_id"], thresholds={})
    run = eval_job(pinned, resource)
    again = report_of(run.execute_in_process(instance=instance, partition_key="r1"), pinned)
    assert again["baseline_id"] == r2["report_id"]

    # Pinned by the report's name instead of its id: the same report is the baseline, and the new report
    # compares against its scores.
    assert r2["details"]["report_name"] and r2["details"]["report_name"] != r2["report_id"]
    by_name = versioned_suite(source, baseline=r2["details"]["report_name"], thresholds={})
    named = report_of(
        eval_job(by_name, resource).execute_in_process(instance=instance, partition_key="r1"), by_name
    )
    assert named["baseline_id"] == r2["report_id"]
    assert named["diff/exact_match"] == pytest.approx(0.0)

    gone = versioned_suite(source, baseline="no-such-report", thresholds={})
    failed = eval_job(gone, resource).execute_in_process(
        instance=instance, partition_key="r1", raise_on_error=False
    )
    assert not failed.success
    message = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.error.message
    assert "pinned baseline 'no-such-report' does not exist on local" in message


def test_nightly_schedule_runs_the_newest_partition(tmp_path: Path, instance) -> None:
    suite = versioned_suite(tmp_path / "rows.jsonl")
    schedule = build_eval_schedule(suite, cron_schedule="0 3 * * *")
    assert schedule.cron_schedule == "0 3 * * *"
    skipped = schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(skipped, dg.SkipReason)
    assert "no prompt version or release partition" in (skipped.skip_message or "")

    instance.add_dynamic_partitions("versioned_versions", ["v1.0.0", "v1.1.0"])
    request = schedule(dg.build_schedule_context(instance=instance))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "v1.1.0" and request.tags["dagster-evals/trigger"] == "schedule"

    plain = build_eval_schedule(versioned_suite(tmp_path / "rows.jsonl", partitions_def=None, name="plain"))
    request = plain(dg.build_schedule_context(instance=instance))
    assert isinstance(request, dg.RunRequest) and request.partition_key is None
