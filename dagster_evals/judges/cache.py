"""The judge cache: identical (scorer, model, judge prompt, arguments) → the stored score.

One table, `dagster_evals_judge_cache`, in the eval state database (see `dagster_evals.engine.embedded_db`): the
database named on the eval step's resource, else `$DAGSTER_EVALS_DATABASE_URL`, else the SQLite file
`$DAGSTER_HOME/dagster_evals.sqlite`, else `./.dagster_evals/local.sqlite`. Several processes may read and
write it at once: rows are only ever inserted (a key's score never changes), a duplicate insert is
ignored, and SQLite runs in WAL mode with a busy timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dagster_evals.engine.embedded_db import (
    DATABASE_URL_ENV,
    create_tables,
    database_url,
    redacted_url,
    retrying,
    shared_engine,
)

__all__ = ["DATABASE_URL_ENV", "JudgeCache", "cache_for", "cache_key", "database_url"]

metadata = sa.MetaData()
judge_cache = sa.Table(
    "dagster_evals_judge_cache",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("scorer", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.String(40), nullable=False),
)


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything that determines a judge's answer."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JudgeCache:
    """Stored judge scores in one SQLAlchemy table."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.engine = shared_engine(self.url)
        create_tables(self.engine, metadata)

    def __repr__(self) -> str:
        return f"JudgeCache(url={redacted_url(self.url)!r})"

    def get(self, key: str) -> tuple[float | None, dict[str, Any]] | None:
        def lookup() -> Any:
            with self.engine.connect() as conn:
                return conn.execute(
                    sa.select(judge_cache.c.score, judge_cache.c.details).where(judge_cache.c.key == key)
                ).first()

        row = retrying(lookup)
        if row is None:
            return None
        return row.score, json.loads(row.details or "{}")

    def put(self, key: str, scorer: str, model: str, score: float | None, details: dict[str, Any]) -> None:
        values = {
            "key": key,
            "scorer": scorer,
            "model": model,
            "score": score,
            "details": json.dumps(details, default=str),
            "created_at": datetime.now(UTC).isoformat(),
        }

        def insert() -> None:
            with self.engine.begin() as conn:
                conn.execute(judge_cache.insert().values(**values))

        with contextlib.suppress(IntegrityError):  # another process stored the same key first: same score
            retrying(insert)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(judge_cache)).scalar_one())

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(judge_cache.delete())


_caches: dict[str, JudgeCache] = {}
_lock = threading.Lock()


def cache_for(url: str | None = None) -> JudgeCache:
    """The process-wide `JudgeCache` of `url` (default: `database_url()`)."""
    resolved = url or database_url()
    with _lock:
        if resolved not in _caches:
            _caches[resolved] = JudgeCache(resolved)
        return _caches[resolved]
