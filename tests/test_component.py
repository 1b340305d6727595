"""`EvalSuiteComponent`: a suite declared in YAML loads through Dagster's component machinery and
materializes like a Python-declared one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from dagster_evals import EvalSuiteComponent, LocalResource
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
            with_resource = dg.Definitions.merge(defs, dg.Definitions(resources={"evals": LocalResource()}))
            job = with_resource.resolve_job_def("yaml_suite_eval_job")
            assert job.partitions_def is not None and job.partitions_def.name == "yaml_versions"
    finally:
        sandbox_cm.__exit__(None, None, None)


def test_yaml_suite_materializes_on_the_local_backend(tmp_path: Path, instance) -> None:
    sandbox_cm, loaded = load(yaml_attributes(), qa_rows(8, wrong={2}))
    try:
        with loaded as (_, defs):
            merged = dg.Definitions.merge(
                defs, dg.Definitions(resources={"evals": LocalResource(path=str(tmp_path / "e.sqlite"))})
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


# -- the real `dg` CLI: scaffold, then check the YAML ------------------------------------------------

PROJECT_TOML = """\
[project]
name = "proj"
version = "0.0.1"
requires-python = ">=3.11"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "proj"
"""

DEFINITIONS_PY = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs():
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


@pytest.fixture
def dg_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "proj" / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PROJECT_TOML)
    (root / "src" / "proj" / "__init__.py").write_text("")
    (root / "src" / "proj" / "defs" / "__init__.py").write_text("")
    (root / "src" / "proj" / "definitions.py").write_text(DEFINITIONS_PY)
    return root


def dg_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [str(bin_dir / "dg"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


def test_dg_lists_the_component_under_its_documented_name(dg_project: Path) -> None:
    # Found through the package's `dagster_dg_cli.registry_modules` entry point, although the class now lives
    # in dagster_evals.components.eval_suite.
    listed = dg_cli(dg_project, "list", "components", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    keys = {item["key"] for item in json.loads(listed.stdout)["items"]}
    assert "dagster_evals.EvalSuiteComponent" in keys


def test_dg_scaffold_writes_a_commented_template_that_passes_dg_check(dg_project: Path) -> None:
    scaffolded = dg_cli(dg_project, "scaffold", "defs", "dagster_evals.EvalSuiteComponent", "support_bot")
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    folder = dg_project / "src" / "proj" / "defs" / "support_bot"
    text = (folder / "defs.yaml").read_text()
    assert "attributes: {}" not in text
    assert "name: support_bot" in text
    assert "# thresholds:" in text and "{{ env.BRAINTRUST_API_KEY }}" in text
    assert (folder / "rows.jsonl").read_text().count("\n") == 2
    checked = dg_cli(dg_project, "check", "yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    loaded = dg_cli(dg_project, "check", "defs")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr


def test_dg_scaffold_declares_the_chosen_backend_with_an_env_var_secret(dg_project: Path) -> None:
    scaffolded = dg_cli(
        dg_project,
        "scaffold",
        "defs",
        "dagster_evals.EvalSuiteComponent",
        "bt_suite",
        "--backend",
        "braintrust",
    )
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    text = (dg_project / "src" / "proj" / "defs" / "bt_suite" / "defs.yaml").read_text()
    assert "    type: braintrust\n" in text
    assert '    config: {api_key: "{{ env.BRAINTRUST_API_KEY }}"}' in text
    checked = dg_cli(dg_project, "check", "yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            "  thresholds: {levenshtein: 0.9}\n",
            "thresholds name unknown scorer(s) levenshtein; the suite's scorers are exact_match",
        ),
        (
            "  thresholds: {levenshtien: 0.9}\n",
            "thresholds name unknown scorer(s) levenshtien; the suite's scorers are exact_match",
        ),
        (
            "  max_regression: {json_diff: 0.1}\n",
            "max_regression names unknown scorer(s) json_diff; the suite's scorers are exact_match",
        ),
    ],
    ids=["builtin-not-in-scorers", "typo", "regression-limit"],
)
def test_dg_check_defs_names_a_limit_on_an_unknown_scorer_and_lists_the_scorers(
    dg_project: Path, edit: str, message: str
) -> None:
    assert dg_cli(dg_project, "scaffold", "defs", "dagster_evals.EvalSuiteComponent", "s").returncode == 0
    path = dg_project / "src" / "proj" / "defs" / "s" / "defs.yaml"
    path.write_text(path.read_text() + edit)
    checked = dg_cli(dg_project, "check", "defs")
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert f"{path}: suite 's': {message}" in output, output
    assert "does not contain items matching" not in output


# -- resource, translation and sensors declared in YAML ---------------------------------------------


def test_yaml_resource_translation_and_fields_from_the_suite(tmp_path: Path, instance) -> None:
    db = tmp_path / "evals.sqlite"
    sandbox_cm, loaded = load(
        yaml_attributes(
            resource={"type": "local", "config": {"path": str(db)}},
            owners=["team:ml"],
            row_tags=["nightly"],
            translation={
                "group_name": "quality_{{ props.role }}",
                "tags": {"backend": "{{ props.backend }}"},
            },
        )
    )
    try:
        with loaded as (_, defs):
            specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
            report = specs["evals/yaml_suite/eval_report"]
            assert report.kinds == {"evals", "local"}
            assert report.group_name == "quality_eval_report"
            assert report.tags["backend"] == "local"
            assert report.owners == ["team:ml"]
            result = defs.resolve_job_def("yaml_suite_eval_job").execute_in_process(instance=instance)
            assert result.success
            assert db.exists()
    finally:
        sandbox_cm.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"pathh": "x"}, "resource of type 'local': unknown field(s) pathh; LocalResource has"),
        ({"batch_size": "many"}, "resource of type 'local': batch_size: Input should be a valid integer"),
    ],
)
def test_yaml_resource_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    sandbox_cm, loaded = load(yaml_attributes(resource={"type": "local", "config": config}))
    try:
        with pytest.raises(Exception) as err, loaded:
            pass
        assert message in "".join(str(e) for e in _chain(err.value))
    finally:
        sandbox_cm.__exit__(None, None, None)


def test_release_sensor_attribute_builds_a_sensor_that_requests_one_run_per_tag(
    tmp_path: Path, instance
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    subprocess.run([*git, "tag", "v1.0.0"], check=True)
    sandbox_cm, loaded = load(
        yaml_attributes(
            partitions="yaml_releases",
            release_sensor={"repo": str(repo), "initial": "all"},
            resource={"type": "local", "config": {"path": str(tmp_path / "e.sqlite")}},
        )
    )
    try:
        with loaded as (_, defs):
            sensor = defs.resolve_sensor_def("yaml_suite_release_sensor")
            result = sensor(dg.build_sensor_context(instance=instance))
            assert isinstance(result, dg.SensorResult)
            assert [r.partition_key for r in result.run_requests or []] == ["v1.0.0"]
            assert result.cursor is not None
            again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
            assert isinstance(again, dg.SkipReason)
    finally:
        sandbox_cm.__exit__(None, None, None)
