"""The prompt-version sensor against the Braintrust and Keywords AI fakes over real HTTP: new versions
become partitions with exactly one run each, the eval records the prompt version on both sides, an outage
skips the tick without losing anything, and a steady-state tick costs a bounded number of requests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    BraintrustResource,
    EvalPlatformResource,
    EvalSuite,
    KeywordsAIResource,
    PromptVersion,
    build_eval_suite_definitions,
    build_prompt_version_sensor,
)
from dagster_evals.backends.braintrust import api as bt_api
from dagster_evals.testing import BraintrustFake, KeywordsAIFake
from tests.conftest import qa_rows, write_jsonl

KEY = "sk-test-prompts"


def offset_task(input: dict[str, Any], prompt: PromptVersion | None) -> str:
    """Adds the `offset=N` found in the prompt under evaluation, so a prompt change changes scores."""
    match = re.search(r"offset=(\d+)", json.dumps(prompt.content)) if prompt else None
    return str(input["a"] + input["b"] + (int(match.group(1)) if match else 0))


@dataclass
class Platform:
    """A fake platform behind a resource, with a way to save a new prompt version."""

    resource: EvalPlatformResource
    push: Callable[[int], None]
    requests: Callable[[], int]
    faults: Any
    fake: BraintrustFake | KeywordsAIFake


@pytest.fixture(params=["braintrust", "keywordsai"])
def platform(request: pytest.FixtureRequest) -> Iterator[Platform]:
    if request.param == "braintrust":
        fake = BraintrustFake(KEY)
        with fake.serve() as server:
            resource = BraintrustResource(
                api_key=KEY, api_url=server.url, project="prompts", backoff_base_s=0.01, max_retries=2
            )
            bt = resource.get_platform()
            project = bt.project()
            state: dict[str, str] = {}

            def push_bt(offset: int) -> None:
                data = {"prompt": {"type": "completion", "content": f"Add. offset={offset}"}}
                if "id" not in state:
                    state["id"] = bt.client.create_prompt(
                        bt_api.CreatePrompt(
                            project_id=project.id, name="Adder", slug="adder", prompt_data=data
                        )
                    ).id
                else:
                    bt.client.patch_prompt(state["id"], bt_api.PatchPrompt(prompt_data=data))

            yield Platform(resource, push_bt, lambda: sum(fake.requests.values()), fake.faults, fake)
    else:
        fake = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=None)
        with fake.serve() as server:
            resource = KeywordsAIResource(
                api_key=KEY,
                base_url=server.url,
                rate_limit_per_minute=None,
                max_retries=2,
                eval_poll_interval_s=0.01,
            )
            ids: dict[str, str] = {}

            def push_kw(offset: int) -> None:
                content = {"messages": [{"role": "system", "content": f"Add. offset={offset}"}]}
                if "id" not in ids:
                    ids["id"] = fake.add_prompt("Adder", [content], slug="adder")
                else:
                    fake.add_prompt_version(ids["id"], content)

            yield Platform(resource, push_kw, lambda: sum(fake.requests.values()), fake.faults, fake)


def recorded_on_platform(fake: BraintrustFake | KeywordsAIFake, report_id: str) -> dict[str, Any]:
    """What the platform itself holds about an eval run, read from the fake's own state.

    Braintrust: the experiment's metadata and name. Keywords AI: the eval dataset's name and description,
    and the run record each result log carries (Keywords AI has no metadata on a dataset or eval report).
    """
    if isinstance(fake, BraintrustFake):
        with fake.lock:
            experiment = fake.objects["experiment"][report_id].data
            return {"name": experiment["name"], **(experiment.get("metadata") or {})}
    eval_dataset_id = report_id.partition(":")[0]
    dataset = fake.datasets[eval_dataset_id]
    runs = [log["metadata"]["dagster_evals_run"] for log in fake.dataset_logs(eval_dataset_id)]
    assert runs and all(run == runs[0] for run in runs), "result logs disagree about their run"
    return {"name": dataset["name"], "description": dataset.get("description") or "", "run": runs[0]}


def suite_for(source: Path) -> EvalSuite:
    return EvalSuite(
        name="prompted",
        source=source,
        key_field="id",
        task=offset_task,
        scorers=["exact_match"],
        thresholds={"exact_match": 0.9},
        partitions_def=dg.DynamicPartitionsDefinition(name="prompted_versions"),
    )


def tick(
    sensor: dg.SensorDefinition, defs: dg.Definitions, instance, cursor, resource
) -> tuple[Any, str | None]:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"evals": resource}, definitions=defs
    ) as context:
        result = sensor(context)
        return result, (result.cursor if isinstance(result, dg.SensorResult) else context.cursor)


def test_prompt_versions_on_the_platform_run_once_each_with_lineage(
    tmp_path: Path, instance, platform
) -> None:
    suite = suite_for(write_jsonl(tmp_path / "rows.jsonl", qa_rows(6)))
    sensor = build_prompt_version_sensor(suite, prompt_slugs=["adder"])
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(sensors=[sensor], resources={"evals": platform.resource}),
    )
    job = defs.resolve_job_def(suite.job_name)

    def run(request: dg.RunRequest) -> dict[str, Any]:
        result = job.execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
        )
        for event in result.get_asset_materialization_events():
            if event.materialization.asset_key == suite.eval_report_key:
                return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
        raise AssertionError("no eval report")

    platform.push(0)
    first, cursor = tick(sensor, defs, instance, None, platform.resource)
    [request] = first.run_requests
    instance.add_dynamic_partitions("prompted_versions", [request.partition_key])
    report = run(request)
    assert report["score/exact_match"] == 1.0 and report["gate_passed"] is True
    assert (report["details"]["prompt"]["slug"], report["partition"]) == ("adder", request.partition_key)
    v1 = report["prompt_version"]
    stored = platform.resource.get_platform().get_eval_report(report["report_id"])
    assert stored.rows_in_snapshot == 6
    assert_lineage_on_platform(platform.fake, report)

    platform.push(1)
    second, cursor = tick(sensor, defs, instance, cursor, platform.resource)
    [request] = second.run_requests
    instance.add_dynamic_partitions("prompted_versions", [request.partition_key])
    report = run(request)
    assert report["prompt_version"] != v1
    assert report["score/exact_match"] == 0.0 and report["gate_passed"] is False
    assert_lineage_on_platform(platform.fake, report)

    before = platform.requests()
    steady, cursor = tick(sensor, defs, instance, cursor, platform.resource)
    assert isinstance(steady, dg.SkipReason)
    assert platform.requests() - before <= 2  # one listing page, not every prompt's history


def assert_lineage_on_platform(fake: BraintrustFake | KeywordsAIFake, report: dict[str, Any]) -> None:
    """The other side: the platform names the prompt version the run evaluated, and the Dagster run."""
    recorded = recorded_on_platform(fake, str(report["report_id"]))
    partition = f"{report['details']['prompt']['slug']}@{report['prompt_version']}"
    assert report["partition"] == partition
    assert recorded["name"] == report["details"]["report_name"] and partition in recorded["name"]
    if isinstance(fake, BraintrustFake):
        assert (recorded["prompt_slug"], str(recorded["prompt_version"])) == (
            "adder",
            report["prompt_version"],
        )
        assert recorded["partition"] == partition
        assert recorded["dagster_run_id"] == report["dagster_run_id"]
        assert recorded["dataset_version"] == report["dataset_version"]
    else:
        assert recorded["run"]["name"] == report["details"]["report_name"]
        assert recorded["run"]["dataset_version"] == report["dataset_version"]
        assert report["dataset_version"] in recorded["description"]


def test_outage_skips_the_tick_and_loses_no_version(tmp_path: Path, instance, platform) -> None:
    suite = suite_for(tmp_path / "rows.jsonl")
    sensor = build_prompt_version_sensor(suite, prompt_slugs=["adder"])
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(sensors=[sensor], resources={"evals": platform.resource}),
    )
    platform.push(0)
    _, cursor = tick(sensor, defs, instance, None, platform.resource)

    platform.push(1)
    platform.faults.schedule(*["503"] * 10)
    down, after_outage = tick(sensor, defs, instance, cursor, platform.resource)
    assert isinstance(down, dg.SkipReason) and "could not list prompt versions" in (down.skip_message or "")
    assert "503" in (down.skip_message or "")
    assert after_outage == cursor
    platform.faults.clear()

    recovered, cursor = tick(sensor, defs, instance, cursor, platform.resource)
    assert len(recovered.run_requests) == 1
    again, _ = tick(sensor, defs, instance, cursor, platform.resource)
    assert isinstance(again, dg.SkipReason)
