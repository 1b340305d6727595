"""`dagster-evals rows`, `diff`, `html` and `report REPORT_ID` on reports made by real runs, on SQLite and
PostgreSQL: every row, filtered, one line each or JSON with input, output, expected, scores and the
judge's reason; two reports compared row by row; and clear errors for bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from autoevals.score import Score

from dagster_evals import EvalSuite, LocalEvalResource, LocalPlatform
from dagster_evals.cli import main
from tests.conftest import materialize_suite, qa_rows, write_jsonl

WRONG: set[int] = set()
CRASH: set[int] = set()


def answer(input: dict[str, Any]) -> str:
    if input["a"] in CRASH:
        raise RuntimeError(f"the model refused a={input['a']}")
    return str(input["a"] + input["b"] + (1 if input["a"] in WRONG else 0))


def graded(output: str, expected: str) -> Score:
    if output == expected:
        return Score(name="graded", score=1.0, metadata={"rationale": "Matches the reference."})
    return Score(
        name="graded", score=0.25, metadata={"rationale": f"Says {output}; the reference says {expected}."}
    )


def two_reports(tmp_path: Path, url: str, instance: dg.DagsterInstance) -> tuple[str, str]:
    """A baseline (q1 wrong) and a report where q2 and q3 went wrong, q1 got right and q4 crashed."""
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(6))
    suite = EvalSuite(
        name="cli_bot", source=source, task=answer, scorers=["exact_match", graded], key_field="id",
        max_errored_rows=6,
    )  # fmt: skip
    evals = LocalEvalResource(url=url)
    ids = []
    for wrong, crash in (({1}, set()), ({2, 3}, {4})):
        WRONG.clear(), CRASH.clear()
        WRONG.update(wrong), CRASH.update(crash)
        result = materialize_suite(suite, instance, evals)
        [mat] = [m for m in result.asset_materializations_for_node("evals__cli_bot__eval_report")]
        ids.append(str(mat.metadata["report_id"].value))
    WRONG.clear(), CRASH.clear()
    return ids[0], ids[1]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rows_lists_filters_and_prints_json_on_both_engines(
    tmp_path: Path, database_url: str, instance: dg.DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, report = two_reports(tmp_path, database_url, instance)
    db = ("--url", database_url)

    code, out, _ = run(capsys, "rows", report, *db)
    lines = out.splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == [f"q{i}" for i in range(6)]
    q2 = lines[2]
    assert "exact_match=1→0" in q2 and "graded=1→0.25" in q2  # baseline → now, the report's own baseline
    assert 'input={"a": 2, "b": 2}' in q2 and "output=5" in q2 and "expected=4" in q2
    assert "graded: Says 5; the reference says 4." in q2

    code, out, _ = run(capsys, "rows", report, *db, "--errored")
    assert [line.split()[:2] for line in out.splitlines()] == [["q4", "errored"]]
    assert "error: RuntimeError: the model refused a=4" in out

    code, out, _ = run(capsys, "rows", report, *db, "--scorer", "graded", "--below", "0.5")
    assert [line.split()[0] for line in out.splitlines()] == ["q2", "q3"]

    code, out, _ = run(capsys, "rows", report, *db, "--regressed", "--limit", "1", "--json")
    [entry] = [json.loads(line) for line in out.splitlines()]
    assert entry["row_id"] == "q2" and entry["scores"] == {"exact_match": 0.0, "graded": 0.25}
    assert entry["baseline"] == {"exact_match": 1.0, "graded": 1.0}
    assert (entry["input"], entry["output"], entry["expected"]) == ('{"a": 2, "b": 2}', "5", "4")
    assert entry["reasons"] == {"graded": "Says 5; the reference says 4."}

    # The baseline has no baseline of its own: --regressed needs one named.
    code, _, err = run(capsys, "rows", baseline, *db, "--regressed")
    assert code == 2 and "has no baseline: give --baseline REPORT_ID" in err
    code, out, _ = run(
        capsys, "rows", report, *db, "--regressed", "--baseline", baseline, "--scorer", "graded"
    )
    assert [line.split()[0] for line in out.splitlines()] == ["q2", "q3"]


def test_diff_compares_two_reports_row_by_row(
    tmp_path: Path, instance: dg.DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "evals.sqlite"
    baseline, report = two_reports(tmp_path, f"sqlite:///{db}", instance)
    code, out, _ = run(capsys, "diff", baseline, report, "--db", str(db))
    lines = out.splitlines()
    assert code == 0
    assert lines[1] == "  exact_match: 0.8333 → 0.6 (-0.2333)"  # 5 of 6 right, then 3 of 5 (q4 crashed)
    changed = {line.split()[0]: line.split()[1] for line in lines[3:-1]}
    assert changed == {"q1": "improved", "q2": "regressed", "q3": "regressed", "q4": "changed"}
    assert lines[-1] == "rows: 1 changed, 1 improved, 2 regressed"
    assert "error in " + report + ": RuntimeError: the model refused a=4" in out

    code, out, _ = run(capsys, "diff", baseline, report, "--db", str(db), "--all", "--json")
    entries = {e["row_id"]: e for e in map(json.loads, out.splitlines())}
    assert len(entries) == 6 and entries["q0"]["change"] == "same"
    assert entries["q2"]["scores"]["graded"] == [1.0, 0.25]
    assert entries["q2"]["b"]["output"] == "5"


def test_bad_arguments_get_one_clear_error(
    tmp_path: Path,
    instance: dg.DagsterInstance,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "evals.sqlite"
    _, report = two_reports(tmp_path, f"sqlite:///{db}", instance)
    code, _, err = run(capsys, "rows", "no-such-report", "--db", str(db))
    assert code == 2 and "no eval report 'no-such-report' on local" in err
    code, _, err = run(capsys, "rows", report, "--db", str(db), "--scorer", "levenshtein")
    assert code == 2 and "no scorer 'levenshtein'; its scorers: exact_match, graded" in err
    with pytest.raises(SystemExit):
        main(["rows", report, "--db", str(db), "--below", "1.5"])
    assert "--below: 1.5 is not a score between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rows", report, "--db", str(db), "--limit", "0"])
    assert "--limit: '0' is not a positive whole number" in capsys.readouterr().err
    monkeypatch.delenv("BRAINTRUST_API_KEY", raising=False)
    code, _, err = run(capsys, "rows", report, "--platform", "braintrust")
    assert code == 2 and "--platform braintrust needs an API key: set BRAINTRUST_API_KEY" in err
    monkeypatch.setenv("DAGSTER_EVALS_PLATFORM", "braintrust")
    monkeypatch.setenv("BRAINTRUST_API_KEY", "k")
    code, _, err = run(capsys, "rows", report, "--db", str(db))
    assert code == 2 and "--url and --db name the local backend's database; --platform is braintrust" in err


def test_the_installed_command_writes_the_html_report(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    db = tmp_path / "evals.sqlite"
    _, report = two_reports(tmp_path, f"sqlite:///{db}", instance)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_EVALS_", "DAGSTER_HOME"))}
    cli = str(Path(sys.executable).with_name("dagster-evals"))
    done = subprocess.run(
        [cli, "html", report, "--db", str(db), "--out", str(tmp_path / "page.html")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote 6 rows to {tmp_path / 'page.html'}"
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "Says 5; the reference says 4." in page and "http" not in page.split("<body>")[0]
    assert LocalPlatform(f"sqlite:///{db}").get_eval_report(report).baseline_id is not None


def test_reports_and_rows_are_read_from_braintrust_with_the_resources_variables(
    tmp_path: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dagster_evals.testing.braintrust import BraintrustFake
    from tests.test_braintrust_platform import KEY, REPORT_KEY, resource, suite_for

    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(10, wrong={1, 2}))
    with BraintrustFake(api_key=KEY).serve() as server:
        # Two trials a row: Braintrust returns them as separate traces, the CLI lists each row once.
        report = materialize_suite(suite_for(source, trial_count=2), instance, resource(server))
        [mat] = [
            e.materialization
            for e in report.get_asset_materialization_events()
            if e.materialization.asset_key == REPORT_KEY
        ]
        report_id = str(mat.metadata["report_id"].value)
        monkeypatch.setenv("BRAINTRUST_API_KEY", KEY)
        monkeypatch.setenv("BRAINTRUST_API_URL", server.url)
        monkeypatch.setenv("DAGSTER_EVALS_PLATFORM", "braintrust")

        code, out, _ = run(capsys, "report", report_id)
        assert code == 0 and f"report {report_id}" in out
        assert "| exact_match | 0.8 |" in out and "/experiments/arith-" in out  # the table and its link
        code, out, _ = run(capsys, "rows", report_id, "--scorer", "exact_match", "--below", "1")
        assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["q1", "q2"]
        assert "exact_match=0" in out

        code, _, err = run(capsys, "report", "no-such-experiment")
        assert code == 2 and "no eval report 'no-such-experiment' on braintrust" in err
        # Without an id there is no "latest" to pick on a platform.
        code, _, err = run(capsys, "report")
        assert code == 2 and "name the reports to print" in err


def test_a_keywords_ai_report_is_read_with_its_variables(
    tmp_path: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.conftest import KEYWORDSAI_KEY, keywordsai_fake, keywordsai_resource

    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(4, wrong={1}))
    suite = EvalSuite(name="kw_bot", source=source, task=answer, scorers=["exact_match"], key_field="id")
    with keywordsai_fake().serve() as server:
        result = materialize_suite(suite, instance, keywordsai_resource(server.url))
        [mat] = result.asset_materializations_for_node("evals__kw_bot__eval_report")
        report_id = str(mat.metadata["report_id"].value)
        monkeypatch.setenv("KEYWORDSAI_API_KEY", KEYWORDSAI_KEY)
        monkeypatch.setenv("KEYWORDSAI_BASE_URL", server.url)
        code, out, err = run(capsys, "report", report_id, "--platform", "keywordsai")
        assert code == 0, err
        assert f"report {report_id}" in out and "| exact_match | 0.75 |" in out
        code, out, err = run(capsys, "rows", report_id, "--platform", "keywordsai", "--below", "1")
        assert code == 0, err
        assert [line.split()[:3] for line in out.splitlines()] == [["q1", "scored", "exact_match=0"]]
