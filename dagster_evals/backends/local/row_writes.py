"""Result rows and row checkpoints of a local eval, encoded once and written in one transaction.

A local eval stores every row result (`dagster_evals_experiment_rows`) and, when it resumes, a checkpoint of
every freshly scored result (`dagster_evals_row_checkpoints`, see `dagster_evals.engine.checkpoints`). Both
hold the same facts. When the checkpoints live in the backend's own database (the usual case: one database
holds everything), the backend writes them itself: each result's fields are encoded to JSON once, the
checkpoint's JSON is put together from those pieces, and the result row and its checkpoint are inserted in
the same transaction, on the backend's one writer thread. A result and its checkpoint are then always
written together: a killed run has either both or neither.

`SharedCheckpoints` stands in for the `RowCheckpoints` the runner was given: it replays what is stored as
before (`resume`), and only marks which results the runner would have checkpointed (`record`), so the
backend writes those checkpoints with their rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from dagster_evals.backends.local.store import sqlite_path
from dagster_evals.engine.checkpoints import RowCheckpoints, row_checkpoints
from dagster_evals.engine.models import EvalRow, RowResult, canonical_json

_STRING = json.JSONEncoder(ensure_ascii=False)


def same_database(url: URL, other: str) -> bool:
    """Whether `other` names the database of `url`: the same SQLite file, or the same server database.

    In-memory SQLite databases are never the same (each engine has its own).
    """
    theirs = make_url(other)
    if url.get_backend_name() != theirs.get_backend_name():
        return False
    if url.get_backend_name() == "sqlite":
        mine, their_file = sqlite_path(url), sqlite_path(theirs)
        return mine is not None and their_file is not None and _resolved(mine) == _resolved(their_file)
    # Any difference in the query (a socket directory given as `?host=`, options) counts as another
    # database: the checkpoints then write themselves, as they would anyway.
    return (url.host, url.port or 5432, url.database, url.username, dict(url.query)) == (
        theirs.host,
        theirs.port or 5432,
        theirs.database,
        theirs.username,
        dict(theirs.query),
    )


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


class SharedCheckpoints:
    """The runner's checkpoints when the backend writes them with the result rows (see the module docstring).

    Attributes:
        checkpoints: The `RowCheckpoints` of the run (its key, its counters and its replay).
    """

    def __init__(self, checkpoints: RowCheckpoints) -> None:
        self.checkpoints = checkpoints
        self._fresh: RowResult | None = None

    @property
    def key(self) -> str:
        return self.checkpoints.key

    def resume(self, pairs: Iterator[tuple[EvalRow, int]]) -> Iterator[tuple[EvalRow, int] | RowResult]:
        """As `RowCheckpoints.resume`: pairs already checkpointed are replaced by their stored results."""
        return self.checkpoints.resume(pairs)

    def record(self, result: RowResult) -> None:
        """Mark `result` to be checkpointed: the runner passes it to the backend's `on_result` next."""
        self._fresh = result

    def fresh(self, result: RowResult) -> bool:
        """Whether `result` (just passed to `on_result`) is to be checkpointed; clears the mark."""
        fresh = self._fresh is result
        self._fresh = None
        return fresh

    def flush(self) -> None:
        """Nothing to write here: the backend writes the checkpoints with their rows."""

    def written(self, count: int) -> None:
        """Count `count` checkpoints written (`RowCheckpoints.recorded`, as if it had written them)."""
        self.checkpoints.recorded += count


def row_values(experiment_id: str, r: RowResult) -> dict[str, Any]:
    """The stored result row of `r` (every JSON column encoded once)."""
    return {
        "experiment_id": experiment_id,
        "row_id": r.row_id,
        "trial": r.trial,
        "input": canonical_json(r.input),
        "expected": canonical_json(r.expected),
        "output": canonical_json(r.output),
        "scores": canonical_json(r.scores),
        "scorer_errors": canonical_json(r.scorer_errors) if r.scorer_errors else "{}",
        "error": r.error,
        "latency_s": r.latency_s,
        "metadata": canonical_json(r.metadata) if r.metadata else "{}",
        "reasons": canonical_json(r.reasons) if r.reasons else None,
    }


