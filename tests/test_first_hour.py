"""A new user's first hour, driven from folders outside the repository with only what the docs say.

One fresh virtualenv for the module, installed as "Using it in your own project" writes it (from this
checkout, with `-c constraints.txt`, so pip takes everything from its cache). Every shell command run here
is a line of the docs (`/path/to/dagster-evals` becomes this checkout, a fixed port a free one), every
file written is a block of the docs, and every assertion is on what the user sees: command output, run logs,
pages served by the fakes.

Measured on the shared 2-core machine under heavy load (load average about 11): the virtualenv and the
project take about 4 minutes, the four tests about 3.5 more (each `dg launch` or `dagster` command starts
Dagster); an idle machine needs a fraction of that. The module's tests share the venv and the project, so
they run on one xdist worker (`SHARED_FIXTURE_TESTS` in conftest) and start first (`LONGEST`).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# A deployment proof: out of the default run, run by `pytest -m deployment` (and in CI by .ci/run).
pytestmark = pytest.mark.deployment

REPO = Path(__file__).resolve().parent.parent
# The pages a new user follows, in the order of the tests (the README links to them).
GUIDE_PAGES = ("quick-start.md", "suites.md", "testing.md", "sensors.md")
GUIDE = "\n".join((REPO / "docs" / page).read_text(encoding="utf-8") for page in GUIDE_PAGES)
CHECKOUT = "/path/to/dagster-evals"
COMMAND_TIMEOUT_S = 600


def readme_block(after: str) -> str:
    """The first fenced block of the guide pages after the text `after` (which must appear once)."""
    assert GUIDE.count(after) == 1, f"the docs should say {after!r} exactly once"
    rest = GUIDE[GUIDE.index(after) :]
    opening = re.search(r"^```[a-z]*\n", rest, flags=re.MULTILINE)
    assert opening is not None, f"no code block after {after!r}"
    body = rest[opening.end() :]
    return body[: body.index("\n```")] + "\n"


def readme_line(line: str) -> str:
    """`line` after checking the docs write it exactly so (commands here are the docs')."""
    assert line in GUIDE, f"the docs do not say {line!r}"
    return line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class UserShell:
    """A bash shell in the user's virtualenv (activated as the docs do)."""

    home: Path
    venv: Path

    def run(
        self, script: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV"))}
        full_env.pop("DAGSTER_HOME", None)
        full_env.update({"DAGSTER_DISABLE_TELEMETRY": "1", **(env or {})})
        script = script.replace(CHECKOUT, str(REPO))
        return subprocess.run(
            ["bash", "-c", f". {self.venv}/bin/activate\n{script}"],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )

    def serve(self, command: str, cwd: Path) -> Iterator[str]:
        """Run a fake server (`python -m dagster_evals.testing …`) until the generator is closed."""
        process = subprocess.Popen(
            ["bash", "-c", f". {self.venv}/bin/activate\nexec {command}"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else url
            yield url
        finally:
            process.terminate()
            process.communicate(timeout=30)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> UserShell:
    """An empty folder outside the repository with the docs' virtualenv in it."""
    home = tmp_path_factory.mktemp("first-hour")
    assert REPO not in home.parents
    block = readme_block("Install it from a checkout of this repository")
    venv, install = block.strip().splitlines()
    assert venv == "python3 -m venv .venv && . .venv/bin/activate"
    created = subprocess.run(
        [sys.executable, "-m", "venv", ".venv"], cwd=home, capture_output=True, text=True, check=False
    )
    assert created.returncode == 0, created.stderr
    user = UserShell(home, home / ".venv")
    installed = user.run(install, home)
    assert installed.returncode == 0, output(installed)[-3000:]
    return user


@pytest.fixture(scope="module")
def project(shell: UserShell) -> tuple[Path, str]:
    """The docs' `dg` project from an empty folder: created, installed, scaffolded and checked."""
    script = readme_block("A YAML suite lives in a `dg` project.")
    result = shell.run("set -e\n" + script, shell.home)
    assert result.returncode == 0, output(result)[-4000:]
    return shell.home / "my-evals", output(result)


def test_a_new_project_scaffolds_and_checks_a_suite(project: tuple[Path, str]) -> None:
    folder, log = project
    assert "All definitions loaded successfully." in log
    assert (folder / ".dagster_home" / "dagster.yaml").exists()
    # The scaffolded template shows how to use LLM judges and their endpoint in YAML.
    template = (folder / "src/my_evals/defs/support_bot/defs.yaml").read_text()
    for shown in ("LLM judges by name", "scorers: [exact_match, sql]", "# judge_resource:", "api_key_env"):
        assert shown in template


def test_an_llm_judge_in_yaml_on_the_served_fake_fails_the_gate(
    shell: UserShell, project: tuple[Path, str]
) -> None:
    folder, _ = project
    suite = folder / "src/my_evals/defs/support_bot"
    (folder / "src/my_evals/bot.py").write_text(readme_block("`src/my_evals/bot.py`:"))
    (suite / "rows.jsonl").write_text(readme_block("`src/my_evals/defs/support_bot/rows.jsonl`:"))
    port = str(free_port())
    defs_yaml = readme_block("`src/my_evals/defs/support_bot/defs.yaml`:").replace("8789", port)
    serve, launch = readme_block("the `sql` gate fails:").strip().splitlines()
    assert serve.endswith(" &")
    env = {"DAGSTER_HOME": str(folder / ".dagster_home")}
    served = shell.serve(serve.removesuffix(" &").replace("8789", port), folder)
    url = next(served)
    try:
        assert url == f"http://127.0.0.1:{port}/v1"
        # First with the base URL missing its /v1: every judge call fails, and says how to fix it.
        (suite / "defs.yaml").write_text(defs_yaml.replace(f"{port}/v1", port))
        without_v1 = output(shell.run(launch, folder, env))
        assert (
            "exact_match=0.6667 on 3/3 rows; sql=n/a on 0/3 rows (3 errors); 3 rows: 0 without errors"
            in without_v1
        )
        review = shell.run(
            "python -c 'import dagster as dg; e = dg.DagsterInstance.get().get_latest_materialization_event("
            'dg.AssetKey(["evals", "support_bot", "eval_report"])); '
            'print(e.asset_materialization.metadata["rows_to_review"].value)\'',
            folder,
            env,
        )
        hint = f"/chat/completions is served at /v1/chat/completions: set OPENAI_BASE_URL (or the judge's base_url) to http://127.0.0.1:{port}/v1"
        assert hint in output(review)
        # Then as the docs write it: the fake judges the DROP TABLE answer incorrect, the gate fails.
        (suite / "defs.yaml").write_text(defs_yaml)
        gated = shell.run(launch, folder, env)
        log = output(gated)
        assert gated.returncode != 0
        # The run log says what each scorer scored, and the counts agree with the scores.
        assert "exact_match=0.6667 on 3/3 rows; sql=0.6667 on 3/3 rows; 3 rows: 3 without errors" in log
        assert "Asset check 'threshold_sql' on 'evals/support_bot/eval_report' did not pass" in log
    finally:
        served.close()


def test_your_own_braintrust_suite_runs_on_the_served_fake_and_its_link_opens(shell: UserShell) -> None:
    folder = shell.home / "braintrust-suite"
    folder.mkdir()
    (folder / "braintrust_defs.py").write_text(readme_block("`braintrust_defs.py`:"))
    port = str(free_port())
    serve, export, launch = readme_block("Serve the fake and run the suite against it:").strip().splitlines()
    served = shell.serve(serve.removesuffix(" &").replace("8787", port), folder)
    assert next(served) == f"http://127.0.0.1:{port}"
    try:
        env = {"DAGSTER_HOME": str(folder)}
        (folder / "dagster.yaml").touch()
        result = shell.run(f"{export.replace('8787', port)}\n{launch}", folder, env)
        log = output(result)
        assert result.returncode == 0, log[-3000:]
        assert "exact_match=0.5000 on 2/2 rows; 2 rows: 2 without errors, 0 with errors" in log
        found = re.search(
            rf"stored in (http://127\.0\.0\.1:{port}/app/fake-org/p/support-bot/experiments/\S+)", log
        )
        assert found, log[-3000:]
        experiment = httpx.get(found.group(1)).json()
        outputs = {row["id"]: (row["output"], row["scores"]) for row in experiment["rows"]}
        assert len(outputs) == 2 and {"GOODBYE", "HELLO"} == {o for o, _ in outputs.values()}
        assert experiment["summary"]["scores"]["exact_match"]["score"] == 0.5
        page = httpx.get(found.group(1), headers={"Accept": "text/html"}).text
        assert "<h2>Scores</h2>" in page and "goodbye" in page
        api = readme_line('curl -H "Authorization: Bearer test-key" http://127.0.0.1:8787/v1/experiment')
        listed = shell.run(api.replace("8787", port), folder)
        assert '"project_id"' in listed.stdout and "greetings" in listed.stdout
    finally:
        served.close()


def test_a_prompt_sensor_is_on_and_a_tick_can_be_tested(shell: UserShell) -> None:
    folder = shell.home / "sensor-suite"
    folder.mkdir()
    (folder / "sensors.py").write_text(readme_block("`sensors.py`:"))
    (folder / "check_sensor.py").write_text(readme_block("`check_sensor.py`:"))
    (folder / "dagster.yaml").touch()
    env = {"DAGSTER_HOME": str(folder)}
    preview = shell.run(readme_block("then evaluate the sensor once"), folder, env)
    assert "Sensor returning run requests for 1 run(s)" in output(preview), output(preview)[-3000:]
    listed = shell.run(readme_line("dagster sensor list -f sensors.py"), folder, env)
    assert "support_bot_prompt_version_sensor [RUNNING]" in output(listed)
    tick = shell.run(readme_line("python check_sensor.py"), folder, env)
    assert "['support_bot_system@1']" in tick.stdout, output(tick)[-3000:]
