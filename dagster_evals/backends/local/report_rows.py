"""The results of a local eval on their way to its report and its database: `ReportRows`.

The eval's event loop hands each result to `ReportRows.add`. A writer thread adds the results to the report
(`ReportBuilder`) and stores them, `batch_size` rows per transaction, with the checkpoints the backend
writes itself (see `row_writes`), so the event loop never waits for the database. The results go to the
writer in batches (`dagster_evals.engine.batch_writer`):

- due once a fifth of a batch waits or, with the checkpoints written here, their own `flush_every`
  results, or `flush_interval_s` after the last batch (so that a killed eval loses no more than the
  checkpoints would, even while no further result comes);
- handed over while the writer is idle, taken by the writer as they come due once it is done with the
  last batch, and piling up while it is busy, up to 4 batches;
- `finish()` hands over the rest; `wait()` returns once every result is in the report and stored.

An in-memory database has one connection for every thread: its results are written on the calling thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from dagster_evals.backends.base import ProgressFn
from dagster_evals.backends.local.row_writes import (
    CHECKPOINT_COLUMNS,
    ROW_COLUMNS,
    SharedCheckpoints,
    checkpoint_insert_sql,
    checkpoint_values,
    row_insert_sql,
    row_values,
    sqlite_multi_row_inserts,
)
from dagster_evals.backends.local.row_writes import now as checkpoint_time
from dagster_evals.backends.local.store import in_memory, write_transaction
from dagster_evals.engine.batch_writer import BatchWriter
from dagster_evals.engine.embedded_db import retrying
from dagster_evals.engine.models import RowResult
from dagster_evals.engine.ordered_writer import YIELD_EVERY, yield_gil
from dagster_evals.engine.summary import ReportBuilder


class ReportRows:
    """One eval's results: added to its report and stored on a writer thread (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        experiment_id: str,
        builder: ReportBuilder,
        shared: SharedCheckpoints | None,
        *,
        batch_size: int,
        total: int,
        progress: ProgressFn,
    ) -> None:
        self.engine = engine
        self.experiment_id = experiment_id
        self.builder = builder
        self.shared = shared
        self.batch_size = batch_size
        self.total = total
        self.progress = progress
        self._added = 0
        self._reported = 0
        least = max(1, batch_size // 5)
        self._batches: BatchWriter[tuple[RowResult, bool]] = BatchWriter(
            "dagster-evals-report-rows",
            self._add_and_store,
            due_count=least if shared is None else min(least, shared.checkpoints.flush_every),
            due_age_s=None if shared is None else shared.checkpoints.flush_interval_s,
            most_waiting=4 * batch_size,
            inline=in_memory(engine.url),
        )

    def add(self, result: RowResult) -> None:
        """Take one result of the eval (called on its event loop, once per result)."""
        # Whether its checkpoint is written with it: asked now, as the runner marks the result it passes.
        self._batches.add((result, self.shared is not None and self.shared.fresh(result)))
        self._added += 1
        if self._added - self._reported >= self.batch_size:
            self._report_progress()

    def finish(self) -> None:
        """Hand over the results still waiting (`wait()` for them to be written)."""
        self._batches.flush()
        if self._added != self._reported:
            self._report_progress()

    def wait(self) -> None:
        """Wait until every result handed over is in the report and stored; raise the error of a write
        that failed."""
        self._batches.wait()

    def close(self) -> None:
        """Let the writer thread end once the results handed over are written."""
        self._batches.close()

    def _report_progress(self) -> None:
        self._reported = self._added
        self.progress(f"scored {self._added}/{self.total} row trials")

    def _add_and_store(self, batch: list[tuple[RowResult, bool]]) -> None:
        for start in range(0, len(batch), YIELD_EVERY):
            for result, _ in batch[start : start + YIELD_EVERY]:
                self.builder.add(result)
            yield_gil()
        for start in range(0, len(batch), self.batch_size):
            self._store_batch(batch[start : start + self.batch_size])

    def _store_batch(self, batch: Sequence[tuple[RowResult, bool]]) -> None:
        """One transaction; a result stored twice (same row and trial) is overwritten. With `shared`, the
        results marked fresh are checkpointed in the same transaction."""
        shared = self.shared
        rows, checkpoints = [], []
        now = checkpoint_time()
        for index, (r, is_fresh) in enumerate(batch, 1):
            row = row_values(self.experiment_id, r)
            rows.append(row)
            if is_fresh and shared is not None:
                checkpoints.append(checkpoint_values(shared.key, r, row, now))
            if index % YIELD_EVERY == 0:
                yield_gil()

        def store() -> None:
            with write_transaction(self.engine) as conn:
                dialect = conn.dialect.name
                if dialect != "sqlite":
                    conn.exec_driver_sql(row_insert_sql(dialect), rows)
                    if checkpoints:
                        conn.exec_driver_sql(checkpoint_insert_sql(dialect), checkpoints)
                    return
                for sql, params in sqlite_multi_row_inserts(row_insert_sql(dialect), ROW_COLUMNS, rows):
                    conn.exec_driver_sql(sql, params)
                inserts = sqlite_multi_row_inserts(
                    checkpoint_insert_sql(dialect), CHECKPOINT_COLUMNS, checkpoints
                )
                for sql, params in inserts:
                    conn.exec_driver_sql(sql, params)

        retrying(store)  # an upsert and an insert-or-ignore: safe to repeat after a lost connection
        if shared is not None:
            shared.written(len(checkpoints))
