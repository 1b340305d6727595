"""`POST /v1/eval` and experiment creation under a slow network: a run longer than the HTTP timeout is
waited for until it has finished, and a request the server applies after the client gave up leaves exactly
one experiment. Driven by events in the fake (held requests, a paused run), never by timing luck: the
server holds the request until the test releases it, so the client's timeout always fires first."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dagster_evals.backends.braintrust import BraintrustPlatform
from dagster_evals.engine.models import DatasetRow, EvalRequest, PlatformFunction, content_hash
from dagster_evals.testing.braintrust import BraintrustFake
from dagster_evals.testing.server import ServerThread
from tests.conftest import braintrust_platform

KEY = "test-key"
ROWS = 6
TASK = PlatformFunction(
    platform="braintrust",
    name="echo",
    spec={
        "inline_context": {"runtime": "python", "version": "3.11"},
        "code": "def handler(input):\n    return str(input)",
    },
)
SCORER = PlatformFunction(platform="braintrust", name="ExactMatch", spec={"global_function": "ExactMatch"})


@pytest.fixture
def fake() -> BraintrustFake:
    return BraintrustFake(api_key=KEY)


def platform(server: ServerThread, **options: Any) -> BraintrustPlatform:
    return braintrust_platform(server.url, KEY, **options)


def request_over_a_snapshot(bt: BraintrustPlatform, name: str) -> EvalRequest:
    dataset = bt.ensure_dataset("ds")
    rows = [
        DatasetRow(
            id=f"r{i}", input=str(i), expected=str(i), content_hash=content_hash(str(i), str(i), {}, [])
        )
        for i in range(ROWS)
    ]
    bt.upsert_rows(dataset, rows)
    snapshot = bt.snapshot(dataset)
    return EvalRequest(name=name, snapshot=snapshot, task=TASK, scorers=[SCORER])


def experiments(fake: BraintrustFake) -> list[dict[str, Any]]:
    return [o.data for o in fake.objects["experiment"].values() if not o.data.get("deleted_at")]


def test_an_eval_longer_than_the_http_timeout_is_reported_only_once_finished(fake, server) -> None:
    bt = platform(server, timeout_s=0.5, launch_settle_s=30)
    request = request_over_a_snapshot(bt, "long-eval")
    resume = threading.Event()

    def pause_after_the_first_row(done: int) -> None:
        if done == 1:
            resume.wait(timeout=60)

    def resume_once_the_client_reads_the_partial_run(route: str, args: list[str], body: Any) -> None:
        if route == "POST /v1/experiment/{id}/fetch":
            resume.set()

    fake.eval_row_hook = pause_after_the_first_row
    fake.after_request = resume_once_the_client_reads_the_partial_run
    report = bt.run_eval(request)
    assert resume.is_set(), "the client read the run while it was half-finished"
    assert (report.rows_scored, report.rows_errored) == (ROWS, 0)
    assert report.scores["ExactMatch"].mean == 1.0 and report.scores["ExactMatch"].count == ROWS
    assert len(experiments(fake)) == 1


def test_an_eval_launch_applied_after_the_client_gave_up_leaves_one_experiment(fake, server) -> None:
    bt = platform(server, timeout_s=0.5, launch_settle_s=30)
    request = request_over_a_snapshot(bt, "late-eval")
    fake.hold_evals = threading.Event()

    def apply_the_held_launch_once_the_client_looks_for_it(route: str, args: list[str], body: Any) -> None:
        if route == "GET /v1/experiment" and fake.hold_evals is not None:
            fake.hold_evals.set()

    fake.after_request = apply_the_held_launch_once_the_client_looks_for_it
    report = bt.run_eval(request)
    assert fake.requests["POST /v1/eval"] == 1, "not sent again while the first one could still land"
    assert len(experiments(fake)) == 1
    assert (report.rows_scored, report.rows_errored) == (ROWS, 0)


# JSON only: with `stream=True` the held launch's response is cut when the client times out, and the fake then
# never finishes that run, so the test would wait on the fake rather than on the client. A streamed launch that
# stops after its `start` event is covered by the test after the next one.
@pytest.mark.parametrize("stream", [False], ids=["json"])
def test_an_eval_launch_whose_experiment_carries_no_run_token_is_sent_once(fake, server, stream) -> None:
    """The fault option `eval_drops_metadata`: the experiment `/v1/eval` creates carries none of the
    request's metadata, so the run token never shows. The launch lands after the client gave up, later than
    the settle window: the experiment found by name and dataset is the evidence, and nothing is resent."""
    fake.eval_drops_metadata = True
    bt = platform(server, timeout_s=0.5, launch_settle_s=1, stream_evals=stream)
    request = request_over_a_snapshot(bt, "tokenless-eval")
    fake.hold_evals = threading.Event()
    polls = {"n": 0}

    def apply_the_held_launch_after_a_few_looks(route: str, args: list[str], body: Any) -> None:
        # Any request after the launch is a look: listing experiments (no `start` event seen before the
        # client timed out) or reading the experiment a streamed `start` event named (when it was).
        if "/v1/experiment" in route and fake.hold_evals is not None:
            polls["n"] += 1
            if polls["n"] == 3:
                fake.hold_evals.set()

    fake.after_request = apply_the_held_launch_after_a_few_looks
    report = bt.run_eval(request)
    assert fake.requests["POST /v1/eval"] == 1, "the launch was sent again while its run could still start"
    [experiment] = experiments(fake)
    assert report.id == experiment["id"] and experiment["metadata"] is None
    assert (report.rows_scored, report.rows_errored) == (ROWS, 0)


def test_an_eval_without_the_run_token_on_its_experiment_is_found_by_its_reported_name(fake, server) -> None:
    fake.eval_drops_metadata = True
    bt = platform(server)
    report = bt.run_eval(request_over_a_snapshot(bt, "tokenless-ok"))
    assert fake.requests["POST /v1/eval"] == 1
    [experiment] = experiments(fake)
    assert report.id == experiment["id"] and (report.rows_scored, report.rows_errored) == (ROWS, 0)


def test_a_streamed_launch_that_ends_after_its_start_event_waits_for_that_run(fake) -> None:
    """The stream says the run started (`start`), then ends without a summary: the run is waited for on the
    experiment the `start` event named, never launched again."""

    async def without_summary_events(scope: Any, receive: Any, send: Any) -> None:
        async def filtered(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body", b"").startswith(
                b"event: summary"
            ):
                return
            await send(message)

        await fake.app(scope, receive, filtered if scope.get("path") == "/v1/eval" else send)

    with ServerThread(without_summary_events) as server:
        bt = platform(server, stream_evals=True, launch_settle_s=1)
        report = bt.run_eval(request_over_a_snapshot(bt, "cut-stream"))
    assert fake.requests["POST /v1/eval"] == 1
    [experiment] = experiments(fake)
    assert report.id == experiment["id"] and (report.rows_scored, report.rows_errored) == (ROWS, 0)


def odd_is_broken(input: Any) -> Any:
    return {"value": float("nan")} if int(input) % 2 else str(input)


def inf_on_two(input: Any, output: Any, expected: Any) -> float:
    return float("inf") if input == "2" else 1.0


def test_nan_and_infinity_are_stored_as_null_with_a_row_error_never_as_invalid_json(fake, server) -> None:
    bt = platform(server)
    base = request_over_a_snapshot(bt, "nan-eval")
    report = bt.run_eval(base.model_copy(update={"task": odd_is_broken, "scorers": [inf_on_two]}))
    [experiment] = experiments(fake)
    store = fake.objects["experiment"][experiment["id"]].store
    held = {r["origin"]["id"]: r for r in store.rows() if r["is_root"]}
    assert len(held) == ROWS
    assert held["r1"]["output"] == {"value": None} and "output.value" in held["r1"]["error"]
    assert held["r3"]["output"] == {"value": None}
    assert (
        held["r2"]["scores"] == {"inf_on_two": None}
        and "inf_on_two" in held["r2"]["metadata"]["scorer_errors"]
    )
    assert held["r0"]["scores"] == {"inf_on_two": 1.0} and "error" not in held["r0"]
    assert (report.task_errors, report.scorer_errors) == (3, 1)
    assert (report.rows_errored, report.rows_scored) == (4, 2)
    assert fake.requests["POST /v1/experiment/{id}/insert"] >= 1


def test_a_nan_in_a_dataset_row_is_refused_naming_the_row(fake, server) -> None:
    bt = platform(server)
    dataset = bt.ensure_dataset("ds")
    bad = DatasetRow(id="bad-row", input={"x": float("nan")}, content_hash="h")
    with pytest.raises(Exception, match="bad-row") as refused:
        bt.upsert_rows(dataset, [bad])
    assert "NaN" in str(refused.value)
    assert fake.objects["dataset"][dataset.id].store.rows() == []
