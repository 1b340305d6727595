"""The embedded database that judge scores, eval plans and row checkpoints are kept in.

Its URL is `$DAGSTER_EVALS_DATABASE_URL` (any SQLAlchemy URL, e.g. PostgreSQL shared by several pods), else
the SQLite file `$DAGSTER_HOME/dagster_evals.sqlite`, else `./.dagster_evals/local.sqlite`. Several
processes may use it at once: SQLite runs in WAL mode with a 60 s busy timeout, PostgreSQL connections are
checked before use.

Example:
    >>> engine = shared_engine("sqlite://")
    >>> engine.dialect.name
    'sqlite'
    >>> metadata = sa.MetaData()
    >>> _ = sa.Table("example", metadata, sa.Column("id", sa.Integer, primary_key=True))
    >>> create_tables(engine, metadata)
    >>> sa.inspect(engine).get_table_names()
    ['example']
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

DATABASE_URL_ENV = "DAGSTER_EVALS_DATABASE_URL"
_IN_MEMORY = ("sqlite://", "sqlite:///:memory:")


def database_url() -> str:
    """The embedded database's SQLAlchemy URL (see the module docstring)."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    home = os.environ.get("DAGSTER_HOME")
    path = Path(home) / "dagster_evals.sqlite" if home else Path.cwd() / ".dagster_evals" / "local.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def shared_engine(url: str) -> sa.Engine:
    """An engine for `url` that several threads and processes can share (see the module docstring).

    An in-memory SQLite URL gets one connection shared by every thread, so its tables outlive a connection.
    """
    is_sqlite = url.startswith("sqlite")
    in_memory = url in _IN_MEMORY
    kwargs: dict[str, Any] = {"pool_pre_ping": not is_sqlite}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(url, **kwargs)
    if is_sqlite and not in_memory:

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

    return engine


def create_tables(engine: sa.Engine, metadata: sa.MetaData, attempts: int = 5) -> None:
    """Create `metadata`'s missing tables, tolerating another process creating them at the same moment.

    `create_all(checkfirst=True)` checks and then creates: two processes opening a fresh database at once
    (two jobs on one `DAGSTER_HOME`, two pods on one PostgreSQL) can both see a table missing, and the second
    `CREATE TABLE` then fails ("already exists" on SQLite, a unique violation on PostgreSQL's catalog). The
    check is simply repeated, and finds the other process's tables. A database error that persists is raised.
    """
    for attempt in range(1, attempts + 1):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
