"""`EvalSuiteComponent`: a suite declared in YAML loads through Dagster's component machinery and
materializes like a Python-declared one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from dagster_evals import EvalSuiteComponent, LocalEvalResource
from tests.conftest import qa_rows, write_jsonl


def yaml_attributes(**overrides: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "name": "yaml_suite",
        "source": "rows.jsonl",
        "key_field": "id",
        "task": "tests.conftest:add_task",
        "scorers": ["exact_match", "levenshtein"],
        "thresholds": {"exact_match": 0.9},
        "max_regression": 0.1,
    }
    attributes.update(overrides)
    return attributes


def load(attributes: dict[str, Any], rows: list[dict[str, Any]] | None = None):
    sandbox_cm = create_defs_folder_sandbox()
    sandbox = sandbox_cm.__enter__()
    path = sandbox.scaffold_component(
        component_cls=EvalSuiteComponent,
        defs_yaml_contents={"type": "dagster_evals.EvalSuiteComponent", "attributes": attributes},
    )
    write_jsonl(Path(path) / "rows.jsonl", rows if rows is not None else qa_rows(8))
    return sandbox_cm, sandbox.load_component_and_build_defs(defs_path=path)


def test_yaml_suite_builds_assets_checks_job_sensor_and_schedule() -> None:
    sandbox_cm, loaded = load(
        yaml_attributes(partitions="yaml_versions", prompt_sensor={"prompt_slugs": ["adder"]}, schedule={})
    )
    try:
        with loaded as (component, defs):
            assert isinstance(component, EvalSuiteComponent)
            keys = {k.to_user_string() for a in defs.assets or [] for k in a.keys}
            assert keys == {
                "evals/yaml_suite/dataset",
                "evals/yaml_suite/dataset_snapshot",
                "evals/yaml_suite/eval_report",
            }
            checks = {k.name for a in defs.assets or [] for k in a.check_keys}
            assert checks == {"threshold_exact_match", "no_regression", "completeness"}
            assert [s.name for s in defs.sensors] == ["yaml_suite_prompt_version_sensor"]
            assert [s.name for s in defs.schedules] == ["yaml_suite_nightly"]
            with_resource = dg.Definitions.merge(
                defs, dg.Definitions(resources={"evals": LocalEvalResource()})
            )
            job = with_resource.resolve_job_def("yaml_suite_eval_job")
            assert job.partitions_def is not None and job.partitions_def.name == "yaml_versions"
    finally:
        sandbox_cm.__exit__(None, None, None)


def test_yaml_suite_materializes_on_the_local_backend(tmp_path: Path, instance) -> None:
    sandbox_cm, loaded = load(yaml_attributes(), qa_rows(8, wrong={2}))
    try:
        with loaded as (_, defs):
            merged = dg.Definitions.merge(
                defs, dg.Definitions(resources={"evals": LocalEvalResource(path=str(tmp_path / "e.sqlite"))})
            )
            result = merged.resolve_job_def("yaml_suite_eval_job").execute_in_process(
                instance=instance, raise_on_error=False
            )
            checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            assert checks == {"threshold_exact_match": False, "no_regression": True, "completeness": True}
            report = next(
                e.materialization.metadata
                for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.path[-1] == "eval_report"
            )
            assert report["score/exact_match"].value == pytest.approx(7 / 8)
    finally:
        sandbox_cm.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task": "tests.conftest"}, "must look like 'package.module:attribute'"),
        ({"task": "no_such_module_xyz:run"}, "cannot import module 'no_such_module_xyz'"),
        ({"task": "tests.conftest:missing"}, "has no attribute 'missing'"),
        ({"scorers": ["bleu"]}, "unknown scorer 'bleu'; known scorers:"),
        ({"thresholds": {"accuracy": 0.5}}, "thresholds name unknown scorer(s) accuracy"),
    ],
)
def test_bad_yaml_names_what_to_fix(overrides: dict[str, Any], message: str) -> None:
    sandbox_cm, loaded = load(yaml_attributes(**overrides))
    try:
        with pytest.raises(Exception) as err, loaded:
            pass
        assert message in "".join(str(e) for e in _chain(err.value))
    finally:
        sandbox_cm.__exit__(None, None, None)


def _chain(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found
