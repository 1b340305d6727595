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
# once.
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
# On Keywords AI the run config also lifts the client's pacing to the documented 60 requests a minute (the
# fake has no limit): a resource given run config takes all of its settings from it, so the key is named
# there the way the example names it, by its environment variable (`dg.EnvVar` becomes exactly this config).
KEYWORDSAI_CONFIG = """resources:
  evals:
    config:
      api_key: {{env: KEYWORDSAI_API_KEY}}
      base_url: {url}
      rate_limit_per_minute: null
"""


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
        if platform == "keywordsai":
            config.write_text(IN_PROCESS + KEYWORDSAI_CONFIG.format(url=url))
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


def every_text_of(error: BaseException) -> str:
    """str and repr of the error and of everything chained to it (cause and context)."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *map(str, current.args)]
        pending += [current.__cause__, current.__context__]  # type: ignore[list-item]
    return "\n".join(texts)


def echo_app(status: int, prefix_chars: int) -> Any:
    """Answers every request with `status` and a body quoting the request's Authorization header after
    `prefix_chars` characters of filler (a platform echoing what it was sent)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> PlainTextResponse:
        quoted = request.headers.get("authorization", "")
        return PlainTextResponse("x" * prefix_chars + quoted + " and more", status_code=status)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


def test_a_key_with_a_trailing_newline_is_stripped_and_works(caplog: pytest.LogCaptureFixture) -> None:
    from dagster_evals.engine.http import HttpClient, RetryPolicy
    from dagster_evals.testing import BraintrustFake, ServerThread

    fake = BraintrustFake(api_key=SECRET)
    with ServerThread(fake.app) as server:
        for padded in (SECRET + "\n", f"  {SECRET}\r\n", f"\t{SECRET} "):
            client = HttpClient(
                platform="braintrust",
                base_url=server.url,
                api_key=padded,
                env_var="BRAINTRUST_API_KEY",
                retry=RetryPolicy(max_retries=0),
            )
            assert client.post("/v1/project", json={"name": "p"})["name"] == "p"
            assert SECRET not in repr(client)
            client.close()
        resource = BraintrustResource(api_key=SECRET + "\n", api_url=server.url, project="p")
        with dg.build_resources({"bt": resource}) as initialized:
            initialized.bt.get_platform().ensure_dataset("d", project="p")
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (SECRET[:8] + "\n" + SECRET[8:], "has a control character at position 9 of 27"),
        (SECRET[:8] + "\x00" + SECRET[8:], "has a control character at position 9 of 27"),
        (SECRET + "é", "has a non-ASCII character at position 27 of 27"),
        ("  \n", "is empty or only whitespace"),
    ],
    ids=["inner-newline", "inner-nul", "non-ascii", "only-whitespace"],
)
def test_a_key_that_cannot_be_sent_is_refused_naming_the_env_var(key: str, problem: str) -> None:
    from dagster_evals import AuthError
    from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform

    with pytest.raises(AuthError) as err:
        BraintrustResource(api_key=key, api_url="http://127.0.0.1:9").get_platform()
    assert str(err.value) == (
        f"braintrust: the API key {problem}; set the BRAINTRUST_API_KEY environment variable to the key "
        "alone (the key is not shown here)"
    )
    with pytest.raises(AuthError, match="KEYWORDSAI_API_KEY") as kw_err:
        KeywordsAIPlatform.connect(api_key=key, base_url="http://127.0.0.1:9")
    for error in (err.value, kw_err.value):
        text = every_text_of(error)
        assert SECRET[:8] not in text and SECRET[8:] not in text


@pytest.mark.parametrize("status", [400, 401, 500])
@pytest.mark.parametrize("cut", [0, 480, 490, 499])
def test_a_key_echoed_in_an_error_body_never_leaks_even_across_the_cut(
    status: int, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The platform quotes the Authorization header after `cut` characters: the 500-character message
    limit falls before, inside or after the key, and nothing of the key survives anywhere."""
    from dagster_evals.engine.http import HttpClient, RetryPolicy
    from dagster_evals.testing import ServerThread

    with ServerThread(echo_app(status, cut)) as server, caplog.at_level("DEBUG"):
        client = HttpClient(
            platform="demo",
            base_url=server.url,
            api_key=SECRET,
            env_var="DEMO_API_KEY",
            retry=RetryPolicy(max_retries=1, backoff_base_s=0.0),
        )
        with pytest.raises(Exception) as err:
            client.get("/v1/anything")
        client.close()
    text = every_text_of(err.value) + caplog.text
    # Any 8 consecutive characters of the key (its recognisable part) would be a leak.
    fragments = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)} - {"sk-SECRE"}
    assert not [f for f in fragments if f in text], text[-800:]
    assert "Bearer ***" in text or cut >= 490
