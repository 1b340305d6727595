"""`LocalPlatform`: the embedded backend's `EvalPlatform` on SQLite (default) or PostgreSQL (shared).

The work is split by job: `store` (URL, engine, tables, migrations), `datasets` (versioned rows and staged
syncs), `evals` (eval reports), `prompts` (prompt versions). This module puts them together.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_evals.backends.local.evals import LocalEvals
from dagster_evals.backends.local.prompts import LocalPrompts
from dagster_evals.backends.local.store import (
    ENV_DATABASE_URL,
    ENV_DB_PATH,
    default_db_path,
    open_engine,
    redacted,
    resolve_database_url,
    sqlite_path,
)
from dagster_evals.engine.errors import ConfigError

if TYPE_CHECKING:
    from dagster_evals.backends.local.resources import LocalEvalResource

DEFAULT_PROJECT = "default"
DEFAULT_BATCH_SIZE = 500

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PROJECT",
    "ENV_DATABASE_URL",
    "ENV_DB_PATH",
    "LocalEvalResource",
    "LocalPlatform",
    "default_db_path",
]


class LocalPlatform(LocalEvals, LocalPrompts):
    """`EvalPlatform` on a SQL database. Safe to share between threads, processes and (on PostgreSQL) hosts.

    `location` is a SQLite path or any database URL (`sqlite:///…`, `postgresql+psycopg://…`); without
    one, `$DAGSTER_EVALS_DATABASE_URL` decides, else the default SQLite file.

    Examples:
        >>> import tempfile, pathlib
        >>> platform = LocalPlatform(pathlib.Path(tempfile.mkdtemp()) / "evals.sqlite")
        >>> platform.count_rows(platform.ensure_dataset("faq"))
        0
    """

    platform = "local"

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        url: str | None = None,
        project: str = DEFAULT_PROJECT,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if isinstance(location, str) and "://" in location:
            if url:
                raise ConfigError("give the local backend one database URL, not two")
            location, url = None, location
        self.database_url = resolve_database_url(url, location)
        self.url = redacted(self.database_url)
        self.path: Path | None = sqlite_path(self.database_url)
        self.default_project = project
        self.batch_size = batch_size
        self.engine = open_engine(self.database_url)

    def __repr__(self) -> str:
        return f"LocalPlatform(url={self.url!r}, project={self.default_project!r})"

    def close(self) -> None:
        self.engine.dispose()


def __getattr__(name: str) -> object:
    if name == "LocalEvalResource":  # kept importable from here; it lives in resources.py
        # Loaded by name: the resource module builds on this one, so an import statement here would be a
        # cycle (and would load Dagster with the platform).
        return importlib.import_module("dagster_evals.backends.local.resources").LocalEvalResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
