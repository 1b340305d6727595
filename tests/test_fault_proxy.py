"""The fault-injecting proxy, then the write paths of Braintrust and Keywords AI through it.

The proxy sits between a resource and a fake server over real HTTP on 127.0.0.1. Its own tests observe each
fault mode on a server that counts what it applied. The matrix then drives dataset syncs and evals through
the proxy at 10/20/30 % faults per write path and checks the fakes' own storage after every reported
success: exactly the source rows, one experiment / eval report per eval, nothing lost, duplicated or stale.

The reduced matrix (each write path once, ~3 minutes) runs by default; the full matrix (every write path at
10/20/30 % on five seeds, about an hour on two cores) is one command:

    .venv/bin/pytest -n 2 --dist load -m fault_matrix_full tests/test_fault_proxy.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dagster_evals import EvalSuite, PlatformFunction, build_eval_suite_assets
from dagster_evals.testing import BraintrustFake, FaultProxy, ServerThread
from tests.conftest import add_task, dagster_instance, materialization, qa_rows, write_jsonl
from tests.fault_helpers import assert_exactly, make_fake, make_resource, stored_rows


# -- the proxy itself -------------------------------------------------------------------------------------
class Counter:
    """An upstream that counts the writes it applied, and when each arrived (`time.monotonic()`)."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.arrived_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def write(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self.applied.append(body["id"])
                self.arrived_at[body["id"]] = time.monotonic()
            return JSONResponse({"applied": body["id"]}, headers={"x-upstream": "yes"})

        async def read(request: Request) -> JSONResponse:
            return JSONResponse({"applied": list(self.applied)})

        return Starlette(
            routes=[Route("/items", write, methods=["POST"]), Route("/items", read, methods=["GET"])]
        )


@pytest.fixture
def upstream() -> Iterator[tuple[Counter, ServerThread]]:
    counter = Counter()
    with ServerThread(counter.app()) as server:
        yield counter, server


def test_requests_without_a_fault_pass_through_unchanged(upstream: tuple[Counter, ServerThread]) -> None:
    counter, server = upstream
    with FaultProxy(server.url) as proxy, httpx.Client(base_url=proxy.url) as client:
        for i in range(3):
            answer = client.post("/items", json={"id": f"w{i}"})
            assert (answer.status_code, answer.json(), answer.headers["x-upstream"]) == (
                200,
                {"applied": f"w{i}"},
                "yes",
            )
        assert client.get("/items?x=1").json() == {"applied": ["w0", "w1", "w2"]}
    assert counter.applied == ["w0", "w1", "w2"]
    assert [r.fault for r in proxy.log] == [None] * 4


@pytest.mark.parametrize("status", ["500", "502", "503", "429"])
def test_an_error_status_is_answered_without_forwarding(
    upstream: tuple[Counter, ServerThread], status: str
) -> None:
    counter, server = upstream
    with FaultProxy(server.url, retry_after="7") as proxy, httpx.Client(base_url=proxy.url) as client:
        proxy.schedule(status)  # type: ignore[arg-type]
        answer = client.post("/items", json={"id": "w0"})
        assert answer.status_code == int(status)
        assert answer.headers.get("retry-after") == ("7" if status == "429" else None)
        assert counter.applied == []
        # The connection stays usable: the next request goes through on it.
        assert client.post("/items", json={"id": "w1"}).json() == {"applied": "w1"}
    assert counter.applied == ["w1"]


def test_a_dropped_request_never_reaches_the_server(upstream: tuple[Counter, ServerThread]) -> None:
    counter, server = upstream
    with FaultProxy(server.url) as proxy, httpx.Client(base_url=proxy.url) as client:
        proxy.schedule("drop")
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/items", json={"id": "w0"})
        assert client.post("/items", json={"id": "w1"}).status_code == 200
    assert counter.applied == ["w1"]


def test_a_lost_response_was_applied_by_the_server(upstream: tuple[Counter, ServerThread]) -> None:
    counter, server = upstream
    with FaultProxy(server.url) as proxy, httpx.Client(base_url=proxy.url) as client:
        proxy.schedule("lost_response")
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/items", json={"id": "w0"})
        assert counter.applied == ["w0"], "the server applied the request whose answer was lost"


def test_a_late_request_is_applied_only_after_its_client_gave_up(
    upstream: tuple[Counter, ServerThread],
) -> None:
    counter, server = upstream
    client_timeout_s = 0.5
    with (
        FaultProxy(server.url) as proxy,
        httpx.Client(base_url=proxy.url, timeout=client_timeout_s) as client,
    ):
        proxy.schedule("late_apply")
        sent_at = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.post("/items", json={"id": "w0"})
        assert proxy.wait_settled(60)
    # The client closes its connection no sooner than its read timeout after sending, and the proxy forwards
    # only once it saw that close: however slow the machine, the server got the write after the client left.
    assert counter.applied == ["w0"] and proxy.applied_late == 1
    assert counter.arrived_at["w0"] >= sent_at + client_timeout_s


