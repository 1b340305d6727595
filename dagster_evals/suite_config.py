"""Validation of every `EvalSuite` field when the definitions load, with one clear error per bad field.

A bad value (a NaN regression limit, a zero row timeout, a misspelt baseline mode...) is reported as a
`ConfigError` naming the suite and the field when the code location loads, never at run time.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from dagster_evals.baselines import BASELINE_MODES
from dagster_evals.checks import validate_thresholds
from dagster_evals.engine.errors import ConfigError
from dagster_evals.engine.limits import MAX_CONCURRENCY_LIMIT, MAX_TRIAL_COUNT
from dagster_evals.engine.timeouts import AUTO

if TYPE_CHECKING:
    from dagster_evals.suite import EvalSuite

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_GROUP = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fail(suite: str, field: str, message: str, value: Any) -> ConfigError:
    return ConfigError(f"suite {suite!r}: {field} {message}, got {value!r}")


def _check_regression(name: str, value: Any) -> None:
    field = "max_regression"
    if value is None:
        return
    limits = value.items() if isinstance(value, Mapping) else [(None, value)]
    for scorer, limit in limits:
        where = f"{field}[{scorer!r}]" if scorer is not None else field
        if not _is_number(limit) or limit < 0:
            raise _fail(
                name,
                where,
                "must be a finite number of at least 0 (the largest allowed drop of a mean)",
                limit,
            )


def _check_baseline(name: str, value: Any) -> None:
    if value is None or value in BASELINE_MODES:
        return
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise _fail(
            name, "baseline", f"must be one of {', '.join(BASELINE_MODES)}, a report id, or None", value
        )
    normalized = value.lower().replace("-", "_").replace(" ", "_")
    close = difflib.get_close_matches(normalized, BASELINE_MODES, n=1, cutoff=0.8)
    if normalized in BASELINE_MODES or close:
        raise _fail(
            name,
            "baseline",
            f"is not a baseline mode (did you mean {(close or [normalized])[0]!r}? modes: "
            f"{', '.join(BASELINE_MODES)}; any other string is taken as a pinned report id)",
            value,
        )


def _check_optional_str(name: str, field: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _fail(name, field, "must be a non-empty string or None", value)


def _check_task(name: str, task: Any) -> None:
    """A task is None, a `PlatformFunction`, or a callable taking the row's input (or row fields by name)."""
    from dagster_evals.engine.models import PlatformFunction
    from dagster_evals.engine.task_call import task_call_problem

    if task is None or isinstance(task, PlatformFunction):
        return
    if not callable(task):
        raise _fail(
            name,
            "task",
            "must be a callable taking the row's input (or a PlatformFunction, or None); "
            f"this is a {type(task).__name__}",
            task,
        )
    problem = task_call_problem(task)
    if problem is not None:
        raise _fail(name, "task", f"cannot be called as a task ({problem})", task)


def check_scorer_names(name: str, names: Sequence[str]) -> None:
    """Every scorer of a suite has its own name: scores, thresholds and checks are keyed by it."""
    seen: set[str] = set()
    for scorer in names:
        if scorer in seen:
            raise ConfigError(
                f"suite {name!r}: scorers name {scorer!r} twice; each scorer needs its own name (scores, "
                "thresholds and checks are keyed by it): drop the repeat, or give a custom scorer another "
                "name"
            )
        seen.add(scorer)


