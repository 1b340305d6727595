"""Row ids and content hashes kept on disk, so syncs and digests of any size hold bounded memory.

A dataset sync needs every source id (to find rows gone from the source) and the platform's id → content
hash map (to find new and changed rows); a digest needs every (id, hash) pair in sorted order. For a few
thousand rows these fit in memory; for a million they would take hundreds of MB. Both live here in a
temporary SQLite file (deleted on close), written and read in batches, so memory stays flat in the row
count: SQLite keeps only its page cache in memory and sorts on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from types import TracebackType

# Pairs sorted in memory before the digest spills them to disk (~25 MB of Python objects at this size).
IN_MEMORY_PAIRS = 50_000
INSERT_BATCH = 5_000
FETCH_BATCH = 1_000
CACHE_KIB = 16 * 1024  # SQLite page cache of one index


def printable(text: str) -> str:
    """`text` as valid UTF-8: bytes a file name held that are not UTF-8 (decoded by Python as lone
    surrogates, e.g. `os.listdir` on Linux) are shown as `\\xff` escapes.

    Examples:
        >>> printable(os.fsdecode(b"rows-\\xff.jsonl"))
        'rows-\\\\xff.jsonl'
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode(
            "utf-8", "surrogateescape" if _escaped_bytes_only(text) else "backslashreplace"
        ).decode("utf-8", "backslashreplace")
    return text


def _escaped_bytes_only(text: str) -> bool:
    """Whether every surrogate in `text` stands for one undecodable byte (U+DC80..U+DCFF)."""
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