def checkpoint_values(key: str, r: RowResult, row: dict[str, Any], now: str) -> dict[str, Any]:
    """The checkpoint of `r`, its JSON put together from the pieces already encoded for its result row `row`.

    It reads back (`RowResult.model_validate_json`) as the result the row stores.
    """
    error = "null" if r.error is None else _STRING.encode(r.error)
    latency = "null" if r.latency_s is None else canonical_json(r.latency_s)
    usage = canonical_json(r.usage) if r.usage else "{}"
    result = (
        f'{{"error":{error},"expected":{row["expected"]},"input":{row["input"]},"latency_s":{latency},'
        f'"metadata":{row["metadata"]},"output":{row["output"]},"reasons":{row["reasons"] or "{}"},'
        f'"row_id":{_STRING.encode(r.row_id)},"scorer_errors":{row["scorer_errors"]},'
        f'"scores":{row["scores"]},"trial":{int(r.trial)},"usage":{usage}}}'
    )
    return {"checkpoint_key": key, "row_id": r.row_id, "trial": r.trial, "result": result, "created_at": now}


def now() -> str:
    """The `created_at` of checkpoints written now (as `dagster_evals.engine.checkpoints` writes it)."""
    return datetime.now(UTC).isoformat()


ROW_COLUMNS = (
    "experiment_id", "row_id", "trial", "input", "expected", "output", "scores", "scorer_errors", "error",
    "latency_s", "metadata", "reasons",
)  # fmt: skip
CHECKPOINT_COLUMNS = ("checkpoint_key", "row_id", "trial", "result", "created_at")


def _placeholders(dialect: str, columns: tuple[str, ...]) -> str:
    style = "%({})s" if dialect == "postgresql" else ":{}"
    return ", ".join(style.format(name) for name in columns)


def row_insert_sql(dialect: str) -> str:
    """The driver-level INSERT of result rows (`row_values` dicts, as named parameters) that overwrites the
    stored result of the same (row, trial). Sent with `exec_driver_sql`: a batch of rows skips SQLAlchemy's
    per-row parameter processing, which is most of a batch's cost on the writer thread."""
    columns = ", ".join(ROW_COLUMNS)
    values = _placeholders(dialect, ROW_COLUMNS)
    if dialect == "sqlite":
        return f"INSERT OR REPLACE INTO experiment_rows ({columns}) VALUES ({values})"
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in ROW_COLUMNS[3:])
    return (
        f"INSERT INTO experiment_rows ({columns}) VALUES ({values}) "
        f"ON CONFLICT (experiment_id, row_id, trial) DO UPDATE SET {updates}"
    )


def checkpoint_insert_sql(dialect: str) -> str:
    """The driver-level INSERT of checkpoints (`checkpoint_values` dicts) that skips a (row, trial) already
    stored, as `CheckpointStore.insert_or_ignore`."""
    columns = ", ".join(CHECKPOINT_COLUMNS)
    values = _placeholders(dialect, CHECKPOINT_COLUMNS)
    table = row_checkpoints.name
    if dialect == "sqlite":
        return f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({values})"
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (checkpoint_key, row_id, trial) DO NOTHING"


# Rows per multi-row INSERT on SQLite: 80 rows of 12 values stay under 999 bound values, the limit of
# every SQLite version.
SQLITE_ROWS_PER_STATEMENT = 80


def sqlite_multi_row_inserts(
    sql: str, columns: tuple[str, ...], values: list[dict[str, Any]]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """`(statement, parameters)` inserting `values` (dicts of `columns`) with multi-row `VALUES` lists.

    `sql` is a one-row INSERT ending in `VALUES (?, ...)`-shaped placeholders, as `row_insert_sql("sqlite")`
    gives. The sqlite3 driver releases the interpreter lock around each statement it steps, so one
    statement per `SQLITE_ROWS_PER_STATEMENT` rows, rather than one per row, lets the eval's event loop keep
    the lock instead of handing it to the writer thread for every row.
    """
    head = sql[: sql.index(" VALUES (")]
    one = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(values), SQLITE_ROWS_PER_STATEMENT):
        chunk = values[start : start + SQLITE_ROWS_PER_STATEMENT]
        params = tuple(value[name] for value in chunk for name in columns)
        yield f"{head} VALUES {', '.join([one] * len(chunk))}", params
