"""Every platform operation survives the faults a real API serves — rate limits with and without Retry-After,
5xx, connections dropped before or after the request took effect, responses slower than the client's
timeout, truncated JSON — over real HTTP on 127.0.0.1 against the fake servers, with faults scripted on a
fixed seed. Afterwards the platform holds exactly the source rows and the Dagster metadata matches it; when
the retry budget runs out the run fails naming status and endpoint.

Nothing here depends on how fast the machine is: a slow response is withheld until the client has given up
and hung up, and every other request answers well inside the client's timeout."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import (
    EvalSuite,
    PlatformFunction,
    build_eval_suite_definitions,
    build_prompt_version_sensor,
)
from dagster_evals.backends.braintrust.api import CreatePrompt, PatchPrompt
from dagster_evals.testing import BraintrustFake, Fault, KeywordsAIFake, ServerThread
from tests.conftest import add_task, materialization, qa_rows, write_jsonl
from tests.fault_helpers import (
    PASS,
    PLATFORMS,
    EndpointFaults,
    LoseOneRow,
    assert_exactly,
    fault_plan,
    make_fake,
    stored_rows,
)
from tests.fault_helpers import make_resource as fault_resource

# The client's timeout while slow responses are served: each slow response costs exactly this long, and an
# ordinary response from a fake on 127.0.0.1 takes a small fraction of it even on a loaded machine. Every
# other fault kind runs with the resources' default timeout.
SLOW_TIMEOUT_S = 2.0
FAULTS = {
    "429-retry-after": Fault("429", retry_after=0.02),
    "429": Fault("429"),
    "500": Fault("500"),
    "502": Fault("502"),
    "503": Fault("503"),
    "reset": Fault("reset"),
    "reset-after": Fault("reset", after=True),
    "slow": Fault("slow", delay_s=None),
    "truncate-after": Fault("truncate", after=True),
}
ROWS = 20

BT_TASK = PlatformFunction(
    platform="braintrust",
    name="adder",
    spec={
        "inline_context": {"runtime": "python", "version": "3.11"},
        "code": "def handler(input):\n    return str(input['a'] + input['b'])\n",
    },
)
BT_SCORER = PlatformFunction(platform="braintrust", name="ExactMatch", spec={"global_function": "ExactMatch"})
KW_EVALUATOR = PlatformFunction(platform="keywordsai", name="exact_match_eval")


@pytest.fixture(params=PLATFORMS)
def platform(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake(platform: str) -> BraintrustFake | KeywordsAIFake:
    return make_fake(platform)


def make_resource(platform: str, url: str, **overrides: Any) -> Any:
    """The fault tests' resource on the fake at `url`, without settle windows.

    Every fault here takes effect while its request is being answered or never (none lands after the client
    gave up), so a listing taken at once is as final as one taken after a pause: after an ambiguous failure
    the client still looks for what its request created before sending it again (Braintrust's eval launch,
    Keywords AI's creates), and Keywords AI's reconciliation still lists until it is clean twice in a row —
    neither waits in between. Writes that land late, and the settle windows that catch them, are tested in
    test_braintrust_launches.py, test_keywordsai_late_writes.py and test_fault_proxy.py.
    """
    settle = {"launch_settle_s": 0.0} if platform == "braintrust" else {"settle_delay_s": 0.0}
    return fault_resource(platform, url, **(settle | overrides))


def suite_for(platform: str, source: Path, **overrides: Any) -> EvalSuite:
    if platform == "braintrust":
        task: Any = BT_TASK
        scorers: list[Any] = [BT_SCORER]
    else:
        task, scorers = add_task, ["exact_match", KW_EVALUATOR]
    options: dict[str, Any] = {
        "name": "faulty",
        "source": source,
        "key_field": "id",
        "task": task,
        "scorers": scorers,
        "baseline": None,
    }
    options.update(overrides)
    return EvalSuite(**options)


def materialize(
    suite: EvalSuite, instance: dg.DagsterInstance, resource: Any, keys: list[dg.AssetKey]
) -> dg.ExecuteInProcessResult:
    defs = build_eval_suite_definitions(suite)
    return dg.materialize(
        [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)],
        instance=instance,
        resources={"evals": resource},
        selection=keys,
        raise_on_error=False,
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(event.step_failure_data.error.to_string())
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error
    )


def timeout_for(fault: Fault) -> dict[str, Any]:
    """The client timeout to run under `fault`: short only where slow responses must time out."""
    return {"timeout_s": SLOW_TIMEOUT_S} if fault.kind == "slow" else {}


def inject(fake: BraintrustFake | KeywordsAIFake, fault: Fault, seed: int) -> list[Fault]:
    """Script faults on `seed` into the fake's next responses; returns the plan."""
    # A slow response costs a whole client timeout: fewer of them keep the test quick.
    plan = fault_plan(fault, seed=seed, rate=0.03 if fault.kind == "slow" else 0.35)
    fake.faults.clear()
    fake.faults.injected.clear()
    fake.faults.randomize(0.0)
    fake.faults.schedule(*plan)
    return plan


def served(fake: BraintrustFake | KeywordsAIFake, plan: list[Fault]) -> int:
    """How many real faults of the plan the fake served (requests consumed the plan in order)."""
    consumed = sum(fake.faults.injected.values())
    return sum(1 for fault in plan[:consumed] if fault is not PASS)


def prompt_suite(platform: str, source: Path) -> EvalSuite:
    return suite_for(
        platform,
        source,
        name="prompted",
        partitions_def=dg.DynamicPartitionsDefinition(name="prompted_versions"),
    )


class Prompts:
    """Prompt versions published on the fake (faults paused), and the run key each must get."""

    def __init__(self, platform: str, fake: BraintrustFake | KeywordsAIFake, url: str) -> None:
        self.platform = platform
        self.fake = fake
        self.url = url
        self.ids: dict[str, str] = {}
        self.run_keys: list[str] = []

    def publish(self, name: str, revision: int) -> None:
        content = {"offset": revision}
        if isinstance(self.fake, KeywordsAIFake):
            if name not in self.ids:
                self.ids[name] = self.fake.add_prompt(name)
            number = self.fake.add_prompt_version(self.ids[name], {"variables": content})
            self.run_keys.append(f"prompt:{self.ids[name]}:{number}")
            return
        bt = make_resource("braintrust", self.url).get_platform()
        try:
            data = {"prompt": {"type": "completion", "content": json.dumps(content)}}
            if name not in self.ids:
                project = bt.project()
                prompt = bt.client.create_prompt(
                    CreatePrompt(project_id=project.id, name=name, slug=name, prompt_data=data)
                )
                self.ids[name] = prompt.id
            else:
                prompt = bt.client.patch_prompt(self.ids[name], PatchPrompt(prompt_data=data))
            self.run_keys.append(f"prompt:{prompt.id}:{prompt.xact_id}")
        finally:
            bt.close()


def tick(
    sensor: dg.SensorDefinition,
    suite: EvalSuite,
    instance: dg.DagsterInstance,
    resource: Any,
    cursor: str | None,
) -> tuple[list[dg.RunRequest], str | None, str | None]:
    """One sensor evaluation: (run requests, skip message, cursor afterwards)."""
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite), dg.Definitions(sensors=[sensor], resources={"evals": resource})
    )
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"evals": resource},
        definitions=defs,
        sensor_name=sensor.name,
    ) as context:
        result = sensor(context)
        if isinstance(result, dg.SkipReason):
            return [], result.skip_message, context.cursor
    assert isinstance(result, dg.SensorResult)
    return list(result.run_requests or []), None, result.cursor