class SpillFile:
    """A temporary SQLite database for one operation; the file is removed on `close()`."""

    def __init__(self) -> None:
        handle, self.path = tempfile.mkstemp(prefix="dagster-evals-index-", suffix=".sqlite")
        os.close(handle)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "journal_mode=OFF",
            "synchronous=OFF",
            f"cache_size=-{CACHE_KIB}",
            "temp_store=FILE",
            "locking_mode=EXCLUSIVE",
        ):
            self.conn.execute(f"PRAGMA {pragma}")

    def close(self) -> None:
        self.conn.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def __enter__(self) -> SpillFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def fetch(self, sql: str, params: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
        """Rows of a query, fetched in batches."""
        cursor = self.conn.execute(sql, params)
        try:
            while batch := cursor.fetchmany(FETCH_BATCH):
                yield from batch
        finally:
            cursor.close()


class SortedPairs:
    """(id, hash) pairs in any order in, the same pairs sorted out: in memory up to `IN_MEMORY_PAIRS`,
    then sorted on disk. Use as a context manager (or `close()`) to remove the spill file."""

    def __init__(self, in_memory: int = IN_MEMORY_PAIRS) -> None:
        self.in_memory = in_memory
        self.buffer: list[tuple[str, str]] = []
        self.spill: SpillFile | None = None
        self.count = 0

    def add(self, row_id: str, row_hash: str) -> None:
        self.buffer.append((row_id, row_hash))
        self.count += 1
        if len(self.buffer) >= self.in_memory:
            self._flush()

    def _flush(self) -> None:
        if self.spill is None:
            self.spill = SpillFile()
            self.spill.conn.execute("CREATE TABLE pairs (id TEXT NOT NULL, hash TEXT NOT NULL)")
        conn = self.spill.conn
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO pairs VALUES (?, ?)", self.buffer)
        conn.execute("COMMIT")
        self.buffer = []

    def sorted(self) -> Iterator[tuple[str, str]]:
        """Every pair added, in Python's order of `(id, hash)` tuples.

        SQLite compares text with memcmp over UTF-8, which orders strings by code point, as Python does.
        """
        if self.spill is None:
            self.buffer.sort()
            yield from self.buffer
            return
        if self.buffer:
            self._flush()
        for row_id, row_hash in self.spill.fetch("SELECT id, hash FROM pairs ORDER BY id, hash"):
            yield str(row_id), str(row_hash)

    def digest(self) -> tuple[int, str]:
        """Row count and sha256 over the sorted `id:hash` lines."""
        digest = hashlib.sha256()
        for row_id, row_hash in self.sorted():
            digest.update(f"{row_id}:{row_hash}\n".encode())
        return self.count, digest.hexdigest()

    def close(self) -> None:
        self.buffer = []
        if self.spill is not None:
            self.spill.close()
            self.spill = None

    def __enter__(self) -> SortedPairs:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def pairs_digest(pairs: Iterable[tuple[str, str]], *, in_memory: int = IN_MEMORY_PAIRS) -> tuple[int, str]:
    """Row count and order-independent digest of (id, content hash) pairs, in bounded memory.

    The digest is sha256 over the `id:hash` lines sorted by (id, hash): the same value whatever the order
    the rows arrive in, and the same value dagster-evals has always recorded for a snapshot.

    Examples:
        >>> pairs_digest([("b", "2"), ("a", "1")]) == pairs_digest([("a", "1"), ("b", "2")])
        True
    """
    with SortedPairs(in_memory) as sorter:
        for row_id, row_hash in pairs:
            sorter.add(row_id, row_hash)
        return sorter.digest()


class SyncIndex(SpillFile):
    """The two id → hash maps a sync diffs: the source's (with where each row was read) and the platform's.

    `action` marks each source row once both are loaded: `a` (new), `c` (changed, or held more than once
    on the platform), NULL (unchanged).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conn.executescript(
            """
            CREATE TABLE source (
                ord INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, hash TEXT NOT NULL,
                place TEXT NOT NULL, action TEXT
            );
            CREATE TABLE present (
                id TEXT PRIMARY KEY, hash TEXT NOT NULL, repeated INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;
            CREATE TABLE duplicate (id TEXT PRIMARY KEY) WITHOUT ROWID;
            """
        )
        self.source_rows = 0
        self.planned = False

    def add_source(self, rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """Record (id, hash, place) rows in read order; returns `(id, first place, this place)` for each
        row whose id was already recorded. Places are stored (and returned) as `printable` text."""
        rows = [(row_id, row_hash, printable(place)) for row_id, row_hash, place in rows]
        conn = self.conn
        conn.execute("BEGIN")
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO source (ord, id, hash, place) VALUES (?, ?, ?, ?)",
            [(self.source_rows + i, *row) for i, row in enumerate(rows)],
        )
        repeats: list[tuple[str, str, str]] = []
        if conn.total_changes - before != len(rows):
            for row_id, _, place in rows:
                first = conn.execute("SELECT place FROM source WHERE id = ?", (row_id,)).fetchone()[0]
                if first != place:
                    repeats.append((row_id, first, place))
                    conn.execute("INSERT OR IGNORE INTO duplicate VALUES (?)", (row_id,))
        conn.execute("COMMIT")
        self.source_rows += len(rows)
        return repeats

    def duplicate_ids(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM duplicate").fetchone()[0])

    def load_present(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record the platform's (id, hash) pairs; an id seen twice is marked `repeated`."""
        conn = self.conn
        conn.execute("BEGIN")
        conn.execute("DELETE FROM present")
        batch: list[tuple[str, str]] = []
        upsert = (
            "INSERT INTO present (id, hash) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, repeated = 1"
        )
        for pair in pairs:
            batch.append(pair)
            if len(batch) >= INSERT_BATCH:
                conn.executemany(upsert, batch)
                batch = []
        conn.executemany(upsert, batch)
        conn.execute("COMMIT")

    def plan(self) -> tuple[int, int, int]:
        """Mark every source row's action; returns the counts (new, changed, removed)."""
        conn = self.conn
        conn.execute("BEGIN")
        if self.planned:  # the same scanned source synced again: start from a clean slate
            conn.execute("UPDATE source SET action = NULL WHERE action IS NOT NULL")
        self.planned = True
        conn.execute(
            "UPDATE source SET action = 'a' WHERE NOT EXISTS (SELECT 1 FROM present WHERE present.id = source.id)"
        )
        conn.execute(
            "UPDATE source SET action = 'c' FROM present WHERE present.id = source.id "
            "AND (present.hash != source.hash OR present.repeated)"
        )
        conn.execute("COMMIT")
        counts = dict(conn.execute("SELECT action, count(*) FROM source GROUP BY action").fetchall())
        removed = conn.execute(
            "SELECT count(*) FROM present WHERE NOT EXISTS (SELECT 1 FROM source WHERE source.id = present.id)"
        ).fetchone()[0]
        return int(counts.get("a", 0)), int(counts.get("c", 0)), int(removed)

    def actions(self) -> Iterator[tuple[str, str, str | None]]:
        """(id, hash, action) of every source row, in read order."""
        for row_id, row_hash, action in self.fetch("SELECT id, hash, action FROM source ORDER BY ord"):
            yield str(row_id), str(row_hash), None if action is None else str(action)

    def removed_ids(self, batch: int) -> Iterator[list[str]]:
        """Ids on the platform that the source no longer has, `batch` at a time."""
        ids: list[str] = []
        query = (
            "SELECT id FROM present WHERE NOT EXISTS (SELECT 1 FROM source WHERE source.id = present.id) "
            "ORDER BY id"
        )
        for row in self.fetch(query):
            ids.append(str(row[0]))
            if len(ids) >= batch:
                yield ids
                ids = []
        if ids:
            yield ids
