"""The "Scaling out on a cluster" configurations of docs/scaling-out.md are the ones that work: the dagster.yaml and the
Dask run config are those `tests/test_dask_executor.py` runs, and the Kubernetes and Celery run configs
(not runnable here) pass Dagster's config validation against a suite's job built with that executor."""

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from dagster_evals import EvalSuite, LocalResource, build_eval_suite_definitions, require_passing_gates
from tests.conftest import add_task, qa_rows, write_jsonl

dagster_k8s = pytest.importorskip("dagster_k8s")
dagster_celery = pytest.importorskip("dagster_celery")
dagster_dask = pytest.importorskip("dagster_dask")

PAGE = Path(__file__).resolve().parent.parent / "docs" / "scaling-out.md"


def readme_run_configs() -> dict[str, dict[str, Any]]:
    """The YAML blocks of the page marked `<!-- run config: NAME -->`, parsed."""
    text = PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- run config: (\w+) -->\n```yaml\n(.*?)```", text, flags=re.S)
    return {name: yaml.safe_load(body) for name, body in blocks}


def readme_dagster_yaml() -> dict[str, Any]:
    section = PAGE.read_text(encoding="utf-8").split("## Scaling out on a cluster", 1)[1]
    body = re.search(r"```yaml\n(storage:.*?)```", section, flags=re.S)
    assert body, "no dagster.yaml in 'Scaling out on a cluster'"
    return yaml.safe_load(body.group(1))


def release_job(tmp_path: Path, executor: dg.ExecutorDefinition) -> dg.JobDefinition:
    suite = EvalSuite(
        name="support_bot",
        source=write_jsonl(tmp_path / "rows.jsonl", qa_rows(3)),
        key_field="id",
        task=add_task,
        scorers=["exact_match"],
        thresholds={"exact_match": 0.8},
        shards=3,
    )

    @dg.asset(deps=[suite.eval_report_key])
    def release_approved(context: dg.AssetExecutionContext) -> None:
        require_passing_gates(context, suite.eval_report_key)

    job = dg.define_asset_job(
        "support_bot_release_job", selection=dg.AssetSelection.assets(release_approved).upstream()
    )
    defs = dg.Definitions.merge(
        build_eval_suite_definitions(suite),
        dg.Definitions(
            assets=[release_approved],
            jobs=[job],
            executor=executor,
            resources={"evals": LocalResource(path=str(tmp_path / "evals.sqlite"))},
        ),
    )
    return defs.resolve_job_def("support_bot_release_job")


def contains(resolved: Any, documented: Any) -> bool:
    if isinstance(documented, dict):
        return isinstance(resolved, dict) and all(
            key in resolved and contains(resolved[key], value) for key, value in documented.items()
        )
    return resolved == documented


@pytest.mark.parametrize(
    ("name", "executor"),
    [
        ("k8s", dagster_k8s.k8s_job_executor),
        ("celery", dagster_celery.celery_executor),
        ("dask", dagster_dask.dask_executor),
    ],
)
def test_readme_run_config_validates_against_a_suite_job(
    name: str, executor: dg.ExecutorDefinition, tmp_path: Path
) -> None:
    run_config = readme_run_configs()[name]
    job = release_job(tmp_path, executor)
    validated = dg.validate_run_config(job, run_config)
    # Every documented value reaches the executor's resolved config (with Dagster's defaults around it).
    assert contains(validated["execution"][executor.name], run_config["execution"]["config"])

    # The validation is real: a misspelt field is refused, naming it.
    wrong = {"execution": {"config": {**run_config["execution"]["config"], "max_concurent": 8}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurent"):
        dg.validate_run_config(job, wrong)


def test_readme_dask_config_is_the_one_the_dask_tests_run() -> None:
    from tests.test_dask_executor import DAGSTER_YAML

    tested = yaml.safe_load(DAGSTER_YAML.format(url="URL"))
    documented = readme_dagster_yaml()
    assert documented["storage"]["postgres"]["postgres_url"].startswith("postgresql://")
    documented["storage"]["postgres"]["postgres_url"] = "URL"
    assert documented == tested
    assert set(readme_run_configs()["dask"]["execution"]["config"]["cluster"]) == {"existing"}