# -- every operation under every fault -----------------------------------------------------------------
# The requests that start something and are not safe to repeat, plus the eval report poll: each gets one
# fault of the kind under test on top of the seeded plan.
LAUNCHES = {
    "braintrust": [("POST", r"^/v1/eval$")],
    "keywordsai": [
        ("POST", r"^/api/datasets/$"),
        ("POST", r"/eval-reports/create$"),
        ("GET", r"/eval-reports/list/$"),
        ("GET", r"/eval-reports/list/$"),
    ],
}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_operations_under_faults_leave_exactly_the_source_rows(
    kind: str, platform: str, fake, tmp_path: Path, instance
) -> None:
    fault = FAULTS[kind]
    rows = qa_rows(ROWS)
    source = write_jsonl(tmp_path / "rows.jsonl", rows)
    suite = suite_for(platform, source)
    endpoints = EndpointFaults(fake.app)
    with ServerThread(endpoints) as server:
        batch = {"insert_batch_size": 4} if platform == "braintrust" else {"batch_size": 4}
        resource = make_resource(platform, server.url, **timeout_for(fault), **batch)

        # Dataset sync: every row lands once, whatever the responses looked like.
        plan = inject(fake, fault, seed=11)
        result = materialize(suite, instance, resource, [suite.dataset_key])
        faults_served = served(fake, plan)
        fake.faults.clear()
        assert result.success, failure_text(result)
        assert faults_served >= (2 if fault.kind != "slow" else 1)
        assert_exactly(stored_rows(fake, "faulty"), rows)
        synced = materialization(result, suite.dataset_key)
        assert (synced["rows_total"], synced["rows_added"], synced["rows_sent"]) == (ROWS, ROWS, ROWS)
        assert synced["dagster/row_count"] == len(stored_rows(fake, "faulty"))

        # Under the same faults: an update (one row changed, one removed, one new), a snapshot, and the
        # eval launch (on Keywords AI also the eval report poll), with the first call of each launch
        # endpoint faulted as well.
        rows[3]["expected"] = "changed"
        del rows[7]
        rows.append({"id": "q-new", "input": {"a": 9, "b": 2}, "expected": "11", "metadata": {"kind": "add"}})
        write_jsonl(source, rows)
        plan = inject(fake, fault, seed=12)
        for method, path in LAUNCHES[platform]:
            endpoints.arm(method, path, fault)
        keys = [suite.dataset_key, suite.snapshot_key, suite.eval_report_key]
        again = materialize(suite, instance, resource, keys)
        faults_served = served(fake, plan)
        fake.faults.clear()
        endpoints.clear()
        assert again.success, failure_text(again)
        assert faults_served >= 1 and len(endpoints.hits) == len(LAUNCHES[platform]), endpoints.hits
        assert_exactly(stored_rows(fake, "faulty"), rows)
        synced = materialization(again, suite.dataset_key)
        assert (synced["rows_added"], synced["rows_updated"], synced["rows_removed"]) == (1, 1, 1)
        assert synced["rows_total"] == len(stored_rows(fake, "faulty")) == ROWS
        assert materialization(again, suite.snapshot_key)["row_count"] == ROWS
        report = materialization(again, suite.eval_report_key)
        assert (report["rows_in_snapshot"], report["rows_scored"], report["rows_errored"]) == (ROWS, ROWS, 0)
        assert_eval_on_platform(fake, report)

        # Prompt-version sensor ticks: a tick either requests runs or skips with its cursor unchanged.
        run_keys, skipped = sensor_rounds(platform, fake, server.url, instance, source, fault)
        assert skipped >= 1 and len(run_keys) == len(set(run_keys)), "a version was requested twice"


