"""`dagster dev` loads the example, and its GraphQL API shows the asset graph, the checks and the plotted
score metadata; a release reported from CI through that API runs its eval — a real server on 127.0.0.1
with its daemon, not an in-process shortcut."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from dagster._core.instance.ref import InstanceRef

from tests.conftest import REPO
from tests.test_example import cli

BIN = Path(sys.executable).parent

GRAPH_QUERY = """
{
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    groupName
  }
}
"""

REPORT_QUERY = """
{
  assetNodes(assetKeys: [{path: ["evals", "support_bot", "eval_report"]}]) {
    assetChecksOrError {
      ... on AssetChecks {
        checks { name blocking executionForLatestMaterialization { status evaluation { success } } }
      }
    }
    assetMaterializations(limit: 5) {
      metadataEntries { label __typename ... on FloatMetadataEntry { floatValue } }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def dagster_dev(
    args: list[str], *, cwd: Path, env: dict[str, str], log: Path, ready_s: float
) -> Iterator[str]:
    """Run `dagster dev ARGS` on a free loopback port until the block ends; yields its URL once it answers."""
    port = free_port()
    output = log.open("w")
    server = subprocess.Popen(
        [str(BIN / "dagster"), "dev", *args, "-h", "127.0.0.1", "-p", str(port)],
        cwd=cwd,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Bounds a server that never comes up; readiness itself is the server's answer.
        deadline = time.monotonic() + ready_s
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/server_info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the webserver did not come up"
            time.sleep(0.5)
        yield url
    finally:
        # Ctrl-C, as a user stops `dagster dev`; whatever is left of its process group after that goes.
        os.killpg(server.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        output.close()


@dataclass
class Deployment:
    url: str
    home: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("dagster_home")
    for _ in range(2):  # two materializations, so there is a history to plot
        run = cli("job", "execute", "-f", "definitions.py", "-j", "support_bot_release_job", home=home)
        assert run.returncode == 0, run.stderr[-3000:]
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    with dagster_dev(
        ["-w", "workspace.yaml"], cwd=REPO, env=env, log=home / "webserver.log", ready_s=120
    ) as url:
        yield Deployment(url=url, home=home)


def graphql(url: str, query: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def test_asset_graph_shows_dataset_snapshot_report_and_gate(deployment: Deployment) -> None:
    nodes = {"/".join(n["assetKey"]["path"]): n for n in graphql(deployment.url, GRAPH_QUERY)["assetNodes"]}
    deps = {key: {"/".join(d["path"]) for d in node["dependencyKeys"]} for key, node in nodes.items()}
    assert deps["evals/support_bot/dataset_snapshot"] == {"evals/support_bot/dataset"}
    assert deps["evals/support_bot/eval_report"] == {"evals/support_bot/dataset_snapshot"}
    assert deps["release_approved"] == {"evals/support_bot/eval_report"}
    assert deps["version_approved"] == {"evals/support_bot_versions/eval_report"}
    assert nodes["evals/support_bot/eval_report"]["groupName"] == "support_bot"


def test_checks_and_plotted_scores_are_visible(deployment: Deployment) -> None:
    [node] = graphql(deployment.url, REPORT_QUERY)["assetNodes"]
    checks = {c["name"]: c for c in node["assetChecksOrError"]["checks"]}
    assert set(checks) == {
        "threshold_levenshtein",
        "threshold_mentions_required_facts",
        "no_regression",
        "completeness",
    }
    for check in checks.values():
        assert check["blocking"] is True
        assert check["executionForLatestMaterialization"]["status"] == "SUCCEEDED"
        assert check["executionForLatestMaterialization"]["evaluation"]["success"] is True
    materializations = node["assetMaterializations"]
    assert len(materializations) == 2
    for mat in materializations:
        floats = {
            e["label"]: e["floatValue"]
            for e in mat["metadataEntries"]
            if e["__typename"] == "FloatMetadataEntry"
        }
        assert 0.7 <= floats["score/levenshtein"] <= 1.0
        assert {"score/exact_match", "score/mentions_required_facts", "latency_p95_ms"} <= set(floats)


def test_release_reported_from_ci_runs_its_eval_and_records_tag_and_commit(deployment: Deployment) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(deployment.home)}
    args = [
        str(BIN / "dagster-evals"),
        "report-release",
        "--url",
        deployment.url,
        "--job",
        "support_bot_versions_job",
        "--partitions",
        "support_bot_versions",
        "--tag",
        "v9.9.9",
        "--commit",
        "0123456789abcdef0123456789abcdef01234567",
        "--wait",
        "--timeout",
        "240",
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished: SUCCESS" in done.stdout

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(deployment.home))) as instance:
        assert "v9.9.9" in instance.get_dynamic_partitions("support_bot_versions")
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["evals", "support_bot_versions", "eval_report"]),
                asset_partitions=["v9.9.9"],
            ),
            limit=1,
        ).records
        metadata = records[0].asset_materialization.metadata
        assert metadata["release_tag"].value == "v9.9.9"
        assert metadata["git_commit"].value == "0123456789abcdef0123456789abcdef01234567"
        approved = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("version_approved"), asset_partitions=["v9.9.9"]),
            limit=1,
        ).records
        assert approved

    unknown = subprocess.run(
        [*args[:5], "no_such_job", *args[6:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert unknown.returncode == 2 and "no job 'no_such_job'" in unknown.stderr