def validate_suite(suite: EvalSuite) -> None:
    """Raise a `ConfigError` naming the suite and the field for the first invalid field of `suite`."""
    name = suite.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"suite name {name!r} must be letters, digits, '_' or '-'")
    if suite.source is None or (isinstance(suite.source, str) and not suite.source.strip()):
        raise _fail(
            name, "source", "must be a file path, a RowSource or a callable returning rows", suite.source
        )
    if isinstance(suite.scorers, str | bytes) or not isinstance(suite.scorers, Sequence):
        raise _fail(
            name, "scorers", "must be a list of scorer names, callables or PlatformFunctions", suite.scorers
        )
    if not suite.scorers:
        raise ConfigError(f"suite {name!r} needs at least one scorer")
    for field in ("key_field", "dataset_name", "project", "description", "group_name"):
        _check_optional_str(name, field, getattr(suite, field))
    if not _is_int(suite.trial_count) or not 1 <= suite.trial_count <= MAX_TRIAL_COUNT:
        raise _fail(name, "trial_count", f"must be an integer from 1 to {MAX_TRIAL_COUNT}", suite.trial_count)
    if suite.max_concurrency is not None and (
        not _is_int(suite.max_concurrency) or not 1 <= suite.max_concurrency <= MAX_CONCURRENCY_LIMIT
    ):
        raise _fail(
            name,
            "max_concurrency",
            f"must be an integer from 1 to {MAX_CONCURRENCY_LIMIT} (or None)",
            suite.max_concurrency,
        )
    if suite.row_timeout_s is not None and (not _is_number(suite.row_timeout_s) or suite.row_timeout_s <= 0):
        raise _fail(
            name, "row_timeout_s", "must be a finite number of seconds above 0 (or None)", suite.row_timeout_s
        )
    scorer_timeout = suite.scorer_timeout_s
    if scorer_timeout not in (None, AUTO) and (not _is_number(scorer_timeout) or scorer_timeout <= 0):
        raise _fail(
            name,
            "scorer_timeout_s",
            f"must be a finite number of seconds above 0, {AUTO!r} or None",
            scorer_timeout,
        )
    if suite.isolation not in ("thread", "process"):
        raise _fail(name, "isolation", "must be 'thread' or 'process'", suite.isolation)
    _check_task(name, suite.task)
    validate_thresholds(suite.thresholds, name)
    _check_regression(name, suite.max_regression)
    if not _is_int(suite.max_errored_rows) or suite.max_errored_rows < 0:
        raise _fail(name, "max_errored_rows", "must be an integer of 0 or more", suite.max_errored_rows)
    for field in ("blocking", "allow_missing_baseline"):
        if not isinstance(getattr(suite, field), bool):
            raise _fail(name, field, "must be True or False", getattr(suite, field))
    _check_baseline(name, suite.baseline)
    if not isinstance(suite.metadata, Mapping):
        raise _fail(name, "metadata", "must be a mapping", suite.metadata)
    for field_name in ("row_tags", "tags"):
        value = getattr(suite, field_name, ())
        if isinstance(value, str) or not all(isinstance(t, str) and t for t in value):
            raise _fail(name, field_name, "must be a list of non-empty strings", value)
    if not isinstance(suite.resource_key, str) or not _IDENTIFIER.match(suite.resource_key):
        raise _fail(name, "resource_key", "must be a Python identifier naming a resource", suite.resource_key)
    prefix = suite.key_prefix
    if prefix is not None and (
        isinstance(prefix, str)
        or not isinstance(prefix, Sequence)
        or not prefix
        or not all(isinstance(p, str) and _KEY_PART.match(p) for p in prefix)
    ):
        raise _fail(
            name,
            "key_prefix",
            "must be a non-empty list of key parts (letters, digits, '_', '-', '.')",
            prefix,
        )
    if suite.group_name is not None and not _GROUP.match(suite.group_name):
        raise _fail(
            name, "group_name", "must be letters, digits and '_' (segments joined by '.')", suite.group_name
        )
    if suite.partitions_def is not None and not isinstance(
        suite.partitions_def, dg.DynamicPartitionsDefinition
    ):
        raise ConfigError(f"suite {name!r}: partitions_def must be a dg.DynamicPartitionsDefinition")
    if suite.git_repo is not None and not isinstance(suite.git_repo, str | Path):
        raise _fail(name, "git_repo", "must be a path to a git checkout or None", suite.git_repo)