def sensor_rounds(
    platform: str, fake: Any, url: str, instance: dg.DagsterInstance, source: Path, fault: Fault
) -> tuple[list[str], int]:
    """Publish prompt versions in rounds, tick the sensor under faults after each, then without faults.

    Returns every run key requested and the number of ticks skipped for an outage. Each version must get
    exactly one run request overall.
    """
    suite = prompt_suite(platform, source)
    sensor = build_prompt_version_sensor(suite, initial="all")
    # No retries, so that ticks meeting a fault skip.
    resource = make_resource(platform, url, **timeout_for(fault), max_retries=0)
    prompts = Prompts(platform, fake, url)
    requested: list[str] = []
    cursor: str | None = None
    skipped = 0
    for round_ in range(2):
        prompts.publish(f"prompt-{round_}", 0)
        if round_:
            prompts.publish(f"prompt-{round_ - 1}", 1)
        inject(fake, fault, seed=20 + round_)
        for _ in range(12):
            runs, skip, after = tick(sensor, suite, instance, resource, cursor)
            if skip is not None and "could not list prompt versions" in skip:
                assert after == cursor, "an outage moved the cursor"
                assert not runs
                skipped += 1
                continue
            requested += [r.run_key for r in runs if r.run_key]
            cursor = after
            break
        else:
            raise AssertionError("no sensor tick got through the faults in 12 tries")
        fake.faults.clear()
    # With the faults gone, one tick at the default timeout gets through first time.
    calm = make_resource(platform, url, max_retries=0)
    runs, skip, cursor = tick(sensor, suite, instance, calm, cursor)
    assert not runs and skip is not None and "no new prompt versions" in skip
    assert sorted(requested) == sorted(prompts.run_keys)
    return requested, skipped


