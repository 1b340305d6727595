"""Row checkpoints: every scored (row, trial) of an eval kept in the embedded database as it completes.

A re-executed run (Dagster's "re-execute from failure") and the steps of a sharded eval find the results
already scored under the same eval-run key and replay them instead of calling the task again, so a killed
run resumes where it stopped and a sharded eval's combine step builds its report without re-scoring.

Two tables, created when missing, in the eval state database (see `dagster_evals.engine.embedded_db`: the database
named on the eval's resource — `LocalEvalResource.url`, or `state_database_url` on the Braintrust and
Keywords AI resources —, else `$DAGSTER_EVALS_DATABASE_URL`, else `$DAGSTER_HOME/dagster_evals.sqlite`):

- `dagster_evals_eval_plans`: what one eval run evaluates (snapshot, prompt version, report name), written by
  the first step and read by the others, keyed by the eval-run key;
- `dagster_evals_row_checkpoints`: one result per (checkpoint key, row id, trial), only ever inserted (a
  duplicate insert is ignored: the same row of the same run scored twice gives the same result).

Results are written in batches, one transaction each, on a writer thread (`dagster_evals.engine.batch_writer`):
a batch is written once it holds `flush_every` results (`FLUSH_EVERY`, 64) or `flush_interval_s` seconds
(`FLUSH_INTERVAL_S`, 1 s) after the last one, even while no further result comes, and grows meanwhile while
the previous batch is still being written (up to `MAX_BEHIND` batches).
A killed step loses only the results not yet written, the batch being written and the one filling (they
are scored again on resume). When the checkpoints live in the local backend's own database, its
`run_eval` writes them itself, with the result rows and in the same transaction, on the same schedule (see
`dagster_evals.backends.local.row_writes`).

Example:
    >>> store = CheckpointStore("sqlite://")
    >>> rows = store.checkpoints("run-key")
    >>> from dagster_evals.engine.models import RowResult
    >>> rows.record(RowResult(row_id="r1", scores={"exact_match": 1.0}))
    >>> rows.flush()
    >>> store.count("run-key")
    1
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dagster_evals.engine.batch_writer import BatchWriter
from dagster_evals.engine.embedded_db import (
    create_tables,
    database_url,
    redacted_url,
    retrying,
    shared_engine,
    sqlite_file,
)
from dagster_evals.engine.models import EvalRow, RowResult, canonical_json
from dagster_evals.engine.ordered_writer import YIELD_EVERY, yield_gil

# Checkpoints of eval runs older than this are dropped when a new eval run starts.
RETENTION = timedelta(days=14)
LOOKUP_CHUNK = 500
# A run's checkpoints are written every this many results, or this many seconds, whichever comes first.
FLUSH_EVERY = 64
FLUSH_INTERVAL_S = 1.0
# Batches a run may get ahead of a slow checkpoint write before it waits for it.
MAX_BEHIND = 8
# One encoder for every result (`json.dumps` with options builds a new one per call).
_RESULT_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str)

metadata = sa.MetaData()
eval_plans = sa.Table(
    "dagster_evals_eval_plans",
    metadata,
    sa.Column("run_key", sa.String(64), primary_key=True),
    sa.Column("plan", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False, index=True),
)
row_checkpoints = sa.Table(
    "dagster_evals_row_checkpoints",
    metadata,
    sa.Column("checkpoint_key", sa.String(64), primary_key=True),
    sa.Column("row_id", sa.String(512), primary_key=True),
    sa.Column("trial", sa.Integer, primary_key=True),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False, index=True),
)


def digest(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of `parts`: a key that is the same in every process."""
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()


def encode_result(result: RowResult) -> str:
    """A row result as JSON (values JSON cannot hold are stored as their `str`, as the backends store them)."""
    return _RESULT_ENCODER.encode(result.model_dump())


