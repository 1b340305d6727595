"""The `dagster-evals` commands, run as a user runs them: the README quick start ending in
`dagster-evals report`, `dagster-evals push-prompt` feeding the prompt sensor, and
`dagster-evals report-release --wait` failing CI when the release's run or its gate fails — each checked
against what the other side holds (the Dagster instance, the SQLite file, the deployment)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from dagster_evals import EvalSuite, LocalEvalResource, build_prompt_version_sensor
from tests.conftest import REPO, qa_rows, write_jsonl
from tests.test_webserver import dagster_dev

BIN = Path(sys.executable).parent
REPORT_KEY = dg.AssetKey(["evals", "support_bot", "eval_report"])
SCORERS = ("exact_match", "levenshtein", "mentions_required_facts")


def run(*args: str, home: Path, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", **env}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def table(output: str) -> dict[str, list[str]]:
    """The rows of the first score table printed in `output`, by scorer."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("scorer",) and not cells[0].startswith("---"):
            rows.setdefault(cells[0], cells[1:])
    return rows


def latest_report_metadata(home: Path) -> dict[str, Any]:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        event = instance.get_latest_materialization_event(REPORT_KEY)
        assert event is not None and event.asset_materialization is not None
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


# -- the quick start -----------------------------------------------------------------------------------
def test_quick_start_ends_with_the_report_table(tmp_path: Path) -> None:
    home = tmp_path / ".dagster_home"
    home.mkdir()
    empty = run("dagster-evals", "report", home=home)
    # Nothing has run yet: the report command says so and creates no database.
    assert empty.returncode == 2 and "no local backend database at" in empty.stderr, empty.stderr
    assert not (home / "dagster_evals.sqlite").exists()

    first = run(
        "dagster", "job", "execute", "-f", "definitions.py", "-j", "support_bot_release_job", home=home
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "approved for release" in first.stdout + first.stderr  # every blocking check passed
    printed = run("dagster-evals", "report", home=home)
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout
    assert f"eval reports in sqlite:///{home / 'dagster_evals.sqlite'}" in out
    assert "36/36 rows scored, 0 errored, no baseline" in out
    assert "| scorer | mean | baseline | diff |" in out
    scores = table(out)
    assert sorted(scores) == sorted(SCORERS)
    # The table shows what the eval report asset recorded in Dagster.
    recorded = latest_report_metadata(home)
    assert re.search(rf"^report {re.escape(str(recorded['report_id']))} ", out, re.M)
    for scorer in SCORERS:
        assert float(scores[scorer][0]) == pytest.approx(recorded[f"score/{scorer}"], abs=5e-5)
        assert scores[scorer][1:3] == ["–", "–"]

    # Run it again (its steps in the CLI's own process this time, which only saves start-up time): the
    # report compares with the previous run.
    in_process = tmp_path / "in_process.yaml"
    in_process.write_text("execution:\n  config:\n    in_process: {}\n")
    again = run(
        "dagster",
        "job",
        "execute",
        "-f",
        "definitions.py",
        "-j",
        "support_bot_release_job",
        "-c",
        str(in_process),
        home=home,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    both = run("dagster-evals", "report", "--limit", "2", home=home)
    assert both.returncode == 0, both.stderr
    assert both.stdout.count("| scorer | mean |") == 2
    newest = table(both.stdout)
    assert f"baseline {recorded['details']['report_name']}" in both.stdout.split("\n\n")[1]
    for scorer in SCORERS:
        mean, baseline, diff = newest[scorer][:3]
        assert baseline == scores[scorer][0] and float(diff) == pytest.approx(0.0)
        assert float(mean) == pytest.approx(latest_report_metadata(home)[f"score/{scorer}"], abs=5e-5)


# -- push-prompt ---------------------------------------------------------------------------------------
def stored_prompt_versions(db: Path) -> list[tuple[str, int, dict[str, Any]]]:
    """(slug, version, content) rows of the SQLite file itself."""
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT p.slug, v.version, v.content FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id "
            "ORDER BY p.slug, v.version"
        ).fetchall()
    return [(slug, version, json.loads(content)) for slug, version, content in found]


def test_push_prompt_records_versions_the_prompt_sensor_runs(tmp_path: Path, instance) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "dagster_evals.sqlite"

    first = run("dagster-evals", "push-prompt", "adder", '{"offset": 0}', home=home)
    assert first.returncode == 0, first.stderr
    assert f"prompt 'adder' is at version 1 in sqlite:///{db}" in first.stdout
    second = run("dagster-evals", "push-prompt", "adder", '{"offset": 1}', home=home)
    assert "prompt 'adder' is at version 2" in second.stdout
    same = run("dagster-evals", "push-prompt", "adder", '{"offset": 1}', home=home)
    assert "prompt 'adder' is at version 2" in same.stdout, "unchanged content is not a new version"
    assert stored_prompt_versions(db) == [("adder", 1, {"offset": 0}), ("adder", 2, {"offset": 1})]

    for bad, message in [("{not json", "content is not valid JSON"), ("[1, 2]", "must be a JSON object")]:
        refused = run("dagster-evals", "push-prompt", "adder", bad, home=home)
        assert refused.returncode == 2 and message in refused.stderr
    assert len(stored_prompt_versions(db)) == 2

    # The prompt sensor sees exactly the pushed versions.
    suite = EvalSuite(
        name="pushed",
        source=write_jsonl(tmp_path / "rows.jsonl", qa_rows(2)),
        key_field="id",
        task=lambda input: "",
        scorers=["exact_match"],
        partitions_def=dg.DynamicPartitionsDefinition(name="pushed_versions"),
    )
    sensor = build_prompt_version_sensor(suite, initial="all")
    resource = LocalEvalResource(path=str(db))
    with dg.build_sensor_context(instance=instance, resources={"evals": resource}) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests or []] == ["adder@1", "adder@2"]


