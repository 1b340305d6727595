"""A sharded eval on the Braintrust fake (Python task, run here; results recorded as one experiment)
equals an unsharded one of the same rows: scores, diffs against the baseline, counts, checks and per-row
scores as Braintrust reports them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_evals import EvalSuite, build_eval_suite_assets
from tests.conftest import materialization, qa_rows, write_jsonl
from tests.test_braintrust_platform import REPORT_KEY, fake, platform, resource

__all__ = ["fake"]  # a fixture, used by name (conftest's `server` serves it)

# Metadata that names the run rather than what the rows scored.
RUN_FIELDS = {
    "report_id",
    "experiment_url",
    "dagster_run_id",
    "summary",
    "duration_s",
    "details",
    "rows_to_review",
}
# The parts of `details` that name the run.
RUN_DETAILS = {"report_name", "dataset", "metrics", "shards"}


def comparable(metadata: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in metadata.items() if k not in RUN_FIELDS and not k.startswith("latency")}
    kept["details"] = {k: v for k, v in metadata["details"].items() if k not in RUN_DETAILS}
    # The tables' rows (not their order: ties between equal drops may fall either way).
    kept["rows_to_review"] = sorted(
        line
        for line in metadata["rows_to_review"].splitlines()
        if line.startswith("| ") and "---" not in line
    )
    return kept


def wrong_on_odd(input: dict[str, Any]) -> str:
    return str(input["a"] + input["b"] + input["a"] % 2)


def wrong_every_third(input: dict[str, Any]) -> str:
    return str(input["a"] + input["b"] + (1 if input["a"] % 3 == 0 else 0))


def materialize(
    suite: EvalSuite, instance: dg.DagsterInstance, server: Any, make_resource: Any = resource
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": make_resource(server)},
        raise_on_error=False,
    )


@dataclass
class ShardedAndUnsharded:
    unsharded_result: dg.ExecuteInProcessResult
    sharded_result: dg.ExecuteInProcessResult
    unsharded: dict[str, Any]
    sharded: dict[str, Any]


def run_sharded_and_unsharded(
    options: dict[str, Any], shards: int, instance: dg.DagsterInstance, server: Any, make_resource: Any
) -> ShardedAndUnsharded:
    """Record a baseline (`wrong_on_odd`), then run `wrong_every_third` unsharded and on `shards` shards."""
    options = dict(options)
    baseline = EvalSuite(task=wrong_on_odd, **options)
    options["baseline"] = materialization(materialize(baseline, instance, server, make_resource), REPORT_KEY)[
        "report_id"
    ]
    unsharded_result = materialize(
        EvalSuite(task=wrong_every_third, **options), instance, server, make_resource
    )
    sharded_result = materialize(
        EvalSuite(task=wrong_every_third, shards=shards, **options), instance, server, make_resource
    )
    return ShardedAndUnsharded(
        unsharded_result,
        sharded_result,
        materialization(unsharded_result, REPORT_KEY),
        materialization(sharded_result, REPORT_KEY),
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_sharded_braintrust_report_equals_unsharded(tmp_path: Path, instance, server) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(40))
    options: dict[str, Any] = {
        "name": "arith",
        "source": source,
        "key_field": "id",
        "scorers": ["exact_match", "levenshtein"],
        "thresholds": {"exact_match": 0.5},
        "max_regression": 0.5,
    }
    runs = run_sharded_and_unsharded(options, 3, instance, server, resource)
    unsharded_result, sharded_result = runs.unsharded_result, runs.sharded_result
    unsharded, sharded = runs.unsharded, runs.sharded
    assert comparable(sharded) == comparable(unsharded)
    assert sharded["diff/exact_match"] != 0 and sharded["rows_scored"] == 40
    assert (
        checks(sharded_result)
        == checks(unsharded_result)
        == {
            "threshold_exact_match": True,
            "no_regression": True,
            "completeness": True,
        }
    )
    bt = platform(server)
    assert bt.report_row_scores(sharded["report_id"]) == bt.report_row_scores(unsharded["report_id"])
    ours, theirs = bt.get_eval_report(sharded["report_id"]), bt.get_eval_report(unsharded["report_id"])
    assert ours.scores == theirs.scores
    assert ours.scores["exact_match"].mean == pytest.approx(1 - 14 / 40)