def assert_eval_on_platform(fake: Any, report: dict[str, Any]) -> None:
    """The eval ran once on the platform and recorded one result per row."""
    expected_score = (ROWS - 1) / ROWS  # one row's expected answer was changed
    if isinstance(fake, BraintrustFake):
        experiments = [o for o in fake.objects["experiment"].values() if not o.data.get("deleted_at")]
        assert [e.id for e in experiments] == [report["report_id"]], "the eval ran more than once"
        assert experiments[0].store is not None
        roots = [r for r in experiments[0].store.rows() if r["is_root"]]  # score spans are children
        assert len(roots) == report["rows_in_snapshot"] == ROWS
        assert report["score/ExactMatch"] == pytest.approx(expected_score, abs=5e-5)
        return
    eval_dataset_id, _, run_id = str(report["report_id"]).partition(":")
    assert len(fake.datasets) == 2, "an eval dataset was created twice"
    runs = [",".join(t["task_id"] for t in r["tasks"]) for r in fake.reports[eval_dataset_id]]
    assert runs == [run_id], "the eval report ran more than once"
    assert fake.reports[eval_dataset_id][0]["status"] == report["details"]["status"] == "completed"
    keys = [log["metadata"]["dagster_evals_result_id"] for log in fake.dataset_logs(eval_dataset_id)]
    assert len(keys) == len(set(keys)) == ROWS, "results lost or written twice"
    assert report["score/exact_match_eval"] == pytest.approx(expected_score, abs=5e-5)
    assert report["score/exact_match"] == pytest.approx(expected_score, abs=5e-5)


# -- a launch that took effect but was answered too late ---------------------------------------------------
LANDED_LATE = {"braintrust": ("POST", r"/v1/eval$"), "keywordsai": ("POST", r"/eval-reports/create$")}


def test_eval_launch_that_landed_but_answered_after_the_timeout_runs_once(
    platform: str, fake, tmp_path: Path, instance
) -> None:
    suite = suite_for(platform, write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS)))
    endpoints = EndpointFaults(fake.app)
    with ServerThread(endpoints) as server:
        resource = make_resource(platform, server.url, timeout_s=SLOW_TIMEOUT_S)
        assert materialize(suite, instance, resource, [suite.dataset_key, suite.snapshot_key]).success
        # The launch takes effect on the platform, but its answer never comes: the client times out.
        method, path = LANDED_LATE[platform]
        endpoints.arm(method, path, Fault("slow", delay_s=None, after=True))
        endpoints.arm(method, path, PASS)  # only counts a launch sent again
        result = materialize(suite, instance, resource, [suite.eval_report_key])
    assert result.success, failure_text(result)
    assert len(endpoints.hits) == 1, f"the launch was sent again: {endpoints.hits}"
    report = materialization(result, suite.eval_report_key)
    assert (report["rows_scored"], report["rows_errored"]) == (ROWS, 0)
    # The fake took the held launch in and nothing after it: the client found what it had started.
    launches = [
        n for route, n in fake.requests.items() if route.startswith(method) and re.search(path, route)
    ]
    assert launches == [1], fake.requests
    if isinstance(fake, BraintrustFake):
        experiments = [o.id for o in fake.objects["experiment"].values() if not o.data.get("deleted_at")]
        assert experiments == [report["report_id"]], "the eval was launched twice"
    else:
        eval_dataset_id, _, run_id = str(report["report_id"]).partition(":")
        # The run id is the comma-joined task ids (one task per evaluator, the generated client's shape
        # the fake serves), not the fake's internal report id.
        runs = [",".join(t["task_id"] for t in r["tasks"]) for r in fake.reports[eval_dataset_id]]
        assert runs == [run_id], "the eval report started twice"


# -- a platform that loses rows silently ------------------------------------------------------------------
def test_sync_fails_when_the_platform_silently_loses_a_row_and_a_rerun_restores_it(
    platform: str, fake, tmp_path: Path, instance
) -> None:
    rows = qa_rows(ROWS)
    suite = suite_for(platform, write_jsonl(tmp_path / "rows.jsonl", rows))
    losing = LoseOneRow(fake.app, platform)
    with ServerThread(losing) as server:
        batch = {"insert_batch_size": 5} if platform == "braintrust" else {"batch_size": 5}
        resource = make_resource(platform, server.url, **batch)
        failed = materialize(suite, instance, resource, [suite.dataset_key])

        # Every request was acknowledged, yet the row count after the sync gives the loss away.
        assert losing.lost is not None
        on_platform = stored_rows(fake, "faulty")
        assert len(on_platform) == ROWS - 1 and losing.lost not in {r["id"] for r in on_platform}
        assert not failed.success
        text = failure_text(failed)
        assert "CountMismatchError" in text
        assert f"holds {ROWS - 1} rows after the sync, but the source has {ROWS}" in text
        assert not failed.get_asset_materialization_events(), "a short dataset was recorded as synced"

        rerun = materialize(suite, instance, resource, [suite.dataset_key])
        assert rerun.success, failure_text(rerun)
        assert_exactly(stored_rows(fake, "faulty"), rows)
        synced = materialization(rerun, suite.dataset_key)
        assert (synced["rows_added"], synced["rows_sent"], synced["rows_total"]) == (1, 1, ROWS)


