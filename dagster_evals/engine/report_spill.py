"""Per-row values of an eval report kept in a temporary SQLite file, so building a report of any size holds
bounded memory.

A report needs, per dataset row, the mean of each score over the row's trials (for the per-scorer means,
the improvements and regressions against a baseline, and the rows that dropped most), the set of rows seen
and errored, and every latency (for exact nearest-rank percentiles). For a few thousand rows these fit in
memory; for a million they would not. `ResultSpill` writes them, a batch at a time, to a temporary SQLite
file (deleted on close: see `row_index.SpillFile`) and answers the report's questions with queries that
SQLite runs on disk. Memory is the write buffer (`BUFFER` values) plus SQLite's page cache. A report whose
values never outgrew the buffer (no baseline, fewer than `BUFFER` values of each kind) is answered from
the buffer itself, and no file is created.

Every figure is exact and computed in the same order as an in-memory computation would (Python sums, in
the order rows were first seen), so a report built here equals one built from dicts, bit for bit:

- a row's mean over trials is `sum(values) / len(values)` over its values in the order they were added;
- a scorer's mean is the running sum of the row means in the order the rows were first scored;
- a percentile is the value at the nearest rank of the sorted values (`ORDER BY … LIMIT 1 OFFSET k`).

Example:
    >>> spill = ResultSpill()
    >>> spill.add_scores("current", "q1", {"em": 1.0})
    >>> spill.add_scores("current", "q1", {"em": 0.0})
    >>> [(row, dict(means)) for row, means in spill.row_means("current")]
    [('q1', {'em': 0.5})]
    >>> spill.close()
"""

from __future__ import annotations

import math
import sqlite3
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, cast

from dagster_evals.engine.row_index import SpillFile

# Values buffered in memory before they are written to the spill file.
BUFFER = 5_000
# SQLite page cache of the spill file (sorts beyond it run on disk).
CACHE_KIB = 4 * 1024

Side = Literal["current", "baseline"]
_SIDES = ("current", "baseline")
_SCHEMA = (
    "CREATE TABLE scores_current (seq INTEGER PRIMARY KEY, row_id TEXT NOT NULL, scorer TEXT NOT NULL, value REAL)",
    "CREATE TABLE scores_baseline (seq INTEGER PRIMARY KEY, row_id TEXT NOT NULL, scorer TEXT NOT NULL, value REAL)",
    "CREATE TABLE means_current (row_id TEXT NOT NULL, scorer TEXT NOT NULL, mean REAL)",
    "CREATE TABLE means_baseline (row_id TEXT NOT NULL, scorer TEXT NOT NULL, mean REAL)",
    "CREATE TABLE seen (row_id TEXT NOT NULL, errored INTEGER NOT NULL)",
    "CREATE TABLE samples (series TEXT NOT NULL, value REAL)",  # NaN is stored as NULL
)
# The columns of the tables written a buffer at a time, in the order of their buffered records.
_BUFFERED_COLUMNS = {
    "scores_current": ("row_id", "scorer", "value"),
    "scores_baseline": ("row_id", "scorer", "value"),
    "seen": ("row_id", "errored"),
    "samples": ("series", "value"),
}


def _value(stored: Any) -> float:
    # SQLite stores NaN as NULL; only non-None values are ever written, so NULL reads back as NaN.
    return math.nan if stored is None else float(stored)


