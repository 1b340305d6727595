"""`dagster-evals report` / `push-prompt` through the installed CLI (a real subprocess) on SQLite and PostgreSQL:
`--url` and `--db` (a path or a URL), and one clear error for a missing or non-SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_evals import DatasetRow, EvalRequest, LocalPlatform
from tests.conftest import REPO

CLI = str(Path(sys.executable).with_name("dagster-evals"))


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_EVALS_", "DAGSTER_HOME"))}
    return subprocess.run(
        [CLI, *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def one_report(url: str) -> str:
    platform = LocalPlatform(url)
    ds = platform.ensure_dataset("arith")
    platform.upsert_rows(
        ds, [DatasetRow.build(input={"a": i}, expected=str(i + 1), id=f"q{i}") for i in range(3)]
    )
    request = EvalRequest(
        name="arith-eval",
        snapshot=platform.snapshot(ds),
        task=lambda input: str(input["a"] + 1),
        scorers=["exact_match"],
    )
    report = platform.run_eval(request)
    platform.close()
    return report.id


def test_report_reads_the_database_given_by_url_or_db(database_url: str, tmp_path: Path) -> None:
    report_id = one_report(database_url)
    by_url = cli("report", "--url", database_url, cwd=tmp_path)
    assert by_url.returncode == 0, by_url.stderr
    assert f"report {report_id}" in by_url.stdout and "exact_match" in by_url.stdout
    by_db = cli("report", "--db", database_url, cwd=tmp_path)
    assert by_db.returncode == 0 and f"report {report_id}" in by_db.stdout
    by_env = cli("report", cwd=tmp_path, DAGSTER_EVALS_DATABASE_URL=database_url)
    assert by_env.returncode == 0 and f"report {report_id}" in by_env.stdout


def test_report_db_takes_a_plain_path(tmp_path: Path) -> None:
    report_id = one_report(f"sqlite:///{tmp_path / 'evals.sqlite'}")
    result = cli("report", "--db", "evals.sqlite", cwd=tmp_path)
    assert result.returncode == 0 and f"report {report_id}" in result.stdout


def test_report_on_a_missing_file_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    for args in (["--db", "nope/evals.sqlite"], ["--url", "sqlite:///nope/evals.sqlite"], []):
        result = cli("report", *args, cwd=tmp_path, DAGSTER_HOME=str(tmp_path / "home"))
        assert result.returncode == 2, result
        assert (
            result.stderr.startswith("error: no local backend database at ")
            and "Traceback" not in result.stderr
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("id,input\n1,hello\n"), "is not a SQLite database"),
        (lambda p: p.write_bytes(b""), "is not a SQLite database"),
        (lambda p: p.mkdir(), "is not a file"),
    ],
    ids=["csv-file", "empty-file", "directory"],
)
def test_report_on_something_else_than_a_database_is_one_clear_error(
    tmp_path: Path, make, message: str
) -> None:
    target = tmp_path / "thing"
    make(target)
    before = target.read_bytes() if target.is_file() else None
    result = cli("report", "--db", str(target), cwd=tmp_path)
    assert "Traceback" not in result.stderr and message in result.stderr, result.stderr
    assert result.returncode in (1, 2)
    if before:
        assert target.read_bytes() == before  # untouched


def test_report_with_an_unknown_scheme_or_both_options_is_refused(tmp_path: Path) -> None:
    result = cli("report", "--url", "mysql://u@db/x", cwd=tmp_path)
    assert result.returncode == 2 and "unsupported database URL scheme 'mysql'" in result.stderr
    both = cli("report", "--url", "sqlite:///a", "--db", "b", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr


def test_push_prompt_then_read_it_back_on_both_engines(database_url: str, tmp_path: Path) -> None:
    result = cli("push-prompt", "bot", '{"sign_off": "Cheers"}', "--url", database_url, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "is at version 1" in result.stdout
    platform = LocalPlatform(database_url)
    assert [(p.slug, p.content) for p in platform.list_prompt_versions()] == [("bot", {"sign_off": "Cheers"})]
    platform.close()
