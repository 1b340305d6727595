"""A set of ids that stays small in memory: in a Python set up to a bound, then in a temporary SQLite file.

Used to drop events a paginated API returns twice, over streams of any length.

Example:
    >>> seen = SeenIds(in_memory=2)
    >>> [seen.add(i) for i in ("a", "b", "a", "c", "b", "c", "d")]
    [True, True, False, True, False, False, True]
    >>> seen.close()
"""

from __future__ import annotations

from dagster_evals.engine.row_index import SpillFile

IN_MEMORY_IDS = 50_000


class SeenIds:
    """`add(id)` is True the first time an id is added, False after (see the module docstring)."""

    def __init__(self, in_memory: int = IN_MEMORY_IDS) -> None:
        self.in_memory = in_memory
        self._ids: set[str] = set()
        self._spill: SpillFile | None = None

    def add(self, item: str) -> bool:
        if self._spill is None:
            if item in self._ids:
                return False
            self._ids.add(item)
            if len(self._ids) > self.in_memory:
                self._move_to_disk()
            return True
        cursor = self._spill.conn.execute("INSERT OR IGNORE INTO seen VALUES (?)", (item,))
        return cursor.rowcount == 1

    def _move_to_disk(self) -> None:
        self._spill = SpillFile()
        conn = self._spill.conn
        conn.execute("CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO seen VALUES (?)", ((i,) for i in self._ids))
        conn.execute("COMMIT")
        self._ids = set()

    def close(self) -> None:
        self._ids = set()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