class ResultSpill:
    """The per-row values of one report on disk (see the module docstring). Thread-safe writes."""

    def __init__(self) -> None:
        self._spill: SpillFile | None = None
        self._finalizer: weakref.finalize | None = None
        self._buffers: dict[str, list[tuple[object, ...]]] = {table: [] for table in _BUFFERED_COLUMNS}
        self._counts = dict.fromkeys(self._buffers, 0)
        self._lock = threading.Lock()
        self._means_done: set[str] = set()
        self._sample_index = False
        self._sorted_samples: dict[str, list[float]] = {}  # per series, while every sample is buffered

    # -- writing ----------------------------------------------------------------------------------
    @property
    def _conn(self) -> sqlite3.Connection:
        if self._spill is None:
            self._spill = SpillFile()
            self._spill.conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            # The file goes when the spill is closed, or when it is garbage-collected unclosed.
            self._finalizer = weakref.finalize(self, self._spill.close)
            for statement in _SCHEMA:
                self._spill.conn.execute(statement)
        return self._spill.conn

    def _add(self, table: str, record: tuple[object, ...]) -> None:
        with self._lock:
            self._buffer(table, record)

    def _buffer(self, table: str, record: tuple[object, ...]) -> None:
        """Buffer `record` (the lock held); a full buffer is written to the spill file."""
        buffer = self._buffers[table]
        buffer.append(record)
        self._counts[table] += 1
        if table == "samples":
            self._sorted_samples.clear()
        if len(buffer) >= BUFFER:
            self._write(table)

    def _write(self, table: str) -> None:
        buffer = self._buffers[table]
        if not buffer:
            return
        columns = _BUFFERED_COLUMNS[table]
        conn = self._conn
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", buffer
        )
        conn.execute("COMMIT")
        self._buffers[table] = []

    def _flush(self) -> None:
        with self._lock:
            for table in self._buffers:
                self._write(table)

    def add_scores(self, side: Side, row_id: str, scores: Mapping[str, float | None]) -> None:
        """One trial's scores of a row (None values are skipped)."""
        self._check_scores_open(side)
        with self._lock:
            self._buffer_scores(side, row_id, scores)

    def _check_scores_open(self, side: Side) -> None:
        if side in self._means_done:
            raise RuntimeError(f"{side} scores were added after their row means were computed")

    def _buffer_scores(self, side: Side, row_id: str, scores: Mapping[str, float | None]) -> None:
        for name, value in scores.items():
            if value is not None:
                self._buffer(f"scores_{side}", (row_id, name, value))

    def add_result(
        self,
        row_id: str,
        errored: bool,
        scores: Mapping[str, float | None] | None,
        latency: tuple[str, float] | None = None,
    ) -> None:
        """One result of a row (any trial) and whether it errored (task or scorer); then, when given, its
        scores (as `add_scores("current", ...)`) and a sample (as `add_sample(*latency)`): buffered under
        one lock."""
        if scores is not None:
            self._check_scores_open("current")
        with self._lock:
            self._buffer("seen", (row_id, 1 if errored else 0))
            if scores is not None:
                self._buffer_scores("current", row_id, scores)
            if latency is not None:
                self._buffer("samples", latency)

    def add_sample(self, series: str, value: float) -> None:
        """A value of a series whose percentiles are wanted (e.g. latencies)."""
        self._add("samples", (series, value))

    def has_scores(self, side: Side) -> bool:
        return self._counts[f"scores_{side}"] > 0

    # -- reading ----------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: tuple[object, ...] = ()) -> Iterator[tuple[Any, ...]]:
        self._flush()
        if self._spill is None:
            return iter(())
        return self._spill.fetch(sql, params)

    def row_means(self, side: Side) -> Iterator[tuple[str, dict[str, float]]]:
        """`(row id, {scorer: mean over trials})`, rows in the order they were first scored."""
        table = f"scores_{side}"
        if self._answer_in_memory():
            yield from _row_means(self._buffers[table])
            return
        self._flush()
        if self._spill is not None:  # a row's values found by index, not by scanning the table per row
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_row ON {table} (row_id, seq)")
        query = (
            f"SELECT s.row_id, s.scorer, s.value FROM {table} s JOIN "
            f"(SELECT row_id, MIN(seq) AS first FROM {table} GROUP BY row_id) f ON f.row_id = s.row_id "
            "ORDER BY f.first, s.seq"
        )
        current: str | None = None
        values: dict[str, list[float]] = {}
        for row_id, scorer, value in self._fetch(query):
            if row_id != current:
                if current is not None:
                    yield current, {n: sum(v) / len(v) for n, v in values.items()}
                current, values = str(row_id), {}
            values.setdefault(str(scorer), []).append(_value(value))
        if current is not None:
            yield current, {n: sum(v) / len(v) for n, v in values.items()}

    def scorer_means(self, side: Side, scorers: Iterable[str]) -> dict[str, tuple[float | None, int]]:
        """Per scorer, `(mean of the row means, rows scored)`; also stores the row means for `changes`."""
        names = list(scorers)
        sums: dict[str, float] = dict.fromkeys(names, 0)
        counts: dict[str, int] = dict.fromkeys(names, 0)
        in_memory = self._answer_in_memory()  # then no baseline: the row means are not needed again
        conn = self._conn if self.has_scores(side) and not in_memory else None
        batch: list[tuple[str, str, float]] = []
        for row_id, means in self.row_means(side):
            for name, mean in means.items():
                if name in sums:
                    sums[name] += mean
                    counts[name] += 1
                if conn is not None:
                    batch.append((row_id, name, mean))
            if conn is not None and len(batch) >= BUFFER:
                self._insert_means(side, batch)
                batch = []
        if conn is not None:
            self._insert_means(side, batch)
            conn.execute(f"CREATE INDEX means_{side}_key ON means_{side} (row_id, scorer)")
        if not in_memory:
            self._means_done.add(side)
        return {n: (sums[n] / counts[n] if counts[n] else None, counts[n]) for n in names}

    def _insert_means(self, side: Side, batch: list[tuple[str, str, float]]) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO means_{side} VALUES (?, ?, ?)", batch)
        conn.execute("COMMIT")

    def _ensure_means(self) -> None:
        for side in _SIDES:
            if side not in self._means_done:
                self.scorer_means(side, ())

    def changes(self, epsilon: float) -> dict[str, tuple[int, int]]:
        """Per scorer, `(improvements, regressions)`: rows whose mean rose / fell by more than `epsilon`
        against the baseline's mean of the same row (rows without both are not compared)."""
        self._ensure_means()
        query = (
            "SELECT c.scorer, SUM(c.mean > b.mean + ?), SUM(c.mean < b.mean - ?) FROM means_current c "
            "JOIN means_baseline b ON b.row_id = c.row_id AND b.scorer = c.scorer GROUP BY c.scorer"
        )
        return {
            str(s): (int(up or 0), int(down or 0)) for s, up, down in self._fetch(query, (epsilon, epsilon))
        }

    def drops(self, limit: int) -> tuple[int, list[tuple[str, str, float, float]]]:
        """How many (row, scorer) means fell below the baseline's, and the `limit` biggest drops as
        `(row id, scorer, mean, baseline mean)`, biggest first (ties by row id, then scorer)."""
        self._ensure_means()
        join = (
            "FROM means_current c JOIN means_baseline b ON b.row_id = c.row_id AND b.scorer = c.scorer "
            "WHERE c.mean < b.mean"
        )
        total = next(iter(self._fetch(f"SELECT COUNT(*) {join}")), (0,))[0]
        top = self._fetch(
            f"SELECT c.row_id, c.scorer, c.mean, b.mean {join} "
            "ORDER BY b.mean - c.mean DESC, c.row_id, c.scorer LIMIT ?",
            (limit,),
        )
        return int(total or 0), [(str(r), str(s), float(v), float(b)) for r, s, v, b in top]

    def regressed_rows(
        self, epsilon: float, limit: int
    ) -> tuple[int, int, list[tuple[str, dict[str, tuple[float, float]]]]]:
        """Rows whose mean of some scorer fell by more than `epsilon` below the baseline's mean of the same
        row: `(rows, (row, scorer) pairs, the `limit` rows that dropped most)`, each of those as
        `(row id, {scorer: (baseline mean, mean)})` over every scorer both sides scored, biggest total drop
        first (ties by row id)."""
        self._ensure_means()
        join = "FROM means_current c JOIN means_baseline b ON b.row_id = c.row_id AND b.scorer = c.scorer"
        dropped = f"{join} WHERE c.mean < b.mean - ?"
        rows, pairs = next(
            iter(self._fetch(f"SELECT COUNT(DISTINCT c.row_id), COUNT(*) {dropped}", (epsilon,))), (0, 0)
        )
        top = [
            str(row_id)
            for row_id, _ in self._fetch(
                f"SELECT c.row_id, SUM(b.mean - c.mean) AS fell {dropped} GROUP BY c.row_id "
                "ORDER BY fell DESC, c.row_id LIMIT ?",
                (epsilon, limit),
            )
        ]
        found: dict[str, dict[str, tuple[float, float]]] = {row_id: {} for row_id in top}
        if top:
            marks = ", ".join("?" * len(top))
            query = f"SELECT c.row_id, c.scorer, b.mean, c.mean {join} WHERE c.row_id IN ({marks}) ORDER BY c.scorer"
            for row_id, scorer, before, now in self._fetch(query, tuple(top)):
                found[str(row_id)][str(scorer)] = (float(before), float(now))
        return int(rows or 0), int(pairs or 0), list(found.items())

    def row_counts(self) -> tuple[int, int]:
        """`(rows seen, rows with at least one errored result)`."""
        if not self._counts["seen"]:
            return 0, 0
        if self._answer_in_memory():
            row_errored: dict[object, bool] = {}
            for row_id, flag in self._buffers["seen"]:
                row_errored[row_id] = row_errored.get(row_id, False) or bool(flag)
            return len(row_errored), sum(row_errored.values())
        query = "SELECT COUNT(*), COALESCE(SUM(errored), 0) FROM (SELECT MAX(errored) AS errored FROM seen GROUP BY row_id)"
        seen, errored = next(iter(self._fetch(query)))
        return int(seen), int(errored)

    def max_results_per_row(self) -> int:
        """The most results (trials) any one row has, 0 when no row was added."""
        if not self._counts["seen"]:
            return 0
        if self._answer_in_memory():
            return max(Counter(row_id for row_id, _ in self._buffers["seen"]).values())
        query = "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM seen GROUP BY row_id)"
        return int(next(iter(self._fetch(query)))[0] or 0)

    def percentile(self, series: str, fraction: float) -> float | None:
        """Nearest-rank percentile of a series (None when it has no values), as `summary.percentile`."""
        if self._answer_in_memory():
            ordered = self._sorted_samples.get(series)
            if ordered is None:
                values = [cast(float, value) for name, value in self._buffers["samples"] if name == series]
                nan = [v for v in values if v != v]  # NaN first, as SQLite orders its NULL
                ordered = self._sorted_samples[series] = nan + sorted(v for v in values if v == v)
            if not ordered:
                return None
            return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]
        count = next(iter(self._fetch("SELECT COUNT(*) FROM samples WHERE series = ?", (series,))), (0,))[0]
        count = int(count or 0)
        if not count:
            return None
        index = min(count - 1, max(0, round(fraction * (count - 1))))
        if not self._sample_index:  # walked in order, so the sort needs no memory
            self._conn.execute("CREATE INDEX samples_key ON samples (series, value)")
            self._sample_index = True
        query = "SELECT value FROM samples WHERE series = ? ORDER BY value LIMIT 1 OFFSET ?"
        return _value(next(iter(self._fetch(query, (series, index))))[0])

    def _answer_in_memory(self) -> bool:
        """Whether every value is still in the buffers and there is no baseline to compare with."""
        return self._spill is None and not self._counts["scores_baseline"]

    def close(self) -> None:
        """Remove the spill file (also done when the spill is garbage-collected)."""
        if self._finalizer is not None:
            self._finalizer()
        self._spill = None
        self._finalizer = None


def _row_means(buffered: list[tuple[object, ...]]) -> Iterator[tuple[str, dict[str, float]]]:
    """`row_means` of buffered `(row id, scorer, value)` records: rows in the order first seen, each value
    summed in the order added, as the spill file's query orders them."""
    values: dict[object, dict[object, list[Any]]] = {}
    for row_id, scorer, value in buffered:
        row = values.get(row_id)
        if row is None:
            row = values[row_id] = {}
        scored = row.get(scorer)
        if scored is None:
            row[scorer] = [value]
        else:
            scored.append(value)
    for row_id, scores in values.items():
        yield str(row_id), {str(n): sum(v) / len(v) for n, v in scores.items()}
