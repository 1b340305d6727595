"""A sharded eval on the Keywords AI fake (Python task and local scorers in the shards, the platform's
evaluators when combined) equals an unsharded one of the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import qa_rows, write_jsonl
from tests.test_keywordsai_platform import EXACT, fake, resource
from tests.test_sharding_platforms import comparable, run_sharded_and_unsharded

__all__ = ["fake"]  # a fixture, used by name (conftest's `server` serves it)


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
    runs = run_sharded_and_unsharded(options, 2, instance, server, resource)
    unsharded_result, sharded_result = runs.unsharded_result, runs.sharded_result
    unsharded, sharded = runs.unsharded, runs.sharded
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
