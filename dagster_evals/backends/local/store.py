"""Where the embedded backend keeps its data: the database URL, the engine, the tables and their migrations.

One setting chooses the database: the resource's `url`, else `$DAGSTER_EVALS_DATABASE_URL`, else (deprecated)
the SQLite path in `$DAGSTER_EVALS_LOCAL_DB`, else `$DAGSTER_HOME/dagster_evals.sqlite`, else
`./.dagster_evals/local.sqlite`. SQLite (`sqlite:///path`) needs no setup and serves one host; PostgreSQL
(`postgresql+psycopg://user:password@host/db`, or plain `postgresql://`) is shared by every process and pod.

The schema is versioned by the Alembic migrations shipped in `dagster_evals/backends/local/migrations`. They
run when a database is first opened, serialized between processes (an advisory lock on PostgreSQL, a
`BEGIN IMMEDIATE` write lock on SQLite), so any number of processes may open a fresh database at once.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from dagster_evals.engine.embedded_db import retry_connects, retrying
from dagster_evals.engine.errors import ConfigError

ENV_DATABASE_URL = "DAGSTER_EVALS_DATABASE_URL"
ENV_DB_PATH = "DAGSTER_EVALS_LOCAL_DB"  # deprecated: a SQLite path; use DAGSTER_EVALS_DATABASE_URL
SUPPORTED = "sqlite:///path/to/file.sqlite or postgresql+psycopg://user:password@host:5432/dbname"
VERSION_TABLE = "dagster_evals_schema_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK_KEY = 0x6461_6773_7465_7276  # advisory lock id serializing migrations on PostgreSQL ("dagsterv")
WRITE = "dagster_evals_write"  # execution option: this transaction writes (BEGIN IMMEDIATE on SQLite)

metadata = sa.MetaData()

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.UniqueConstraint("project", "name"),
)
dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("dataset_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("rows_written", sa.Integer, nullable=False),
    sa.Column("rows_removed", sa.Integer, nullable=False),
)
dataset_rows = sa.Table(
    "dataset_rows",
    metadata,
    sa.Column("dataset_id", sa.Text, primary_key=True),
    sa.Column("row_id", sa.Text, primary_key=True),
    sa.Column("version_added", sa.Integer, primary_key=True),
    sa.Column("version_removed", sa.Integer),
    sa.Column("content_hash", sa.Text, nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("expected", sa.Text),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Index("dataset_rows_live", "dataset_id", "version_removed", "row_id"),
)
# A sync writes here first; publishing moves a stage into dataset_rows as one new version in one transaction.
dataset_stages = sa.Table(
    "dataset_stages",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("dataset_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("owner", sa.Text),  # the syncing process (see leases.py), and its last sign of life
    sa.Column("heartbeat_at", sa.Text),
)
staged_rows = sa.Table(
    "staged_rows",
    metadata,
    sa.Column("stage_id", sa.Text, primary_key=True),
    sa.Column("row_id", sa.Text, primary_key=True),
    sa.Column("removed", sa.Boolean, nullable=False),
    sa.Column("content_hash", sa.Text),
    sa.Column("input", sa.Text),
    sa.Column("expected", sa.Text),
    sa.Column("metadata", sa.Text),
    sa.Column("tags", sa.Text),
)
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("dataset_id", sa.Text),
    sa.Column("dataset_version", sa.Text),
    sa.Column("base_experiment_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("report", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("owner", sa.Text),  # the process running the eval (see leases.py), and its last sign of life
    sa.Column("heartbeat_at", sa.Text),
    sa.Column("failure", sa.Text),  # why a report is `failed` (e.g. its run crashed)
)
experiment_rows = sa.Table(
    "experiment_rows",
    metadata,
    sa.Column("experiment_id", sa.Text, primary_key=True),
    sa.Column("row_id", sa.Text, primary_key=True),
    sa.Column("trial", sa.Integer, primary_key=True),
    sa.Column("input", sa.Text),
    sa.Column("expected", sa.Text),
    sa.Column("output", sa.Text),
    sa.Column("scores", sa.Text, nullable=False),
    sa.Column("scorer_errors", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("latency_s", sa.Float),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("reasons", sa.Text),  # {scorer: reason} (revision 0004); NULL on older rows
)
prompts = sa.Table(
    "prompts",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("slug", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.UniqueConstraint("project", "slug"),
)
prompt_versions = sa.Table(
    "prompt_versions",
    metadata,
    sa.Column("prompt_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
)


# -- which database -------------------------------------------------------------------------------
def default_db_path() -> Path:
    """The default SQLite file: `$DAGSTER_HOME/dagster_evals.sqlite`, else `./.dagster_evals/local.sqlite`.

    (`$DAGSTER_EVALS_LOCAL_DB`, deprecated, still comes first.)
    """
    if os.environ.get(ENV_DB_PATH):
        return Path(os.environ[ENV_DB_PATH])
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]) / "dagster_evals.sqlite"
    return Path.cwd() / ".dagster_evals" / "local.sqlite"


def parse_database_url(text: str, *, origin: str = "url") -> URL:
    """A supported SQLAlchemy URL from `text`, or a `ConfigError` naming `origin` (never a file named after it).

    `postgresql://` and `postgres://` mean `postgresql+psycopg://` (psycopg 3 is the driver shipped).

    Examples:
        >>> parse_database_url("postgresql://u@db/evals").drivername
        'postgresql+psycopg'
    """
    try:
        url = make_url(text.strip())
    except ArgumentError:
        raise ConfigError(
            f"{origin}: {_redact_text(text)!r} is not a database URL; use {SUPPORTED}"
        ) from None
    driver = url.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if driver in ("sqlite", "sqlite+pysqlite"):
        return url.set(drivername="sqlite")
    raise ConfigError(
        f"{origin}: unsupported database URL scheme {driver!r} in {_redact(url)!r}; use {SUPPORTED}"
    )


def sqlite_url(path: str | Path) -> URL:
    return URL.create("sqlite", database=str(path))


def resolve_database_url(url: str | None = None, path: str | Path | None = None) -> URL:
    """The database to use: `url` > `path` > `$DAGSTER_EVALS_DATABASE_URL` > `$DAGSTER_EVALS_LOCAL_DB` > default.

    Examples:
        >>> resolve_database_url("sqlite:///evals.sqlite").database
        'evals.sqlite'
    """
    if url and path:
        raise ConfigError("set either url or path for the local backend, not both (path is a SQLite file)")
    if url:
        return parse_database_url(url, origin="url")
    if path:
        return sqlite_url(path)
    if os.environ.get(ENV_DATABASE_URL, "").strip():
        return parse_database_url(os.environ[ENV_DATABASE_URL], origin=ENV_DATABASE_URL)
    legacy = os.environ.get(ENV_DB_PATH, "").strip()
    if legacy:
        warnings.warn(
            f"{ENV_DB_PATH} is deprecated: set {ENV_DATABASE_URL}=sqlite:///{legacy} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        if "://" in legacy:
            return parse_database_url(legacy, origin=ENV_DB_PATH)
        return sqlite_url(legacy)
    return sqlite_url(default_db_path())


def _redact(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _redact_text(text: str) -> str:
    try:
        return _redact(make_url(text))
    except ArgumentError:
        return text.split("@")[-1] if "@" in text else text


def redacted(url: URL) -> str:
    """The URL for messages: the password (if any) shows as `***`."""
    return _redact(url)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def in_memory(url: URL) -> bool:
    """Whether `url` is an in-memory SQLite database (seen by this process only)."""
    return is_sqlite(url) and sqlite_path(url) is None


def sqlite_path(url: URL) -> Path | None:
    """The SQLite file of a `sqlite:///…` URL (None for in-memory databases and other engines)."""
    if not is_sqlite(url) or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


# -- the engine -----------------------------------------------------------------------------------
def create_engine(url: URL) -> Engine:
    """An engine with the same transaction behaviour on both databases.

    SQLite: autocommit off in the driver and explicit `BEGIN` (`BEGIN IMMEDIATE` for writes, so concurrent
    writers queue on the busy timeout instead of failing on lock upgrades), WAL journal, 60 s busy timeout.
    """
    if not is_sqlite(url):
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8)
        retry_connects(engine)  # a server restarting (or refusing for a moment) is waited for, bounded
        return engine
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": 60, "check_same_thread": False},
        poolclass=sa.pool.StaticPool if path is None else sa.pool.QueuePool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        dbapi_conn.execute("PRAGMA busy_timeout=60000")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine


def enable_wal(engine: Engine, *, timeout_s: float = 60.0) -> None:
    """Switch a SQLite file to WAL (persistent; a no-op once done).

    Changing the journal mode needs the file to itself, and SQLite answers "database is locked" at once
    (without waiting on the busy timeout) while another process opens the same fresh file; retry until the
    other process is done, up to `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        raw = engine.raw_connection()
        try:
            mode = raw.driver_connection.execute("PRAGMA journal_mode=WAL").fetchone()  # type: ignore[union-attr]
            # An in-memory database (`sqlite://`) answers "memory": no file to journal, nothing to wait for.
            if mode and str(mode[0]).lower() in ("wal", "memory"):
                return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        finally:
            raw.close()
        if time.monotonic() > deadline:
            return  # the file system refuses WAL (e.g. a network share): stay on the rollback journal
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: committed on success, rolled back on any error."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            yield conn


def insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT for the connection's dialect, with `on_conflict_do_nothing` / `on_conflict_do_update`."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


# -- migrations -----------------------------------------------------------------------------------
def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


@functools.cache
def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, once, whichever process gets there first.

    Every process that finds the schema behind takes the migration lock (an advisory transaction lock on
    PostgreSQL, the database write lock on SQLite), re-reads the revision and upgrades only if still behind;
    the DDL runs in that same transaction.
    """
    from alembic import command

    head = head_revision()
    with engine.connect() as conn:
        if current_revision(conn) == head:
            return
    if is_sqlite(engine.url):
        enable_wal(engine)
    with write_transaction(engine) as conn:
        if not is_sqlite(engine.url):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        if current_revision(conn) == head:
            return
        command.upgrade(_alembic_config(conn), "head")


def open_engine(url: URL) -> Engine:
    """An engine on `url` with the schema migrated; a clear `ConfigError` when the database is unreachable."""
    engine = create_engine(url)
    try:
        retrying(lambda: migrate(engine))
    except DBAPIError as exc:  # unreachable server, bad credentials, a file that is not SQLite…
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise ConfigError(f"cannot open the local backend's database {redacted(url)}: {reason}") from None
    return engine