class CheckpointStore:
    """Eval plans and row checkpoints in one SQLAlchemy database (see the module docstring)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.engine = shared_engine(self.url)
        create_tables(self.engine, metadata)

    def __repr__(self) -> str:
        return f"CheckpointStore(url={redacted_url(self.url)!r})"

    def insert_or_ignore(self) -> Any:
        """An INSERT of checkpoints that skips a (row, trial) already stored. On SQLite it is `INSERT OR
        IGNORE`, which SQLAlchemy compiles once and caches (its `on_conflict_do_nothing` form is compiled
        again on every execution, a millisecond per batch)."""
        if self.engine.dialect.name == "sqlite":
            return sa.insert(row_checkpoints).prefix_with("OR IGNORE")
        return self._insert(row_checkpoints).on_conflict_do_nothing(
            index_elements=["checkpoint_key", "row_id", "trial"]
        )

    def _insert(self, table: sa.Table) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # -- plans ------------------------------------------------------------------------------------
    def save_plan(self, run_key: str, plan: Mapping[str, Any]) -> None:
        """Store (or replace) the plan of eval run `run_key`."""
        values = {"run_key": run_key, "plan": canonical_json(dict(plan)), "created_at": _now()}
        stmt = self._insert(eval_plans).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_key"], set_={"plan": values["plan"], "created_at": values["created_at"]}
        )

        def save() -> None:
            with self.engine.begin() as conn:
                conn.execute(stmt)

        retrying(save)

    def load_plan(self, run_key: str) -> dict[str, Any] | None:
        """The plan of eval run `run_key`, or None when no step stored one."""

        def load() -> Any:
            with self.engine.connect() as conn:
                return conn.execute(
                    sa.select(eval_plans.c.plan).where(eval_plans.c.run_key == run_key)
                ).scalar()

        text = retrying(load)
        return None if text is None else json.loads(text)

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoints(
        self,
        checkpoint_key: str,
        *,
        flush_every: int = FLUSH_EVERY,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> RowCheckpoints:
        """The checkpoints of one eval run (see `RowCheckpoints`)."""
        return RowCheckpoints(
            self, checkpoint_key, flush_every=flush_every, flush_interval_s=flush_interval_s
        )

    def write(self, checkpoint_key: str, results: Iterable[RowResult]) -> None:
        """Insert results in one transaction; a (row, trial) already stored keeps its first result."""
        now = _now()
        values = []
        for index, r in enumerate(results, 1):
            values.append(
                {
                    "checkpoint_key": checkpoint_key,
                    "row_id": r.row_id,
                    "trial": r.trial,
                    "result": encode_result(r),
                    "created_at": now,
                }
            )
            if index % YIELD_EVERY == 0:  # on a writer thread: let the run's event loop in meanwhile
                yield_gil()
        if not values:
            return
        stmt = self.insert_or_ignore()

        def insert() -> None:
            with self.engine.begin() as conn:
                conn.execute(stmt, values)

        retrying(insert)  # safe to repeat: a (row, trial) already stored is skipped

    def read(self, checkpoint_key: str, row_ids: Iterable[str]) -> dict[tuple[str, int], RowResult]:
        """The stored results of these rows (every trial), by (row id, trial)."""
        c = row_checkpoints.c
        ids = sorted(set(row_ids))

        def lookup() -> dict[tuple[str, int], RowResult]:
            found: dict[tuple[str, int], RowResult] = {}
            with self.engine.connect() as conn:
                for start in range(0, len(ids), LOOKUP_CHUNK):
                    query = sa.select(c.row_id, c.trial, c.result).where(
                        (c.checkpoint_key == checkpoint_key) & c.row_id.in_(ids[start : start + LOOKUP_CHUNK])
                    )
                    for row in conn.execute(query):
                        found[(row.row_id, row.trial)] = RowResult.model_validate_json(row.result)
            return found

        return retrying(lookup)

    def count(self, checkpoint_key: str) -> int:
        """Number of (row, trial) results stored under `checkpoint_key`."""
        query = sa.select(sa.func.count()).where(row_checkpoints.c.checkpoint_key == checkpoint_key)

        def count() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return retrying(count)

    def prune(self, older_than: timedelta = RETENTION) -> int:
        """Drop plans and checkpoints written before `older_than` ago; returns the checkpoints dropped."""
        cutoff = (datetime.now(UTC) - older_than).isoformat()

        def delete() -> int:
            with self.engine.begin() as conn:
                dropped = conn.execute(
                    sa.delete(row_checkpoints).where(row_checkpoints.c.created_at < cutoff)
                )
                conn.execute(sa.delete(eval_plans).where(eval_plans.c.created_at < cutoff))
            return int(dropped.rowcount or 0)

        return retrying(delete)

    def close(self) -> None:
        self.engine.dispose()


class RowCheckpoints:
    """The checkpoints of one eval run, as the local runner uses them.

    `resume(pairs)` passes through the (row, trial) pairs still to score and replaces each pair already
    stored by its stored `RowResult` (looked up a chunk of rows at a time, so memory stays bounded);
    `record(result)` stores a freshly scored result (a batch at a time, written on a background thread);
    `flush()` writes whatever is still buffered and waits until every recorded result is written.
    """

    def __init__(
        self,
        store: CheckpointStore,
        key: str,
        *,
        flush_every: int = FLUSH_EVERY,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.store = store
        self.key = key
        self.flush_every = max(1, flush_every)
        self.flush_interval_s = flush_interval_s
        self.replayed = 0
        self.recorded = 0
        # While a batch is being written the next one keeps growing (one bigger transaction later) rather
        # than stopping the run; only a writer `MAX_BEHIND` batches behind holds the run back.
        self._batches = BatchWriter(
            "dagster-evals-checkpoints",
            self._write,
            due_count=self.flush_every,
            due_age_s=flush_interval_s,
            most_waiting=MAX_BEHIND * self.flush_every,
            # An in-memory database has one connection for every thread: written from the run's thread.
            inline=store.url.startswith("sqlite") and sqlite_file(store.url) is None,
        )

    def resume(
        self, pairs: Iterator[tuple[EvalRow, int]], chunk: int = LOOKUP_CHUNK
    ) -> Iterator[tuple[EvalRow, int] | RowResult]:
        """`pairs`, with every pair already checkpointed replaced by its stored result."""
        if self.store.count(self.key) == 0:
            yield from pairs
            return
        while True:
            batch = [pair for _, pair in zip(range(chunk), pairs, strict=False)]
            if not batch:
                return
            stored = self.store.read(self.key, (row.id for row, _ in batch))
            for row, trial in batch:
                result = stored.get((row.id, trial))
                if result is None:
                    yield row, trial
                else:
                    self.replayed += 1
                    yield result

    def record(self, result: RowResult) -> None:
        """Buffer a scored result; once the buffer is full or old enough, it is written on the writer thread."""
        self._batches.add(result)

    def flush(self) -> None:
        """Write every buffered result, and wait until every result recorded so far is written.

        Raises:
            sqlalchemy.exc.DBAPIError: a batch could not be written (also raised by a later `record`).
        """
        self._batches.flush()
        try:
            self._batches.wait()
        finally:
            self._batches.close()

    def _write(self, batch: list[RowResult]) -> None:
        self.store.write(self.key, batch)
        self.recorded += len(batch)


def _now() -> str:
    return datetime.now(UTC).isoformat()


_stores: dict[str, CheckpointStore] = {}
_stores_lock = threading.Lock()


def store_for(url: str | None = None) -> CheckpointStore:
    """The process-wide `CheckpointStore` of `url` (default: the embedded database's URL)."""
    resolved = url or database_url()
    with _stores_lock:
        if resolved not in _stores:
            _stores[resolved] = CheckpointStore(resolved)
        return _stores[resolved]
