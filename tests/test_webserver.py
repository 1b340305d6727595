"""`dg dev` loads the example, and its GraphQL API shows the asset graph, the checks, each partition's gate
verdict and the plotted score metadata; a release reported from CI through that API runs its eval — a real
server on 127.0.0.1 with its daemon, not an in-process shortcut. The runs behind it are launched the way the
README launches them (`dg launch`, with a `dagster.yaml` in DAGSTER_HOME), and print no warnings."""

from __future__ import annotations

import contextlib
import json
import os
import re
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

from dagster_evals.cli import main as cli_main
from tests.conftest import REPO

# A deployment proof: out of the default run, run by `pytest -m deployment` (and in CI by .ci/run).
pytestmark = pytest.mark.deployment

BIN = Path(sys.executable).parent

VERSIONS_REPORT = ["evals", "support_bot_versions", "eval_report"]
# Two prompt versions of the example's versioned suite: a short sign-off keeps the answers close to the
# expected ones; a long one drags the levenshtein mean below its 0.7 threshold, so that partition's gate fails.
PASSING_PROMPT = {"sign_off": "Thanks!"}
FAILING_PROMPT = {
    "sign_off": "Thank you for contacting support, we really appreciate your patience and hope this answer "
    "helps you out today. Have a wonderful day!"
}
PASSED = "support_bot_system@1"
FAILED = "support_bot_system@2"
WARNING = re.compile(r"\b\w*Warning\b|No dagster\.yaml")

GRAPH_QUERY = """
{
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    groupName
  }
}
"""

PARTITIONS_QUERY = """
{
  assetNodes(assetKeys: [{path: ["evals", "support_bot_versions", "eval_report"]}, {path: ["version_approved"]}]) {
    assetKey { path }
    assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions } }
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          blocking
          partitionDefinition { name }
          partitionStatuses {
            __typename
            ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions }
          }
        }
      }
    }
  }
}
"""

