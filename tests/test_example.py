"""The example code location, run the way the README runs it: through the dagster CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from tests.conftest import REPO

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    return subprocess.run(
        [DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_example_definitions_load_and_validate(tmp_path: Path) -> None:
    result = cli("definitions", "validate", "-f", "definitions.py", home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_example_job_runs_end_to_end_and_reports_scores(tmp_path: Path) -> None:
    first = cli("job", "execute", "-f", "definitions.py", "-j", "support_bot_eval_job", home=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    output = first.stdout + first.stderr
    assert "36 rows, 36 added" in output
    assert "exact_match=" in output and "levenshtein=" in output and "mentions_required_facts=" in output
    assert str(tmp_path / "dagster_evals.sqlite") in output

    # Again, its steps in the CLI's own process this time (only start-up time differs): nothing to sync.
    in_process = tmp_path / "in_process.yaml"
    in_process.write_text("execution:\n  config:\n    in_process: {}\n")
    second = cli(
        "job", "execute", "-f", "definitions.py", "-j", "support_bot_eval_job", "-c", str(in_process),
        home=tmp_path,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert "36 rows, 0 added, 0 updated, 0 removed, 36 unchanged" in second.stdout + second.stderr

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        event = instance.get_latest_materialization_event(
            dg.AssetKey(["evals", "support_bot", "eval_report"])
        )
        assert event is not None and event.asset_materialization is not None
        metadata = event.asset_materialization.metadata
        assert 0.7 <= metadata["score/levenshtein"].value <= 1.0
        assert "baseline_id" in metadata
