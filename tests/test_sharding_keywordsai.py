"""A sharded eval on the Keywords AI fake (Python task and local scorers in the shards, the platform's
evaluators when combined) equals an unsharded one of the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from dagster_evals import EvalSuite, build_eval_suite_assets
from tests.conftest import materialization, qa_rows, write_jsonl
from tests.test_keywordsai_platform import EXACT, fake, resource
from tests.test_sharding_platforms import comparable, wrong_every_third, wrong_on_odd

__all__ = ["fake"]  # a fixture, used by name (conftest's `server` serves it)
REPORT_KEY = dg.AssetKey(["evals", "arith", "eval_report"])


def materialize(suite: EvalSuite, instance: dg.DagsterInstance, server: Any) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_eval_suite_assets(suite),
        instance=instance,
        resources={"evals": resource(server)},
        raise_on_error=False,
    )


def test_sharded_keywordsai_report_equals_unsharded(tmp_path: Path, instance, server) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(24))
    options: dict[str, Any] = {
        "name": "arith",
        "source": source,
        "key_field": "id",
        "scorers": ["exact_match", EXACT],
        "thresholds": {"exact_match": 0.5, "exact_match_eval": 0.5},
        "max_regression": 0.5,
    }
    baseline = materialization(
        materialize(EvalSuite(task=wrong_on_odd, **options), instance, server), REPORT_KEY
    )
    options["baseline"] = baseline["report_id"]

    unsharded_result = materialize(EvalSuite(task=wrong_every_third, **options), instance, server)
    sharded_result = materialize(EvalSuite(task=wrong_every_third, shards=2, **options), instance, server)
    unsharded = materialization(unsharded_result, REPORT_KEY)
    sharded = materialization(sharded_result, REPORT_KEY)
    assert comparable(sharded) == comparable(unsharded)
    assert sharded["rows_scored"] == 24 and sharded["diff/exact_match_eval"] != 0
    checks = {e.check_name: e.passed for e in sharded_result.get_asset_check_evaluations()}
    assert checks == {e.check_name: e.passed for e in unsharded_result.get_asset_check_evaluations()}
    assert set(checks) == {
        "threshold_exact_match",
        "threshold_exact_match_eval",
        "no_regression",
        "completeness",
    }
