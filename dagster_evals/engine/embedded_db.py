"""The eval state database: where eval plans, row checkpoints and the judge cache are kept.

One setting names it, per resource: `LocalEvalResource(url=...)` (the same database as the local backend's
datasets and reports) or `state_database_url` on `BraintrustResource` / `KeywordsAIResource`. Unset, it is
`$DAGSTER_EVALS_DATABASE_URL` (any SQLAlchemy URL, e.g. PostgreSQL shared by several pods), else the SQLite
file `$DAGSTER_HOME/dagster_evals.sqlite`, else `./.dagster_evals/local.sqlite`. While an eval step runs,
the step binds its resource's state database (`bind_state_database`), and the judge cache and checkpoint
stores opened without a URL use it.

Several processes may use it at once: SQLite runs in WAL mode with a 60 s busy timeout; PostgreSQL
connections are checked before use (`pool_pre_ping`), and a connection refused or not yet accepted ("the
database system is starting up") is retried with backoff for up to `$DAGSTER_EVALS_DATABASE_RETRY_S` seconds
(default 30; 0 turns retries off) — see `retry_connects` and `retrying`.

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

import contextlib
import contextvars
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool

from dagster_evals.engine.errors import ConfigError

DATABASE_URL_ENV = "DAGSTER_EVALS_DATABASE_URL"
RETRY_ENV = "DAGSTER_EVALS_DATABASE_RETRY_S"
DEFAULT_RETRY_S = 30.0
MAX_RETRY_S = 3600.0
_IN_MEMORY = ("sqlite://", "sqlite:///:memory:")
# SQLSTATEs of a server that is going away or not accepting connections yet (admin/crash shutdown,
# "cannot connect now": starting up, shutting down, in recovery); class 08 is "connection exception".
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_bound: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar(
    "dagster_evals_state_database", default=None
)
# What libpq says (without a SQLSTATE) when a connection cannot be opened or is lost.
_TRANSIENT_MESSAGES = (
    "connection refused",
    "is starting up",
    "is shutting down",
    "in recovery mode",
    "not yet accepting connections",
    "server closed the connection",
    "connection reset",
    "could not receive data",
    "could not send data",
    "terminating connection",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "consuming input failed",
    "the connection is lost",
    "connection is closed",
)
T = TypeVar("T")


# -- which database -------------------------------------------------------------------------------
def default_database_url() -> str:
    """`$DAGSTER_EVALS_DATABASE_URL`, else the SQLite file in `$DAGSTER_HOME`, else in `./.dagster_evals`."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return normalize_url(url, origin=DATABASE_URL_ENV)
    home = os.environ.get("DAGSTER_HOME")
    path = Path(home) / "dagster_evals.sqlite" if home else Path.cwd() / ".dagster_evals" / "local.sqlite"
    return f"sqlite:///{path}"


def database_url() -> str:
    """The state database of the running eval step (`bind_state_database`), else `default_database_url()`."""
    bound = _bound.get()
    return bound[0] if bound is not None else default_database_url()


def judge_cache_allowed() -> bool:
    """False while an eval step runs whose state database other steps could not see (see `eval_state`)."""
    bound = _bound.get()
    return bound is None or bound[1]


