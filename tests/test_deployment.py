"""Deployment like the k8s/docker executors: every step in its own process, working directory and HOME.

Each step is a separate `dagster asset materialize` process (a "pod") with its own working directory, HOME
and DAGSTER_HOME; the pods share only the Dagster instance storage (one storage directory named in each
pod's dagster.yaml) and, when the deployment is right, the eval backend. Like an executor, the steps run
in order and the run stops at the first failed step; inside its pod a step runs in the pod's own process
(the in-process executor), as in a step pod.

- Per-pod SQLite files: the run fails closed with a clear message (the snapshot step cannot see the
  dataset; the eval cannot find the baseline) instead of approving a regression.
- One shared backend: the gate blocks a regression (also when simply run again), baselines are found and
  an unchanged dataset is not synced again. The shared backend is one SQLite file path, or the database
  named by `DAGSTER_EVALS_DATABASE_URL` when that is set in the test's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals.baselines import plain_metadata
from tests.conftest import qa_rows, write_jsonl

# A deployment proof: out of the default run, run by `pytest -m deployment` (and in CI by .ci/run).
pytestmark = pytest.mark.deployment

DATABASE_URL = "DAGSTER_EVALS_DATABASE_URL"
DAGSTER = Path(sys.executable).with_name("dagster")
PREFIX = "evals/deployed/"
STEPS = [PREFIX + "dataset", PREFIX + "dataset_snapshot", PREFIX + "eval_report", "release_approved"]

LOCATION = textwrap.dedent(
    '''
    """A code location as a deployment would ship it: the eval backend comes from the environment."""
    import os

    import dagster as dg

    from dagster_evals import EvalSuite, LocalEvalResource, build_eval_suite_definitions


    def bot(input):
        if os.environ.get("BOT_QUALITY") == "regressed" and input["a"] < 2:
            return "0"
        return str(input["a"] + input["b"])


    suite = EvalSuite(
        name="deployed",
        source=os.environ["DEPLOYED_ROWS"],
        key_field="id",
        task=bot,
        scorers=["exact_match"],
        max_regression=0.05,
    )


    @dg.asset(deps=[suite.eval_report_key])
    def release_approved() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"approved": True})


    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(
            assets=[release_approved],
            resources={"evals": LocalEvalResource()},
            # A pod executes its step in its own process, as a step pod of the k8s/docker executors does.
            executor=dg.in_process_executor,
        ),
    )
    '''
)


class Deployment:
    """A shared Dagster storage directory, a code location, and pods that run steps against them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage = root / "shared-dagster-storage"
        self.storage.mkdir(parents=True)
        self.location = root / "image" / "location.py"
        self.location.parent.mkdir()
        self.location.write_text(LOCATION, encoding="utf-8")
        self.rows = write_jsonl(root / "image" / "rows.jsonl", qa_rows(10))
        self.pods = 0
        self.reader_home = self._home(root / "reader")

    def _home(self, where: Path) -> Path:
        home = where / "dagster_home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text(
            f"storage:\n  sqlite:\n    base_dir: {self.storage}\ntelemetry:\n  enabled: false\n",
            encoding="utf-8",
        )
        return home

    def pod(self, steps: list[str], backend: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
        """Run `steps` in a new pod: fresh working directory, HOME and DAGSTER_HOME; `backend` env vars."""
        self.pods += 1
        workdir = self.root / f"pod{self.pods}"
        workdir.mkdir()
        pod_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DAGSTER", "BRAINTRUST", "KEYWORDSAI"))
        }
        pod_env.update(
            HOME=str(workdir / "home"),
            DAGSTER_HOME=str(self._home(workdir)),
            DAGSTER_DISABLE_TELEMETRY="1",
            DEPLOYED_ROWS=str(self.rows),
            PYTHONPATH=str(Path(__file__).resolve().parent.parent),
            **backend,
            **env,
        )
        (workdir / "home").mkdir()
        return subprocess.run(
            [str(DAGSTER), "asset", "materialize", "-f", str(self.location), "--select", ",".join(steps)],
            cwd=workdir,
            env=pod_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def run(
        self, backend_of_pod: Any, steps: list[str] = STEPS, **env: str
    ) -> list[subprocess.CompletedProcess[str]]:
        """One run, one pod per step, stopping at the first failed step (as an executor does)."""
        done = []
        for step in steps:
            done.append(result := self.pod([step], backend_of_pod(), **env))
            if result.returncode != 0:
                break
        return done

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.reader_home))


