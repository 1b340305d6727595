"""The first-hour paths in process (quick): resource URLs from the environment, connection errors that name
the URL, the run log's per-scorer counts, the served OpenAI fake's rules and `/v1` hint, and the Braintrust
fake's web-app links. `tests/test_first_hour.py` drives the same paths from a fresh project."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import httpx
import pytest

from dagster_evals import BraintrustResource, KeywordsAIResource, LocalResource
from dagster_evals.engine.errors import ConfigError, PlatformError
from dagster_evals.testing import BraintrustFake, KeywordsAIFake
from dagster_evals.testing.openai.rule_files import RuleFileError, command_line_rules, load_rules_file
from tests.conftest import REPO, arith_suite, materialize_suite, qa_rows, write_jsonl

KEY = "bt-key-0123456789abcdef"
REPORT = dg.AssetKey(["evals", "arith", "eval_report"])


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def report_log(instance: dg.DagsterInstance, run_id: str) -> str:
    messages = [record.user_message for record in instance.all_logs(run_id)]
    return next(m for m in messages if m.startswith("eval report "))


def test_braintrust_resource_reads_braintrust_api_url_and_its_field_wins(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = arith_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(2)), scorers=["exact_match"])
    with BraintrustFake(KEY).serve() as server:
        monkeypatch.setenv("BRAINTRUST_API_URL", server.url)
        result = materialize_suite(suite, instance, BraintrustResource(api_key=KEY, collect_git=False))
        assert result.success
        assert f"stored in {server.url}/app/fake-org/p/" in report_log(instance, result.run_id)
        # The field wins over the variable: a resource naming an unreachable host fails, naming it.
        unreachable = closed_port_url()
        resource = BraintrustResource(api_key=KEY, api_url=unreachable, max_retries=0, collect_git=False)
        failed = materialize_suite(suite, instance, resource, raise_on_error=False)
    assert not failed.success
    error = "\n".join(
        str(e.step_failure_data.error.message)
        for e in failed.all_events
        if e.is_step_failure and e.step_failure_data
    )
    assert f"connection error to {unreachable}/v1/" in error
    assert KEY not in error


def test_keywordsai_resource_reads_keywordsai_base_url_with_or_without_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = KeywordsAIFake(api_keys=[KEY], rate_limit_per_minute=None)
    with fake.serve() as server:
        for value in (server.url, server.url + "/api", server.url + "/api/"):
            monkeypatch.setenv("KEYWORDSAI_BASE_URL", value)
            platform = KeywordsAIResource(api_key=KEY, rate_limit_per_minute=None).connect()
            try:
                assert platform.list_prompt_versions() == []
            finally:
                platform.close()
        monkeypatch.delenv("KEYWORDSAI_BASE_URL")
        monkeypatch.setenv("RESPAN_BASE_URL", server.url)
        assert KeywordsAIResource(api_key=KEY).resolved_base_url() == server.url
        monkeypatch.setenv("KEYWORDSAI_BASE_URL", "api.keywordsai.co")
        with pytest.raises(ConfigError, match="the KEYWORDSAI_BASE_URL environment variable must be an http"):
            KeywordsAIResource(api_key=KEY).connect()
        assert KeywordsAIResource(api_key=KEY, base_url=server.url).resolved_base_url() == server.url


def test_a_connection_error_names_the_url_and_never_the_key() -> None:
    unreachable = closed_port_url()
    platform = BraintrustResource(
        api_key=KEY,
        api_url=f"http://user:secret@{unreachable.removeprefix('http://')}",
        max_retries=1,
        backoff_base_s=0.01,
        collect_git=False,
    ).connect()
    try:
        with pytest.raises(PlatformError) as caught:
            platform.list_prompt_versions()
    finally:
        platform.close()
    message = str(caught.value)
    assert f"connection error to {unreachable}/v1/" in message and "(after 2 attempts)" in message
    assert KEY not in message and "secret" not in message


def test_the_run_log_counts_rows_per_scorer(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    def judge_down(output: str) -> float:
        raise RuntimeError("judge unreachable")

    suite = arith_suite(
        write_jsonl(tmp_path / "rows.jsonl", qa_rows(15, wrong={3})), scorers=["exact_match", judge_down]
    )
    evals = LocalResource(path=str(tmp_path / "evals.sqlite"))
    result = materialize_suite(suite, instance, evals, raise_on_error=False)
    assert not result.success  # the completeness check blocks: every row has a scorer error
    line = report_log(instance, result.run_id)
    assert "exact_match=0.9333 on 15/15 rows; judge_down=n/a on 0/15 rows (15 errors); " in line
    assert "15 rows: 0 without errors, 15 with errors (task errors 0, scorer errors 15)" in line


def test_the_served_openai_fake_hints_at_v1_and_takes_rules_from_the_command_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- contains: capital of France\n  reply: Paris\n")
    command = [sys.executable, "-m", "dagster_evals.testing", "openai", "--rules", str(rules)]
    command += ["--choice", "DROP TABLE", "Incorrect", "--answer", "weather", "sunny"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        headers = {"Authorization": "Bearer test-key"}

        def chat(text: str, url: str = base_url, **extra: object) -> httpx.Response:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
            return httpx.post(f"{url}/chat/completions", json=body, headers=headers)

        def said(response: httpx.Response) -> str:
            return response.json()["choices"][0]["message"]["content"]

        assert said(chat("the capital of France?")) == "Paris"
        assert said(chat("the weather today?")) == "sunny"
        assert said(chat("hello")) == "fake reply: hello"
        tool = {
            "type": "function",
            "function": {
                "name": "select_choice",
                "parameters": {
                    "type": "object",
                    "properties": {"choice": {"type": "string", "enum": ["Correct", "Incorrect"]}},
                },
            },
        }
        forced = {"tools": [tool], "tool_choice": {"type": "function", "function": {"name": "select_choice"}}}
        for text, choice in (("output: DROP TABLE users", "Incorrect"), ("output: SELECT 1", "Correct")):
            call = chat(text, **forced).json()["choices"][0]["message"]["tool_calls"][0]["function"]
            assert call["name"] == "select_choice" and f'"choice": "{choice}"' in call["arguments"]
        missing_v1 = chat("hello", url=base_url.removesuffix("/v1"))
        assert missing_v1.status_code == 404
        assert missing_v1.json()["error"]["message"].startswith(
            f"/chat/completions is served at /v1/chat/completions: set OPENAI_BASE_URL (or the judge's "
            f"base_url) to {base_url}, with the /v1."
        )
    finally:
        process.terminate()
        process.communicate(timeout=20)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- pattern: x\n  answer: y\n", "rule 1: unknown field(s) answer"),
        ("- pattern: x\n", "rule 1: give exactly one of reply, choice, tool_call (got 0)"),
        ("- pattern: '('\n  reply: y\n", "rule 1: pattern is not a valid regular expression"),
        ("- reply: a\n- contains: 3\n  reply: b\n", "rule 2: contains must be a non-empty string, got 3"),
        ("- choice: true\n", "rule 1: choice must be a non-empty string, got true"),
        ("rules: {pattern: x}\n", "expected a list of rules"),
        ("- [\n", "not valid YAML"),
    ],
)
def test_a_bad_rules_file_is_one_error_naming_file_rule_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as caught:
        load_rules_file(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_a_bad_command_line_rule_stops_the_server_with_its_flag() -> None:
    with pytest.raises(RuleFileError, match=r"--choice '\(': pattern is not a valid regular expression"):
        command_line_rules(choices=[("(", "Incorrect")])
    served = subprocess.run(
        [sys.executable, "-m", "dagster_evals.testing", "braintrust", "--choice", "x", "y"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert served.returncode == 2 and "apply to the openai fake only" in served.stderr


def test_the_braintrust_fake_serves_its_experiment_and_project_links(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    suite = arith_suite(write_jsonl(tmp_path / "rows.jsonl", qa_rows(3, wrong={1})), scorers=["exact_match"])
    with BraintrustFake(KEY).serve() as server:
        resource = BraintrustResource(api_key=KEY, api_url=server.url, project="demo", collect_git=False)
        result = materialize_suite(suite, instance, resource)
        url = next(
            e.materialization.metadata["experiment_url"].value
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key == REPORT
        )
        experiment = httpx.get(str(url)).json()
        assert experiment["summary"]["scores"]["exact_match"]["score"] == pytest.approx(2 / 3)
        assert sorted(row["output"] for row in experiment["rows"]) == ["2", "3", "4"]
        page = httpx.get(str(url), headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html") and "<h2>Rows (3)</h2>" in page.text
        project = httpx.get(f"{server.url}/app/fake-org/p/demo").json()
        assert [e["url"] for e in project["experiments"]] == [url]
        datasets = {d["name"]: d["url"] for d in project["datasets"]}
        dataset = httpx.get(datasets["arith"]).json()
        assert len(dataset["rows"]) == 3
        missing = httpx.get(f"{server.url}/app/fake-org/p/demo/experiments/nope")
        assert missing.status_code == 404 and "experiment 'nope' not found" in missing.json()["error"]