def normalize_url(text: str, *, origin: str) -> str:
    """A URL the package can open: `postgresql://`/`postgres://` mean psycopg 3; other schemes are refused.

    Examples:
        >>> normalize_url("postgresql://u@db/evals", origin="url")
        'postgresql+psycopg://u@db/evals'
    """
    try:
        url = make_url(text.strip())
    except ArgumentError:
        raise ConfigError(f"{origin}: {_without_password(text)!r} is not a database URL") from None
    driver = url.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    elif driver in ("sqlite", "sqlite+pysqlite"):
        url = url.set(drivername="sqlite")
    else:
        raise ConfigError(
            f"{origin}: unsupported database URL scheme {driver!r}; use sqlite:///path/file.sqlite or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        )
    return url.render_as_string(hide_password=False)


def redacted_url(url: str) -> str:
    """`url` with its password (if any) shown as `***`."""
    return _without_password(url)


def _without_password(text: str) -> str:
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return text.split("@")[-1]


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///path` URL; None for in-memory SQLite and for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).absolute()


@contextlib.contextmanager
def bind_state_database(url: str | None, *, cache: bool = True) -> Iterator[None]:
    """Within the block (and the threads and tasks it starts), `database_url()` is `url`; with
    `cache=False` the judge cache is not used."""
    if url is None:
        yield
        return
    token = _bound.set((url, cache))
    try:
        yield
    finally:
        _bound.reset(token)


# -- engines --------------------------------------------------------------------------------------
def shared_engine(url: str) -> sa.Engine:
    """An engine for `url` that several threads and processes can share (see the module docstring).

    An in-memory SQLite URL gets one connection shared by every thread, so its tables outlive a connection.
    """
    is_sqlite = url.startswith("sqlite")
    in_memory = url in _IN_MEMORY
    kwargs: dict[str, Any] = {"pool_pre_ping": not is_sqlite}
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if in_memory:
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(url, **kwargs)
    if is_sqlite and not in_memory:

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            # As the local backend's engine: with WAL, a commit survives a killed process without an
            # fsync of its own (only a power loss may undo the last commits; checkpoints are then re-scored).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    if not is_sqlite:
        retry_connects(engine)
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
            retrying(lambda: metadata.create_all(engine, checkfirst=True))
            return
        except DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)


# -- transient connection errors ------------------------------------------------------------------
def retry_window_s() -> float:
    """Seconds a lost or refused connection is retried for: `$DAGSTER_EVALS_DATABASE_RETRY_S` (default 30)."""
    text = os.environ.get(RETRY_ENV, "").strip()
    if not text:
        return DEFAULT_RETRY_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_RETRY_S:
        raise ConfigError(f"{RETRY_ENV} must be a number of seconds from 0 to {MAX_RETRY_S:g}, got {text!r}")
    return value


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a connection that failed or was lost, worth retrying on a new connection.

    Lost connections (SQLAlchemy marks them `connection_invalidated`), a server not accepting connections
    yet or any more (SQLSTATE 57P01-57P03, class 08) and a connection that could not be opened at all (a
    driver error whose message says refused, reset or timed out) are; wrong credentials, a missing
    database, constraint violations and SQL errors are not.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate in _TRANSIENT_SQLSTATES or str(sqlstate).startswith("08")
    message = str(exc).lower()
    return any(phrase in message for phrase in _TRANSIENT_MESSAGES)


def _backoff(attempt: int) -> float:
    return min(0.1 * 2**attempt, 2.0)


def retrying(operation: Callable[[], T], *, window_s: float | None = None) -> T:
    """`operation()`, run again on a new connection after a transient connection error, with backoff, for
    up to `window_s` seconds (default `retry_window_s()`). Only for operations that may safely run twice
    (reads, upserts, inserts that ignore duplicates): a lost connection may have committed the first try."""
    window = retry_window_s() if window_s is None else window_s
    deadline = time.monotonic() + window
    attempt = 0
    while True:
        try:
            return operation()
        except DBAPIError as exc:
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(min(_backoff(attempt), max(0.0, deadline - time.monotonic())))
        attempt += 1


def retry_connects(engine: sa.Engine) -> None:
    """Make `engine` retry opening a connection while the server refuses it or is starting up.

    With `pool_pre_ping`, a pooled connection found dead is replaced by a new one, through this retry: a
    database server that restarts within the retry window costs the step a pause, not a failure.
    """

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        window = retry_window_s()
        deadline = time.monotonic() + window
        attempt = 0
        while True:
            try:
                return dialect.loaded_dbapi.connect(*cargs, **cparams)
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(min(_backoff(attempt), max(0.0, deadline - time.monotonic())))
            attempt += 1
