"""A failed blocking check gates the release, through the dagster CLI: the gate asset is not materialized
and the command exits non-zero.

The failing job runs under Dagster's default executor (a process per step); the runs around it execute their
steps in the CLI's own process, which decides the gate by the same execution plan and only starts faster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from tests.conftest import REPO, qa_rows, write_jsonl

DAGSTER = str(Path(sys.executable).with_name("dagster"))
IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'

DEFINITIONS = """
import os
import dagster as dg
from dagster_evals import EvalSuite, LocalEvalResource, build_eval_suite_definitions

BROKEN = {int(x) for x in os.environ.get("BROKEN_ROWS", "").split(",") if x}

def task(input):
    return "wrong" if input["a"] in BROKEN else str(input["a"] + input["b"])

suite = EvalSuite(name="gated", source=os.environ["ROWS"], key_field="id", task=task,
                  scorers=["exact_match"], thresholds={"exact_match": 0.9})

@dg.asset(deps=[suite.eval_report_key])
def release_approved():
    return None

defs = dg.Definitions.merge(
    build_eval_suite_definitions(suite),
    dg.Definitions(
        assets=[release_approved],
        jobs=[dg.define_asset_job("release_job", selection=dg.AssetSelection.assets(release_approved).upstream())],
        resources={"evals": LocalEvalResource()},
    ),
)
"""


def run_cli(
    tmp_path: Path, broken: str, *args: str, in_process: bool = False
) -> subprocess.CompletedProcess[str]:
    """`dagster ARGS -f gated_defs.py` with `broken` rows answered wrong; `in_process`: steps in its process."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "ROWS": str(tmp_path / "rows.jsonl"),
        "BROKEN_ROWS": broken,
        "PYTHONPATH": str(REPO),
    }
    if in_process:
        config = tmp_path / "in_process.yaml"
        config.write_text(IN_PROCESS)
        args = (*args, "-c", str(config))
    return subprocess.run(
        [DAGSTER, *args, "-f", str(tmp_path / "gated_defs.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def approvals(home: Path) -> int:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return len(instance.fetch_materializations(dg.AssetKey("release_approved"), limit=100).records)


def test_failing_gate_blocks_the_release_and_the_cli_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "gated_defs.py").write_text(DEFINITIONS)
    write_jsonl(tmp_path / "rows.jsonl", qa_rows(10))

    passed = run_cli(tmp_path, "", "job", "execute", "-j", "release_job", in_process=True)
    assert passed.returncode == 0, passed.stderr[-3000:]
    assert approvals(tmp_path) == 1

    failed = run_cli(tmp_path, "1,2,3", "job", "execute", "-j", "release_job")
    assert failed.returncode != 0
    assert "threshold_exact_match" in failed.stdout + failed.stderr
    assert approvals(tmp_path) == 1

    selection = "evals/gated/dataset,evals/gated/dataset_snapshot,evals/gated/eval_report,release_approved"
    materialize = run_cli(tmp_path, "1,2,3", "asset", "materialize", "--select", selection, in_process=True)
    assert materialize.returncode != 0
    assert approvals(tmp_path) == 1

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["evals", "gated", "eval_report"]))
        metadata = event.asset_materialization.metadata
        assert metadata["gate_passed"].value is False
        assert metadata["score/exact_match"].value == 0.7
