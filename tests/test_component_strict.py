"""The YAML component takes every attribute at its own type and checks every value when the code location
loads: one error naming the field and the file, never a silent coercion or a failure at run time."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from dagster_evals import ConfigError, EvalSuite
from tests.conftest import add_task, qa_rows, write_jsonl
from tests.test_component import _chain, dg_cli, dg_project, load, yaml_attributes

__all__ = ["dg_project"]  # the fixture, used by the dg CLI tests below

DEFS_YAML = r"[^\s`]+/defs\.yaml"


def load_error(**overrides: Any) -> str:
    """The text Dagster shows when the component with these attributes fails to load."""
    sandbox_cm, loaded = load(yaml_attributes(**overrides))
    try:
        with pytest.raises(Exception) as err, loaded:
            pass
        return "\n".join(str(e) for e in _chain(err.value))
    finally:
        sandbox_cm.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"thresholds": {"exact_match": False}}, "thresholds.exact_match", "Input should be a valid number"),
        ({"max_errored_rows": True}, "max_errored_rows", "Input should be a valid integer"),
        ({"blocking": "no"}, "blocking", "Input should be a valid boolean"),
        ({"scorer_timeout_s": True}, "scorer_timeout_s", "Input should be a valid number"),
        ({"row_timeout_s": "5"}, "row_timeout_s", "Input should be a valid number"),
        ({"max_concurrency": 2.5}, "max_concurrency", "Input should be a valid integer"),
        ({"allow_missing_baseline": 1}, "allow_missing_baseline", "Input should be a valid boolean"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_value_of_the_wrong_type_is_one_error_naming_field_and_file(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    text = load_error(**overrides)
    assert "1 validation error" in text
    assert re.search(rf"`attributes\.{re.escape(field)} at {DEFS_YAML}:\d+`\n  {message}", text), text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scorer_timeout_s": math.nan}, "scorer_timeout_s must be a finite number of seconds above 0"),
        ({"scorer_timeout_s": -1}, "scorer_timeout_s must be a finite number of seconds above 0"),
        ({"scorer_timeout_s": 0}, "scorer_timeout_s must be a finite number of seconds above 0"),
        ({"row_timeout_s": math.inf}, "row_timeout_s must be a finite number of seconds above 0"),
        ({"scorers": ["exact_match", "exact_match"]}, "scorers name 'exact_match' twice"),
        ({"task": "os:sep"}, "task 'os:sep' is a str, not a callable"),
        ({"task": "tests.test_component_strict:takes_nothing"}, "task cannot be called as a task"),
        ({"max_concurrency": 1_000_000}, r"max_concurrency must be an integer from 1 to 1000"),
        ({"trial_count": 20_000_000}, r"trial_count must be an integer from 1 to 1000"),
        ({"shards": 20_000}, r"shards must be an integer from 1 to 100"),
        (
            {"thresholds": {"levenshtein": 0.5}, "scorers": ["exact_match", "json_diff"]},
            "thresholds name unknown scorer(s) levenshtein; the suite's scorers are exact_match, json_diff",
        ),
    ],
    ids=lambda v: None if isinstance(v, str) else next(iter(v)),
)
def test_a_bad_value_fails_the_load_naming_file_and_field(overrides: dict[str, Any], message: str) -> None:
    text = load_error(**overrides)
    assert re.search(rf"{DEFS_YAML}: suite 'yaml_suite': {re.escape(message)}", text), text


def takes_nothing() -> str:
    return "x"


def test_integers_are_still_numbers() -> None:
    """Strict types refuse booleans and strings, not a whole number where a float is expected."""
    sandbox_cm, loaded = load(yaml_attributes(thresholds={"exact_match": 1}, scorer_timeout_s=30))
    try:
        with loaded as (component, _):
            assert component.thresholds == {"exact_match": 1.0}
            assert component.scorer_timeout_s == 30.0
    finally:
        sandbox_cm.__exit__(None, None, None)


def test_dg_check_yaml_names_the_file_and_line_of_a_bool_threshold(dg_project: Path) -> None:
    assert dg_cli(dg_project, "scaffold", "defs", "dagster_evals.EvalSuiteComponent", "s").returncode == 0
    path = dg_project / "src" / "proj" / "defs" / "s" / "defs.yaml"
    path.write_text(path.read_text() + "  thresholds: {exact_match: false}\n")
    checked = dg_cli(dg_project, "check", "yaml")
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert f"{path}:" in output, output
    assert "attributes.thresholds.exact_match False is not of type 'number'" in output, output


def test_dg_check_defs_refuses_a_task_that_is_not_callable(dg_project: Path) -> None:
    assert dg_cli(dg_project, "scaffold", "defs", "dagster_evals.EvalSuiteComponent", "s").returncode == 0
    path = dg_project / "src" / "proj" / "defs" / "s" / "defs.yaml"
    path.write_text(path.read_text() + "  task: os:sep\n")
    checked = dg_cli(dg_project, "check", "defs")
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert f"{path}: suite 's': task 'os:sep' is a str, not a callable" in output, output


# -- the same checks on a suite declared in Python ----------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scorer_timeout_s": math.nan}, "scorer_timeout_s must be a finite number of seconds above 0"),
        ({"scorer_timeout_s": 0}, "scorer_timeout_s must be a finite number of seconds above 0"),
        ({"scorer_timeout_s": True}, "scorer_timeout_s must be a finite number of seconds above 0"),
        ({"scorers": ["exact_match", "exact_match"]}, "scorers name 'exact_match' twice"),
        ({"task": "os:sep"}, "task must be a callable taking the row's input"),
        ({"task": takes_nothing}, "task cannot be called as a task (it takes no argument"),
        ({"isolation": "threads"}, "isolation must be 'thread' or 'process'"),
        ({"max_concurrency": 1_000_001}, "max_concurrency must be an integer from 1 to 1000 (or None)"),
        ({"trial_count": 20_000_000}, "trial_count must be an integer from 1 to 1000"),
        ({"shards": 20_000}, "shards must be an integer from 1 to 100"),
    ],
    ids=lambda v: None if isinstance(v, str) else next(iter(v)),
)
def test_python_suites_get_the_same_checks(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", qa_rows(3))
    options: dict[str, Any] = {
        "name": "py",
        "source": source,
        "key_field": "id",
        "task": add_task,
        "scorers": ["exact_match"],
    }
    with pytest.raises(ConfigError) as err:
        EvalSuite(**(options | overrides))
    assert str(err.value).startswith(f"suite 'py': {message}"), str(err.value)
