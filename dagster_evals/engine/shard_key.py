"""Which shard scores a row: a stable function of the row id, computable in Python and in SQL.

The shard of a row is the first 8 bytes of SHA-256(row id), big-endian, modulo the number of shards: the
same in every process and on every machine. The local backend evaluates the same function inside the
database (`shard_filter`), so a shard step reads only its own rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

SQLITE_FUNCTION = "dagster_evals_shard"


def shard_of(row_id: str, shards: int) -> int:
    """The shard (0 … shards-1) that scores `row_id`: the same in every process and on every machine.

    Example:
        >>> shard_of("row-1", 4) == shard_of("row-1", 4)
        True
        >>> sorted({shard_of(f"row-{i}", 3) for i in range(100)})
        [0, 1, 2]
    """
    return int.from_bytes(hashlib.sha256(row_id.encode("utf-8")).digest()[:8], "big") % shards


def register_sqlite_function(dbapi_connection: Any) -> None:
    """Make `dagster_evals_shard(row_id, shards)` (= `shard_of`) callable in SQL on a sqlite3 connection."""
    dbapi_connection.create_function(SQLITE_FUNCTION, 2, shard_of, deterministic=True)


def shard_filter(dialect: str, row_id: Any, index: int, shards: int) -> sa.ColumnElement[bool]:
    """A SQL condition true for the rows of shard `index` of `shards`, equal to `shard_of` row by row.

    On PostgreSQL it is computed by the server (`sha256`, pgcrypto-free, PostgreSQL 11+): with the first 8
    digest bytes as `hi * 2**32 + lo`, the shard is `((hi % n) * (2**32 % n) + lo) % n`, which stays within
    64-bit integers. On SQLite it calls the Python function `register_sqlite_function` adds.
    """
    if dialect == "sqlite":
        return sa.func.dagster_evals_shard(row_id, shards) == index
    digest = sa.func.sha256(sa.func.convert_to(row_id, "UTF8"))

    def word(first: int) -> sa.ColumnElement[Any]:
        total: sa.ColumnElement[Any] | None = None
        for k, weight in zip(range(first, first + 4), (1 << 24, 1 << 16, 1 << 8, 1), strict=True):
            part = sa.cast(sa.func.get_byte(digest, k), sa.BigInteger) * weight
            total = part if total is None else total + part
        assert total is not None
        return total

    hi, lo = word(0), word(4)
    return ((hi % shards) * ((1 << 32) % shards) + lo) % shards == index
