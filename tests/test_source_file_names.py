"""A source file whose name is not valid UTF-8 (legal on Linux) syncs and evaluates like any other, and
errors about it show the name with the undecodable bytes escaped."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import dagster as dg
import pytest

from dagster_evals import EvalSuite, LocalResource, build_eval_suite_assets
from tests.conftest import add_task, qa_rows, write_jsonl

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux only")


def latin1_named(tmp_path: Path, suffix: str) -> Path:
    """A path in `tmp_path` whose name holds the Latin-1 byte of 'é' (not UTF-8)."""
    return Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9-rows" + suffix.encode()))


def materialize(path: Path, tmp_path: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    suite = EvalSuite(
        name="latin1", source=path, key_field="id", task=add_task, scorers=["exact_match"], baseline=None
    )
    return dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": LocalResource(path=str(tmp_path / "evals.sqlite"))},
        raise_on_error=False,
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_file_name_that_is_not_utf8_syncs_and_evaluates(
    tmp_path: Path, instance: dg.DagsterInstance, suffix: str
) -> None:
    path = latin1_named(tmp_path, suffix)
    if suffix == ".jsonl":
        write_jsonl(path, qa_rows(6))
    else:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "input", "expected"])
            writer.writerows([r["id"], json.dumps(r["input"]), r["expected"]] for r in qa_rows(6))
    result = materialize(path, tmp_path, instance)
    assert result.success
    report = result.asset_materializations_for_node("evals__latin1__eval_report")[0].metadata
    assert report["score/exact_match"].value == 1.0
    assert report["rows_scored"].value == 6


def test_a_bad_line_in_such_a_file_is_named_with_the_bytes_escaped(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    path = latin1_named(tmp_path, ".jsonl")
    write_jsonl(path, qa_rows(3))
    with path.open("a") as handle:
        handle.write("{not json\n")
    result = materialize(path, tmp_path, instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None
    assert f"{tmp_path}/caf\\xe9-rows.jsonl:4: malformed JSON" in error.message