def test_faults_are_drawn_on_the_seed_and_only_for_matching_requests(
    upstream: tuple[Counter, ServerThread],
) -> None:
    _, server = upstream

    def served(seed: int) -> list[str | None]:
        faults = ("500", "503", "429")
        proxy = FaultProxy(server.url, rate=0.5, seed=seed, faults=faults)  # type: ignore[arg-type]
        with proxy, httpx.Client(base_url=proxy.url) as client:
            for i in range(30):
                client.get("/items")
                client.post("/items", json={"id": f"s{seed}-{i}"})
        assert all(r.fault is None for r in proxy.log if r.method == "GET"), "reads are never faulted"
        return [r.fault for r in proxy.log if r.method == "POST"]

    first, again, other = served(1), served(1), served(2)
    assert first == again, "the same seed serves the same faults"
    assert first != other
    assert 0 < sum(f is not None for f in first) < 30
    assert {f for f in first if f is not None} <= {"500", "503", "429"}


# -- the write paths of Braintrust and Keywords AI through the proxy -------------------------------------
MATRIX_ROWS = 12
ATTEMPTS = 4
# Short client timeouts: a request held until its client gives up costs one of them.
CLIENT_TIMEOUT_S = 1.0
# Keywords AI's settle window, shorter than the resource's default (sized for a real platform's write
# queue): here a late request reaches the fake within milliseconds of its client's hangup (the proxy forwards
# it on the connection's EOF), so half a second between the listings that confirm a write still covers it
# many times over. (Braintrust's `launch_settle_s` is a longest wait, ended as soon as the launch is seen.)
SETTLE: dict[str, dict[str, float]] = {"braintrust": {}, "keywordsai": {"settle_delay_s": 0.5}}
RATES = (0.1, 0.2, 0.3)
FULL_SEEDS = (1, 2, 3, 4, 5)
# dataset_sync: the dataset asset. eval: a Python task and local scorers (Braintrust experiment + inserts;
# Keywords AI eval dataset + result logs). platform_eval: the eval runs on the platform (Braintrust
# `/v1/eval`; Keywords AI evaluator and eval report).
PATHS = ("dataset_sync", "eval", "platform_eval")
# The faults drawn: every at-most-once hazard, and the errors a server answers before acting.
MATRIX_FAULTS = ("drop", "503", "429", "lost_response", "late_apply")
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

# Cases that fail on client defects being fixed elsewhere: (platform, path, rate, seed) -> defect.
KNOWN_DEFECTS: dict[tuple[str, str, float, int], str] = {}


def matrix_suite(source: Path, platform: str, path: str) -> EvalSuite:
    task: Any = add_task
    scorers: list[Any] = ["exact_match"]
    if path == "platform_eval":
        task, scorers = (BT_TASK, [BT_SCORER]) if platform == "braintrust" else (add_task, [KW_EVALUATOR])
    return EvalSuite(name="proxied", source=source, key_field="id", task=task, scorers=scorers, baseline=None)


def materialize_keys(suite: Any, instance: Any, resource: Any, keys: list[Any]) -> Any:
    return dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": resource},
        selection=keys,
        raise_on_error=False,
    )


