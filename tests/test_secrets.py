"""API keys never leak: every job of the example code location is run through the dagster CLI against fake
Braintrust and Keywords AI servers (each in its own process, accepting one recognisable key), once more with
a wrong key, and every byte the runs left behind is searched for the keys — CLI output, the fakes' output,
Dagster's event logs (step failures included), materialization metadata and the whole DAGSTER_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from dagster_evals import BraintrustResource, KeywordsAIResource
from tests.conftest import REPO

SECRET = "sk-SECRET-5b2f0c9d71e4a6b8"
WRONG_SECRET = "sk-SECRET-WRONG-e83d21f5"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
PARTITION = "v9.9.9-secrets"
# Every job of the example, in two rounds: the two jobs of a round work on different datasets and run at
# once (KeywordsAIResource paces itself to 60 requests a minute, so a Keywords AI job takes ~20 s).
ROUNDS = (
    (("support_bot_eval_job", None), ("support_bot_versions_eval_job", PARTITION)),
    (("support_bot_release_job", None), ("support_bot_versions_job", PARTITION)),
)
ENV = {
    "braintrust": ("BRAINTRUST_API_KEY", "BRAINTRUST_API_URL"),
    "keywordsai": ("KEYWORDSAI_API_KEY", "KEYWORDSAI_BASE_URL"),
}
# Each job runs its steps in the CLI's own process: the same code paths, without a process per step.
IN_PROCESS = "execution:\n  config:\n    in_process: {}\n"


@contextmanager
def fake_server(platform: str, log: Path) -> Iterator[str]:
    """`python -m dagster_evals.testing <platform>` accepting only SECRET; yields its URL."""
    command = [sys.executable, "-m", "dagster_evals.testing", platform, "--api-key", SECRET]
    if platform == "keywordsai":
        command += ["--rate-limit", "0"]
    with log.open("w") as err:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            yield url
        finally:
            process.terminate()
            rest, _ = process.communicate(timeout=20)
    log.write_text(log.read_text() + url + "\n" + rest)


def dagster_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def execute(
    job: str, partition: str | None, env: dict[str, str], config: Path
) -> subprocess.CompletedProcess[str]:
    args = ["job", "execute", "-f", "definitions.py", "-j", job, "-c", str(config)]
    if partition is not None:
        args += ["--tags", f'{{"dagster/partition": "{partition}"}}']
    return dagster_cli(args, env)


def everything_dagster_recorded(home: Path) -> tuple[str, list[str]]:
    """All event log entries (serialized whole) and materialization metadata of the instance, and the step
    failure messages among them."""
    texts: list[str] = []
    failures: list[str] = []
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for run in instance.get_runs():
            texts.append(serialize_value(run))
            for entry in instance.all_logs(run.run_id):
                texts.append(serialize_value(entry))
                event = entry.dagster_event
                if event is not None and event.is_step_failure and event.step_failure_data.error:
                    failures.append(event.step_failure_data.error.to_string())
        for key in instance.get_asset_keys():
            records = instance.fetch_materializations(key, limit=100).records
            for record in records:
                assert record.asset_materialization is not None
                texts.append(serialize_value(record.asset_materialization.metadata))
    return "\n".join(texts), failures


def home_bytes(home: Path) -> bytes:
    """Every file under DAGSTER_HOME: run and event storage, compute logs, the local eval store."""
    return b"".join(path.read_bytes() for path in sorted(home.rglob("*")) if path.is_file())


@dataclass
class PlatformRuns:
    """What running the example's jobs on one platform left behind."""

    home: Path
    outputs: list[str] = field(default_factory=list)
    failed_jobs: list[str] = field(default_factory=list)
    rejected: subprocess.CompletedProcess[str] | None = None
    fake_log: Path | None = None