# -- retry budget exhausted -----------------------------------------------------------------------------
INSERTS = {"braintrust": r"^/v1/dataset/[^/]+/insert$", "keywordsai": r"/logs/bulk/$"}
PROMPT_LISTS = {
    "braintrust": ("/v1/prompt", r"^/v1/prompt$"),
    "keywordsai": ("/api/prompts/", r"^/api/prompts/$"),
}


def test_sync_out_of_retries_fails_naming_status_and_endpoint_then_rerun_completes(
    platform: str, fake, tmp_path: Path, instance
) -> None:
    rows = qa_rows(ROWS)
    suite = suite_for(platform, write_jsonl(tmp_path / "rows.jsonl", rows))
    endpoints = EndpointFaults(fake.app)
    with ServerThread(endpoints) as server:
        batch = {"insert_batch_size": 5} if platform == "braintrust" else {"batch_size": 5}
        resource = make_resource(platform, server.url, max_retries=1, **batch)
        # Two batches land, then the insert endpoint answers 503 for longer than the budget lasts.
        for fault in [PASS, PASS] + [Fault("503")] * 12:
            endpoints.arm("POST", INSERTS[platform], fault)
        failed = materialize(suite, instance, resource, [suite.dataset_key])
        endpoints.clear()

        assert not failed.success
        text = failure_text(failed)
        assert "HTTP 503" in text and "POST /" in text
        assert ("/insert" if platform == "braintrust" else "/logs/bulk/") in text
        partial = stored_rows(fake, "faulty")
        assert len(partial) == 10 and len({r["id"] for r in partial}) == 10

        rerun = materialize(suite, instance, resource, [suite.dataset_key])
        assert rerun.success, failure_text(rerun)
        assert_exactly(stored_rows(fake, "faulty"), rows)
        synced = materialization(rerun, suite.dataset_key)
        assert (synced["rows_added"], synced["rows_sent"], synced["rows_unchanged"]) == (10, 10, 10)
        assert synced["rows_total"] == ROWS


def test_eval_launch_out_of_retries_fails_naming_status_and_endpoint(
    platform: str, fake, tmp_path: Path, instance
) -> None:
    suite = suite_for(platform, write_jsonl(tmp_path / "rows.jsonl", qa_rows(ROWS)))
    endpoints = EndpointFaults(fake.app)
    with ServerThread(endpoints) as server:
        resource = make_resource(platform, server.url, max_retries=1)
        assert materialize(suite, instance, resource, [suite.dataset_key, suite.snapshot_key]).success
        method, path = LAUNCHES[platform][-1 if platform == "braintrust" else 1]
        for _ in range(12):
            endpoints.arm(method, path, Fault("502"))
        failed = materialize(suite, instance, resource, [suite.eval_report_key])
        endpoints.clear()

    assert not failed.success
    text = failure_text(failed)
    endpoint = "POST /v1/eval" if platform == "braintrust" else "/eval-reports/create"
    assert "HTTP 502" in text and endpoint in text
    if isinstance(fake, BraintrustFake):
        assert not fake.objects["experiment"], "a failed launch left an experiment behind"
    else:
        assert not any(fake.reports.values()), "a failed launch left an eval report behind"


def test_sensor_out_of_retries_skips_with_the_cursor_unchanged(
    platform: str, fake, tmp_path: Path, instance
) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(3))
    suite = prompt_suite(platform, source)
    sensor = build_prompt_version_sensor(suite, initial="all")
    endpoints = EndpointFaults(fake.app)
    with ServerThread(endpoints) as server:
        resource = make_resource(platform, server.url, max_retries=1)
        prompts = Prompts(platform, fake, server.url)
        prompts.publish("greeter", 0)
        runs, _, cursor = tick(sensor, suite, instance, resource, None)
        assert [r.run_key for r in runs] == prompts.run_keys

        prompts.publish("greeter", 1)
        endpoint, pattern = PROMPT_LISTS[platform]
        for _ in range(4):
            endpoints.arm("GET", pattern, Fault("503"))
        runs, skip, after = tick(sensor, suite, instance, resource, cursor)
        assert runs == [] and after == cursor
        assert skip is not None and "could not list prompt versions" in skip
        assert "HTTP 503" in skip and f"GET {endpoint}" in skip

        endpoints.clear()
        runs, _, _ = tick(sensor, suite, instance, resource, cursor)
    assert [r.run_key for r in runs] == prompts.run_keys[1:]
