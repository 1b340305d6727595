"""A Keywords AI eval run started now and read back later, through the platform's public surface
(`start_evaluators_run`, `find_tasks`, `eval_run_report`): what an orchestrator that waits elsewhere (Airflow's
triggerer) uses. Against the Keywords AI fake over real HTTP. The Airflow provider reaches no private name of
a backend.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dagster_evals.backends.keywordsai import metadata_filter
from dagster_evals.backends.keywordsai.datasets import DatasetChangedError
from dagster_evals.backends.keywordsai.eval_runs import split_report_id
from dagster_evals.backends.keywordsai.platform import KeywordsAIPlatform
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.models import DatasetRow, PlatformFunction
from dagster_evals.testing.keywordsai import KeywordsAIFake
from tests.conftest import KEYWORDSAI_KEY

CHARS = PlatformFunction(platform="keywordsai", name="char_count_eval")
PROVIDER = Path(__file__).resolve().parent.parent / "dagster_evals" / "airflow"


@pytest.fixture
def platform() -> Iterator[tuple[KeywordsAIFake, KeywordsAIPlatform]]:
    fake = KeywordsAIFake(
        api_keys=[KEYWORDSAI_KEY], rate_limit_per_minute=None, eval_statuses=("running", "completed")
    )
    with fake.serve() as server:
        connected = KeywordsAIPlatform.connect(
            KEYWORDSAI_KEY, base_url=server.url, rate_limit_per_minute=None
        )
        try:
            yield fake, connected
        finally:
            connected.close()


def wait_until_final(platform: KeywordsAIPlatform, report_id: str) -> None:
    dataset_id, keys = split_report_id(report_id)
    for _ in range(20):
        if all(t.state == "completed" for t in platform.find_tasks(dataset_id, keys)):
            return
    raise AssertionError(f"eval run {report_id} never completed")


def test_an_eval_run_started_now_is_read_back_later_compared_with_its_baseline(
    platform: tuple[KeywordsAIFake, KeywordsAIPlatform],
) -> None:
    fake, keywordsai = platform
    now = datetime.now(UTC)
    fake.add_request_logs(
        {"input": f"q{i}", "output": "x" * i, "metadata": {"env": "prod"}} for i in range(1, 7)
    )
    dataset = keywordsai.create_dataset_from_logs(
        "prod-sample", start_time=now - timedelta(hours=1), end_time=now + timedelta(minutes=1),
        filters=metadata_filter("env", "prod"),
    )  # fmt: skip
    snapshot = keywordsai.snapshot(dataset)
    progress: list[str] = []

    def created() -> int:
        return sum(n for route, n in fake.requests.items() if "eval-reports/create" in route)

    # Refused before anything starts: a local scorer, an evaluator the organization does not have.
    with pytest.raises(ConfigError, match="runs the platform's evaluators only; score exact_match"):
        keywordsai.start_evaluators_run(snapshot, [CHARS, "exact_match"])
    with pytest.raises(ConfigError, match="Keywords AI has no evaluator 'no_such_eval'"):
        keywordsai.start_evaluators_run(
            snapshot, [PlatformFunction(platform="keywordsai", name="no_such_eval")]
        )
    assert created() == 0

    first = keywordsai.start_evaluators_run(snapshot, [CHARS], progress=progress.append)
    assert first.startswith(f"{dataset.id}:") and created() == 1
    assert any("still matches snapshot" in line for line in progress)
    wait_until_final(keywordsai, first)
    baseline = keywordsai.eval_run_report(first)
    assert baseline.rows_scored == 6 and baseline.scores["char_count_eval"].mean == pytest.approx(3.5)

    second = keywordsai.start_evaluators_run(snapshot, [CHARS])
    wait_until_final(keywordsai, second)
    report = keywordsai.eval_run_report(second, baseline_id=first)
    assert report.id == second and report.baseline_id == first
    assert report.scores["char_count_eval"].baseline_mean == pytest.approx(3.5)
    assert report.scores["char_count_eval"].diff == pytest.approx(0.0)

    # The dataset changed since the snapshot: nothing is started.
    keywordsai.upsert_rows(dataset, [DatasetRow.build("q99", "x" * 99, id="late")])
    with pytest.raises(DatasetChangedError, match="changed since snapshot"):
        keywordsai.start_evaluators_run(snapshot, [CHARS])
    assert created() == 2


def private_names(path: Path) -> list[str]:
    """Underscore names of other modules that `path` imports or reaches (`x._name`, not `self._name`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dagster_evals"):
            found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
        reached = (
            isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        )
        if reached and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_airflow_provider_uses_no_private_name_of_another_module() -> None:
    assert [name for path in sorted(PROVIDER.glob("*.py")) for name in private_names(path)] == []