def latest(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
    assert event is not None and event.asset_materialization is not None, f"{key} was never materialized"
    return plain_metadata(event.asset_materialization.metadata) | {"_run_id": event.run_id}


def materialized(instance: dg.DagsterInstance, key: str) -> int:
    records = instance.fetch_materializations(dg.AssetKey.from_user_string(key), limit=100).records
    return len(records)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    yield Deployment(tmp_path)


def test_per_pod_sqlite_files_fail_closed(deployment: Deployment) -> None:
    pod_db = iter(range(100))

    def own_file() -> dict[str, str]:
        return {"DAGSTER_EVALS_LOCAL_DB": str(deployment.root / f"pod-local-{next(pod_db)}.sqlite")}

    # Step per pod: the snapshot step's fresh file has no dataset; it refuses to pin an empty version.
    dataset, snapshot = deployment.run(own_file)
    assert dataset.returncode == 0, output(dataset)
    assert snapshot.returncode != 0
    assert "dataset 'deployed'" in output(snapshot)
    assert "is not on the local backend at" in output(snapshot)
    assert "every step must use the same eval backend" in output(snapshot)

    # A whole run in one pod passes; the next run, in a pod with a fresh file, cannot find that baseline.
    first = deployment.pod(STEPS, own_file())
    assert first.returncode == 0, output(first)
    instance = deployment.instance()
    baseline = latest(instance, PREFIX + "eval_report")
    assert baseline["gate_passed"] is True

    regressed = deployment.pod(STEPS, own_file(), BOT_QUALITY="regressed")
    assert regressed.returncode != 0
    report = latest(instance, PREFIX + "eval_report")
    assert report["gate_passed"] is False and report["details"]["gate"] == "FAILED: no_regression"
    assert f"baseline report {baseline['report_id']}" in report["details"]["baseline"]
    assert "is not there on the local backend at" in report["details"]["baseline"]
    assert materialized(instance, "release_approved") == 1  # only the first run's


def shared_backend(root: Path) -> dict[str, str]:
    if os.environ.get(DATABASE_URL):
        return {DATABASE_URL: os.environ[DATABASE_URL]}
    return {"DAGSTER_EVALS_LOCAL_DB": str(root / "shared-evals.sqlite")}


def test_a_shared_backend_keeps_the_gate_closed_across_pods(deployment: Deployment) -> None:
    backend = shared_backend(deployment.root)

    first = deployment.run(lambda: backend)
    assert [r.returncode for r in first] == [0, 0, 0, 0], output(first[-1])
    instance = deployment.instance()
    good = latest(instance, PREFIX + "eval_report")
    assert good["gate_passed"] is True and good["details"]["baseline"].startswith("no baseline yet")
    assert latest(instance, PREFIX + "dataset")["rows_sent"] == 10

    # A regression, each step in its own pod: the unchanged dataset is not sent again, the eval finds the
    # baseline on the shared backend and the gate blocks the release.
    regressed = deployment.run(lambda: backend, BOT_QUALITY="regressed")
    assert [r.returncode for r in regressed[:2]] == [0, 0]
    assert len(regressed) == 3 and regressed[2].returncode != 0
    assert latest(instance, PREFIX + "dataset")["rows_sent"] == 0
    blocked = latest(instance, PREFIX + "eval_report")
    assert blocked["baseline_id"] == good["report_id"]
    assert blocked["details"]["gate"] == "FAILED: no_regression" and blocked[
        "diff/exact_match"
    ] == pytest.approx(-0.2)
    snapshot = latest(instance, PREFIX + "dataset_snapshot")["snapshot_version"]
    assert blocked["dataset_version"] == blocked["details"]["dataset"]["version"] == snapshot

    # Re-running the failed step does not get the regression through: a blocked report is no baseline.
    (again,) = deployment.run(lambda: backend, [PREFIX + "eval_report"], BOT_QUALITY="regressed")
    assert again.returncode != 0
    assert latest(instance, PREFIX + "eval_report")["baseline_id"] == good["report_id"]
    assert materialized(instance, "release_approved") == 1