class Evals:
    """The evals a fake holds, read from its own storage."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    def ids(self) -> list[str]:
        """Braintrust: the live experiments. Keywords AI: the eval datasets (every dataset but the source's),
        where a Python task's results are written."""
        if isinstance(self.fake, BraintrustFake):
            with self.fake.lock:
                return sorted(
                    i for i, o in self.fake.objects["experiment"].items() if not o.data.get("deleted_at")
                )
        return sorted(d["id"] for d in list(self.fake.datasets.values()) if d["name"] != "proxied")

    def assert_one_complete_eval(self, report_id: str, new_ids: list[str]) -> None:
        """The reported eval is the only one the attempt created, and it holds each row's result once."""
        eval_id, _, run_id = report_id.partition(":")
        assert new_ids == [eval_id], f"the eval was created {len(new_ids)} times: {new_ids}"
        if isinstance(self.fake, BraintrustFake):
            with self.fake.lock:
                store = self.fake.objects["experiment"][eval_id].store
                assert store is not None
                # One root span per row trial; a platform eval's score spans are its children.
                results = [e["id"] for e in store.rows() if e["is_root"]]
            assert len(results) == MATRIX_ROWS, f"{len(results)} results for {MATRIX_ROWS} rows"
            return
        # A run is identified by its comma-joined task ids (one task per evaluator), as the client sees it.
        reports = [",".join(t["task_id"] for t in r["tasks"]) for r in self.fake.reports.get(eval_id, [])]
        assert reports == ([run_id] if run_id else []), f"eval reports {reports} for {report_id}"
        logs = self.fake.dataset_logs(eval_id)
        keys = [log["metadata"]["dagster_evals_result_id"] for log in logs]
        assert len(keys) == len(set(keys)) == MATRIX_ROWS, f"{len(keys)} results, {len(set(keys))} distinct"


def run_matrix_case(platform: str, path: str, rate: float, seed: int, tmp_path: Path) -> None:
    fake = make_fake(platform)
    evals = Evals(fake)
    rows = qa_rows(MATRIX_ROWS)
    suite = matrix_suite(write_jsonl(tmp_path / "rows.jsonl", rows), platform, path)
    batch = {"insert_batch_size": 4} if platform == "braintrust" else {"batch_size": 4}
    with (
        dagster_instance(tmp_path / "dagster_home") as instance,
        ServerThread(fake.app) as server,
        FaultProxy(server.url, seed=seed, faults=MATRIX_FAULTS) as proxy,
    ):
        resource = make_resource(platform, proxy.url, timeout_s=CLIENT_TIMEOUT_S, **batch, **SETTLE[platform])
        sync_keys = [suite.dataset_key]
        keys = (
            sync_keys
            if path == "dataset_sync"
            else [suite.dataset_key, suite.snapshot_key, suite.eval_report_key]
        )
        if path != "dataset_sync":
            assert materialize_keys(
                suite, instance, resource, [suite.dataset_key, suite.snapshot_key]
            ).success
        proxy.set_rate(rate)
        # Every case meets both at-most-once hazards on its first writes, then faults drawn on the seed.
        proxy.schedule("late_apply", "lost_response")
        for _ in range(ATTEMPTS):
            before = evals.ids()
            result = materialize_keys(suite, instance, resource, keys)
            # Requests the proxy still holds reach the server now: a success must survive them too.
            assert proxy.wait_settled(120)
            if not result.success:
                continue
            assert_exactly(stored_rows(fake, "proxied"), rows)
            assert materialization(result, suite.dataset_key)["rows_total"] == MATRIX_ROWS
            if path != "dataset_sync":
                report = materialization(result, suite.eval_report_key)
                assert (report["rows_scored"], report["rows_errored"]) == (MATRIX_ROWS, 0)
                new_ids = sorted(set(evals.ids()) - set(before))
                evals.assert_one_complete_eval(str(report["report_id"]), new_ids)
        # Without faults a re-run converges to exactly the source rows, whatever the faulted runs left.
        proxy.set_rate(0.0)
        before = evals.ids()
        final = materialize_keys(suite, instance, resource, keys)
        assert final.success
        assert_exactly(stored_rows(fake, "proxied"), rows)
        if path != "dataset_sync":
            report = materialization(final, suite.eval_report_key)
            evals.assert_one_complete_eval(str(report["report_id"]), sorted(set(evals.ids()) - set(before)))
        assert proxy.faults_served(), "the case injected no fault"
        assert proxy.applied_late >= 1, "no request reached the server after its client gave up"


def matrix_params(seeds: tuple[int, ...]) -> list[Any]:
    params = []
    for platform in ("braintrust", "keywordsai"):
        for path in PATHS:
            for rate in RATES:
                for seed in seeds:
                    marks = []
                    defect = KNOWN_DEFECTS.get((platform, path, rate, seed))
                    if defect:
                        marks.append(pytest.mark.xfail(strict=True, reason=defect))
                    params.append(
                        pytest.param(
                            platform,
                            path,
                            rate,
                            seed,
                            marks=marks,
                            id=f"{platform}-{path}-{int(rate * 100)}pct-s{seed}",
                        )
                    )
    return params


# The reduced matrix run by default: each write path of each platform once, the rates rotating so that each
# platform meets every rate.
REDUCED = {
    ("braintrust", "dataset_sync", 0.1),
    ("braintrust", "eval", 0.2),
    ("braintrust", "platform_eval", 0.3),
    ("keywordsai", "dataset_sync", 0.3),
    ("keywordsai", "eval", 0.1),
    ("keywordsai", "platform_eval", 0.2),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("platform", "path", "rate", "seed"),
    [p for p in matrix_params((7,)) if tuple(p.values[:3]) in REDUCED],
)
def test_write_paths_through_the_fault_proxy(
    platform: str, path: str, rate: float, seed: int, tmp_path: Path
) -> None:
    run_matrix_case(platform, path, rate, seed, tmp_path)


@pytest.mark.fault_matrix_full
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("platform", "path", "rate", "seed"), matrix_params(FULL_SEEDS))
def test_write_paths_through_the_fault_proxy_full_matrix(
    platform: str, path: str, rate: float, seed: int, tmp_path: Path
) -> None:
    run_matrix_case(platform, path, rate, seed, tmp_path)