def run_example_jobs(platform: str, root: Path) -> PlatformRuns:
    """Every job of the example against a fake `platform` server, then one job with a wrong key."""
    root.mkdir()
    runs = PlatformRuns(home=root / "dagster_home", fake_log=root / "fake.log")
    runs.home.mkdir()
    config = root / "in_process.yaml"
    config.write_text(IN_PROCESS)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(runs.home))) as instance:
        instance.add_dynamic_partitions("support_bot_versions", [PARTITION])
    key_var, url_var = ENV[platform]
    with fake_server(platform, runs.fake_log) as url, ThreadPoolExecutor(2) as pool:
        env = {
            **{k: v for k, v in os.environ.items() if k not in (key_var, "DAGSTER_EVALS_LOCAL_DB")},
            "DAGSTER_HOME": str(runs.home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "DAGSTER_EVALS_PLATFORM": platform,
            key_var: SECRET,
            url_var: url,
        }
        for jobs in ROUNDS:
            done = pool.map(lambda job: (job[0], execute(*job, env, config)), jobs)
            for job, result in done:
                runs.outputs += [result.stdout, result.stderr]
                if result.returncode != 0:
                    runs.failed_jobs.append(f"{job}: {result.stderr[-3000:]}")
        runs.rejected = execute("support_bot_eval_job", None, {**env, key_var: WRONG_SECRET}, config)
        runs.outputs += [runs.rejected.stdout, runs.rejected.stderr]
    return runs


def test_example_jobs_never_reveal_the_api_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        futures = {p: pool.submit(run_example_jobs, p, tmp_path / p) for p in ENV}
        all_runs = {p: future.result() for p, future in futures.items()}

    for platform, runs in all_runs.items():
        key_var = ENV[platform][0]
        assert not runs.failed_jobs, runs.failed_jobs
        assert runs.rejected is not None and runs.rejected.returncode != 0
        recorded, failures = everything_dagster_recorded(runs.home)
        assert len(failures) == 1, failures
        assert "(HTTP 401)" in failures[0]
        assert f"set the {key_var} environment variable to a valid key" in failures[0]
        assert f"{key_var} environment variable" in runs.rejected.stdout + runs.rejected.stderr
        assert recorded.count("score/levenshtein") >= 4, "every job recorded its eval report"

        assert runs.fake_log is not None
        places = {
            "CLI output": "\n".join(runs.outputs),
            "fake server output": runs.fake_log.read_text(),
            "Dagster event logs and metadata": recorded,
            "DAGSTER_HOME files": home_bytes(runs.home).decode("utf-8", "replace"),
        }
        for key in (SECRET, WRONG_SECRET):
            leaked = [where for where, text in places.items() if key in text]
            assert not leaked, f"{platform}: {key} found in {leaked}"


def test_resource_reprs_and_the_config_dagster_shows_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINTRUST_API_KEY", SECRET)
    monkeypatch.setenv("KEYWORDSAI_API_KEY", SECRET)
    resources: dict[str, Any] = {
        "braintrust_literal": BraintrustResource(api_key=SECRET),
        "keywordsai_literal": KeywordsAIResource(api_key=SECRET),
        "braintrust_env": BraintrustResource(api_key=dg.EnvVar("BRAINTRUST_API_KEY")),
        "keywordsai_env": KeywordsAIResource(api_key=dg.EnvVar("KEYWORDSAI_API_KEY")),
    }
    for name, resource in resources.items():
        assert SECRET not in repr(resource) and SECRET not in str(resource), name
        assert "api_key='***'" in repr(resource), name

    with dg.build_resources(resources) as initialized:
        for name in resources:
            resource = getattr(initialized, name)
            platform = resource.get_platform()
            assert resource.api_key == SECRET, "the key is resolved from the environment"
            for shown in (resource, platform, platform.http):
                assert SECRET not in repr(shown) and SECRET not in str(shown), (name, type(shown).__name__)

    @dg.asset(required_resource_keys={"braintrust_env", "keywordsai_env"})
    def needs_keys() -> None:
        return None

    defs = dg.Definitions(
        assets=[needs_keys],
        resources={k: v for k, v in resources.items() if k.endswith("_env")},
    )
    snapshot = RepositorySnap.from_def(defs.get_repository_def())
    shown = {r.name: r.configured_values["api_key"] for r in snapshot.resources}
    assert shown["braintrust_env"].name == "BRAINTRUST_API_KEY"
    assert shown["keywordsai_env"].name == "KEYWORDSAI_API_KEY"
    assert SECRET not in serialize_value(snapshot)