# -- report-release --wait -----------------------------------------------------------------------------
GATED = """
import os
from pathlib import Path

import dagster as dg
from dagster_evals import EvalSuite, LocalEvalResource, build_eval_suite_definitions

ROWS = Path(os.environ["ROWS"])
releases = dg.DynamicPartitionsDefinition(name="releases")


def right(input):
    return str(input["a"] + input["b"])


def wrong(input):
    return "wrong" if input["a"] < 5 else right(input)


def job_for(name, source, task):
    suite = EvalSuite(name=name, source=source, key_field="id", task=task, scorers=["exact_match"],
                      thresholds={"exact_match": 0.9}, partitions_def=releases)

    @dg.asset(name=f"{name}_approved", deps=[suite.eval_report_key], partitions_def=releases)
    def approved():
        return None

    selection = dg.AssetSelection.assets(approved).upstream()
    return build_eval_suite_definitions(suite), approved, dg.define_asset_job(f"{name}_job", selection=selection)


parts = [
    job_for("passes", ROWS, right),
    job_for("gated", ROWS, wrong),  # 50 % right: the blocking threshold check fails
    job_for("broken", ROWS.with_name("missing.jsonl"), right),  # the dataset sync itself fails
]
defs = dg.Definitions.merge(
    *[p[0] for p in parts],
    dg.Definitions(
        assets=[p[1] for p in parts],
        jobs=[p[2] for p in parts],
        resources={"evals": LocalEvalResource(path=os.environ["EVALS_DB"])},
        # The daemon's runs execute their steps in the run's own process: what matters here is how the run
        # ends, and a Python process per step would only add start-up time.
        executor=dg.in_process_executor,
    ),
)
"""


@pytest.fixture(scope="module")
def gated_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`dagster dev` (webserver and daemon) serving jobs that pass, fail their gate, or fail outright."""
    root = tmp_path_factory.mktemp("gated")
    home = root / "home"
    home.mkdir()
    write_jsonl(root / "rows.jsonl", qa_rows(10))
    (root / "gated_defs.py").write_text(GATED)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "ROWS": str(root / "rows.jsonl"),
        "EVALS_DB": str(root / "evals.sqlite"),
    }
    with dagster_dev(["-f", "gated_defs.py"], cwd=root, env=env, log=root / "dev.log", ready_s=240) as url:
        yield url, home


def report_release(url: str, home: Path, job: str, tag: str) -> subprocess.CompletedProcess[str]:
    return run(
        "dagster-evals",
        "report-release",
        "--url",
        url,
        "--job",
        job,
        "--partitions",
        "releases",
        "--tag",
        tag,
        "--commit",
        "0123456789abcdef0123456789abcdef01234567",
        "--wait",
        "--timeout",
        "280",
        home=home,
    )


def run_status(home: Path, run_id: str) -> tuple[str, list[str]]:
    """The run's status in the deployment's instance, and the keys of the assets it materialized."""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        record = instance.get_run_by_id(run_id)
        assert record is not None
        materialized = [
            entry.dagster_event.asset_key.to_user_string()
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if entry.dagster_event is not None and entry.dagster_event.asset_key is not None
        ]
        return record.status.value, materialized


@pytest.mark.parametrize(
    ("job", "exit_code", "status"),
    [("passes_job", 0, "SUCCESS"), ("gated_job", 1, "FAILURE"), ("broken_job", 1, "FAILURE")],
)
def test_report_release_wait_exits_1_when_the_run_or_its_gate_fails(
    gated_deployment: tuple[str, Path], job: str, exit_code: int, status: str
) -> None:
    url, home = gated_deployment
    tag = f"v1.0.{['passes_job', 'gated_job', 'broken_job'].index(job)}"
    done = report_release(url, home, job, tag)
    assert done.returncode == exit_code, done.stdout + done.stderr
    [run_id] = re.findall(r"launched run (\S+) for release " + re.escape(tag), done.stdout)
    assert f"run {run_id} finished: {status}" in done.stdout
    # The deployment agrees: the run ended so, and only a passing gate let the release be approved.
    recorded, materialized = run_status(home, run_id)
    assert recorded == status
    name = job.removesuffix("_job")
    assert (f"{name}_approved" in materialized) is (status == "SUCCESS")
    if job == "gated_job":
        assert f"evals/{name}/eval_report" in materialized
    if job == "broken_job":
        assert f"evals/{name}/dataset" not in materialized
