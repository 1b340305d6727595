"""The embedded database's tables are created safely when several processes open a fresh database at once."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from dagster_evals.engine.checkpoints import CheckpointStore
from dagster_evals.engine.checkpoints import metadata as checkpoint_metadata
from dagster_evals.judges.cache import JudgeCache
from dagster_evals.judges.cache import metadata as judge_metadata


@contextmanager
def another_process_creates_first(url: str, metadata: sa.MetaData) -> Iterator[list[str]]:
    """Right before the first CREATE TABLE any engine sends, create every table through another engine.

    This is what a second process opening the same fresh database does between our check and our create.
    """
    interfered: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not interfered and statement.lstrip().upper().startswith("CREATE TABLE"):
            interfered.append(statement.split("(")[0].strip())
            other = sa.create_engine(url)
            metadata.create_all(other)
            other.dispose()

    event.listen(sa.engine.Engine, "before_cursor_execute", before)
    try:
        yield interfered
    finally:
        event.remove(sa.engine.Engine, "before_cursor_execute", before)


@pytest.mark.parametrize(
    ("store", "metadata", "table"),
    [
        (CheckpointStore, checkpoint_metadata, "dagster_evals_row_checkpoints"),
        (JudgeCache, judge_metadata, "dagster_evals_judge_cache"),
    ],
)
def test_a_store_opens_when_another_process_created_its_tables_after_the_check(
    tmp_path: Path, store: Any, metadata: sa.MetaData, table: str
) -> None:
    url = f"sqlite:///{tmp_path / 'evals.sqlite'}"
    with another_process_creates_first(url, metadata) as interfered:
        opened = store(url)
    assert interfered, "the other process's create did not happen between the check and the create"
    assert table in sa.inspect(opened.engine).get_table_names()


def test_without_repeating_the_check_the_same_interleaving_fails(tmp_path: Path) -> None:
    """The interleaving above is real: a bare `create_all` loses to it."""
    url = f"sqlite:///{tmp_path / 'evals.sqlite'}"
    engine = sa.create_engine(url)
    with another_process_creates_first(url, judge_metadata), pytest.raises(OperationalError):
        judge_metadata.create_all(engine, checkfirst=True)


def _open_both(url: str, barrier: Any, errors: Any) -> None:
    barrier.wait()
    try:
        CheckpointStore(url)
        JudgeCache(url)
    except Exception as exc:  # reported to the parent, which fails the test with it
        errors.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_one_fresh_file_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evals.sqlite'}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    errors = ctx.Queue()
    procs = [ctx.Process(target=_open_both, args=(url, barrier, errors)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    assert errors.empty(), errors.get()
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"dagster_evals_judge_cache", "dagster_evals_row_checkpoints"} <= tables