CHECK_EXECUTIONS_QUERY = """
query ($partition: String!) {
  assetCheckExecutions(
    assetKey: {path: ["evals", "support_bot_versions", "eval_report"]}
    checkName: "threshold_levenshtein"
    partition: $partition
    limit: 5
  ) { status partition evaluation { success description } }
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
      metadataEntries {
        label
        __typename
        ... on FloatMetadataEntry { floatValue }
        ... on JsonMetadataEntry { jsonString }
        ... on MarkdownMetadataEntry { mdStr }
        ... on PipelineRunMetadataEntry { runId }
        ... on PathMetadataEntry { path }
      }
      runId
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
    """Run `dg dev ARGS` on a free loopback port until the block ends; yields its URL once it answers."""
    port = free_port()
    output = log.open("w")
    server = subprocess.Popen(
        [str(BIN / "dg"), "dev", *args, "-h", "127.0.0.1", "-p", str(port)],
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


def run_cli(program: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`program ARGS` from the repository root with DAGSTER_HOME=home, as the README runs it."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    return subprocess.run(
        [str(BIN / program), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def launch(
    home: Path, job: str, *partition: str, in_process: bool = False
) -> subprocess.CompletedProcess[str]:
    """`dg launch --job JOB [--partition KEY] -f definitions.py`, the README's way to run a job;
    `in_process` runs its steps in the launching process (no Python process per step)."""
    extra = ["--partition", *partition] if partition else []
    if in_process:
        extra += ["--config-json", json.dumps({"execution": {"config": {"in_process": {}}}})]
    return run_cli("dg", "launch", "--job", job, *extra, "-f", "definitions.py", home=home)


def warnings_in(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if WARNING.search(line)]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").touch()  # as the README's quick start does
    # Two materializations, so there is a history to plot: the first exactly as the README launches it
    # (a process per step), the second with its steps in the launching process, which only starts faster.
    for in_process in (False, True):
        run = launch(home, "support_bot_release_job", in_process=in_process)
        assert run.returncode == 0, run.stderr[-3000:]
        assert not warnings_in(run)
    # The two prompt versions, pushed as `dagster-evals push-prompt` pushes them (the command itself is
    # run as a process in test_cli.py), into the database the launched runs use.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(home))
        for content in (PASSING_PROMPT, FAILING_PROMPT):
            assert cli_main(["push-prompt", "support_bot_system", json.dumps(content)]) == 0
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.add_dynamic_partitions("support_bot_versions", [PASSED, FAILED])
    passed = launch(home, "support_bot_versions_job", PASSED, in_process=True)
    assert passed.returncode == 0, passed.stderr[-3000:]
    # The gate blocks the failing version under the default executor, as the README launches it.
    blocked = launch(home, "support_bot_versions_job", FAILED)
    assert blocked.returncode != 0, blocked.stderr[-3000:]
    assert "levenshtein mean 0.3702 is below the threshold 0.7" in blocked.stderr
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    with dagster_dev(
        ["-w", "workspace.yaml"], cwd=REPO, env=env, log=home / "webserver.log", ready_s=300
    ) as url:
        yield Deployment(url=url, home=home)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
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
    # `dg dev` (unlike `dagster dev`) starts without a SupersessionWarning, or any other warning.
    log = (deployment.home / "webserver.log").read_text()
    assert "Serving dagster-webserver" in log
    assert not [line for line in log.splitlines() if WARNING.search(line)]


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
        # The UI prints floats as stored: every plotted number reads with four significant digits at most ...
        for label, value in floats.items():
            assert value == float(f"{value:.4g}"), (label, value)
        entries = {e["label"]: e for e in mat["metadataEntries"]}
        # ... and the exact means are kept in the one structured entry, with the constants.
        details = json.loads(entries["details"]["jsonString"])
        exact = details["scores_exact"]
        for scorer, values in exact.items():
            assert floats[f"score/{scorer}"] == float(f"{values['mean']:.4g}")
        assert details["trial_count"] == 1 and "trial_count" not in entries
        # Few entries, each a link or a table a reader can use.
        assert len(entries) <= 25, sorted(entries)
        assert entries["dagster_run_id"]["__typename"] == "PipelineRunMetadataEntry"
        assert entries["dagster_run_id"]["runId"] == mat["runId"]
        assert entries["rows_to_review"]["mdStr"].startswith("**Rows to review: ")
        assert Path(entries["html_report"]["path"]).is_file()
    newest, older = materializations
    baseline_run = [e for e in newest["metadataEntries"] if e["label"] == "baseline_run"]
    assert baseline_run and baseline_run[0]["runId"] == older["runId"]
    # The example's levenshtein mean has more digits than the UI shows.
    assert any(len(repr(e["mean"])) > len(repr(float(f"{e['mean']:.4g}"))) for e in exact.values())


def test_each_partition_shows_its_own_gate_verdict(deployment: Deployment) -> None:
    nodes = {
        "/".join(n["assetKey"]["path"]): n for n in graphql(deployment.url, PARTITIONS_QUERY)["assetNodes"]
    }
    report = nodes["evals/support_bot_versions/eval_report"]
    checks = {c["name"]: c for c in report["assetChecksOrError"]["checks"]}
    for check in checks.values():
        assert check["blocking"] is True
        assert check["partitionDefinition"]["name"] == "support_bot_versions"
    levenshtein = checks["threshold_levenshtein"]["partitionStatuses"]
    assert PASSED in levenshtein["succeededPartitions"] and PASSED not in levenshtein["failedPartitions"]
    assert FAILED in levenshtein["failedPartitions"] and FAILED not in levenshtein["succeededPartitions"]
    regression = checks["no_regression"]["partitionStatuses"]
    assert FAILED in regression["failedPartitions"] and PASSED in regression["succeededPartitions"]
    # Checks that held in the failed partition read passed there.
    completeness = checks["completeness"]["partitionStatuses"]
    assert {PASSED, FAILED} <= set(completeness["succeededPartitions"])
    assert not {PASSED, FAILED} & set(completeness["failedPartitions"])

    # The report of the failed partition is recorded (its history stays browsable); the gate stopped
    # the downstream approval of that partition only.
    assert {PASSED, FAILED} <= set(report["assetPartitionStatuses"]["materializedPartitions"])
    approved = set(nodes["version_approved"]["assetPartitionStatuses"]["materializedPartitions"])
    assert PASSED in approved and FAILED not in approved

    [failed] = graphql(deployment.url, CHECK_EXECUTIONS_QUERY, {"partition": FAILED})["assetCheckExecutions"]
    assert failed["status"] == "FAILED" and failed["partition"] == FAILED
    assert failed["evaluation"]["success"] is False
    assert "levenshtein mean 0.3702 is below the threshold 0.7" in failed["evaluation"]["description"]
    [passed] = graphql(deployment.url, CHECK_EXECUTIONS_QUERY, {"partition": PASSED})["assetCheckExecutions"]
    assert passed["status"] == "SUCCEEDED" and passed["evaluation"]["success"] is True


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
