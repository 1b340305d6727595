"""A sync's writes on the local backend: staged in `staged_rows` batch by batch, published as one version.

Each stage records its owner and a heartbeat (see `leases`); a later sync of the same dataset removes the
stages whose sync is known gone (crashed), and never those of a sync still running.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dagster_evals.backends.base import ProgressFn, StagedSync, _quiet
from dagster_evals.backends.local.leases import Lease, owner_gone
from dagster_evals.backends.local.store import (
    dataset_stages,
    in_memory,
    insert,
    staged_rows,
    write_transaction,
)
from dagster_evals.engine.models import DatasetRef, DatasetRow, canonical_json, utcnow

if TYPE_CHECKING:
    from dagster_evals.backends.local.datasets import LocalDatasets

# A stage without a recorded owner (written by an earlier version) is dropped by a later sync after this.
ABANDONED_STAGE_AFTER = timedelta(days=1)
logger = logging.getLogger("dagster_evals.local")


class LocalStagedSync(StagedSync):
    """One sync's writes, staged in `staged_rows` batch by batch and published as one version."""

    atomic = True

    def __init__(self, platform: LocalDatasets, dataset: DatasetRef, base_version: str | None = None) -> None:
        self.local = platform
        self.dataset = dataset
        self.base = None if base_version is None else int(base_version)
        self.stage_id = uuid.uuid4().hex
        self.lease = Lease(self.stage_id, None if in_memory(platform.engine.url) else self._heartbeat)
        self.removed_stages: list[tuple[str, str]] = []  # (stage id, why its sync is known gone)
        now = utcnow()
        try:
            with write_transaction(platform.engine) as conn:
                platform._published_version(conn, dataset)  # the dataset must exist
                self.removed_stages = _remove_crashed_stages(conn, dataset, now)
                conn.execute(
                    sa.insert(dataset_stages).values(
                        id=self.stage_id,
                        dataset_id=dataset.id,
                        created_at=now.isoformat(),
                        owner=self.lease.owner,
                        heartbeat_at=now.isoformat(),
                    )
                )
        except BaseException:
            self.lease.release()
            raise
        for stage_id, why in self.removed_stages:
            logger.warning(f"removed the staged rows of crashed sync {stage_id} of {dataset.name!r}: {why}")

    def _heartbeat(self, now: str) -> None:
        with write_transaction(self.local.engine) as conn:
            conn.execute(
                sa.update(dataset_stages).where(dataset_stages.c.id == self.stage_id).values(heartbeat_at=now)
            )

    def _stage(self, values: list[dict[str, Any]]) -> None:
        with write_transaction(self.local.engine) as conn:
            stmt = insert(conn, staged_rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=["stage_id", "row_id"],
                set_={
                    k: stmt.excluded[k]
                    for k in ("removed", "content_hash", "input", "expected", "metadata", "tags")
                },
            )
            conn.execute(stmt, values)

    def upsert_rows(
        self, rows: Sequence[DatasetRow], *, replace: Collection[str] = (), progress: ProgressFn = _quiet
    ) -> int:
        size = self.local.batch_size
        started = time.monotonic()
        transactions = 0
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            self._stage(
                [
                    {
                        "stage_id": self.stage_id,
                        "row_id": row.id,
                        "removed": False,
                        "content_hash": row.content_hash,
                        "input": canonical_json(row.input),
                        "expected": None if row.expected is None else canonical_json(row.expected),
                        "metadata": canonical_json(row.metadata),
                        "tags": canonical_json(row.tags),
                    }
                    for row in batch
                ]
            )
            transactions += 1
            done = start + len(batch)
            if len(rows) > size:
                elapsed = time.monotonic() - started
                eta = elapsed / done * (len(rows) - done)
                progress(f"staged {done}/{len(rows)} rows ({elapsed:.1f}s elapsed, ETA {eta:.1f}s)")
        return transactions

    def delete_rows(self, row_ids: Collection[str]) -> int:
        ids = list(row_ids)
        empty = dict.fromkeys(("content_hash", "input", "expected", "metadata", "tags"))
        size = self.local.batch_size
        for start in range(0, len(ids), size):
            self._stage(
                [
                    {"stage_id": self.stage_id, "row_id": row_id, "removed": True, **empty}
                    for row_id in ids[start : start + size]
                ]
            )
        return (len(ids) + size - 1) // size

    def publish(self) -> int:
        published = self.local._publish(self.dataset, self.stage_id, self.base)
        self.version = None if published is None else str(published)
        self.lease.release()
        return 1

    def discard(self) -> None:
        try:
            with write_transaction(self.local.engine) as conn:
                conn.execute(sa.delete(staged_rows).where(staged_rows.c.stage_id == self.stage_id))
                conn.execute(sa.delete(dataset_stages).where(dataset_stages.c.id == self.stage_id))
        finally:  # even when the database is gone: the next sync of the dataset then removes the stage
            self.lease.release()


def _remove_crashed_stages(conn: Connection, dataset: DatasetRef, now: datetime) -> list[tuple[str, str]]:
    """Delete the stages of `dataset` whose sync is known gone (see `leases`); returns (stage id, why).

    Stages written before owners were recorded are removed a day after they were created, as before.
    """
    c = dataset_stages.c
    stages = conn.execute(
        sa.select(c.id, c.owner, c.heartbeat_at, c.created_at).where(c.dataset_id == dataset.id)
    ).all()
    crashed = []
    for stage in stages:
        if stage.owner is None:
            old = stage.created_at < (now - ABANDONED_STAGE_AFTER).isoformat()
            why = f"unpublished since {stage.created_at}" if old else None
        else:
            why = owner_gone(stage.id, stage.owner, stage.heartbeat_at, now)
        if why is not None:
            crashed.append((stage.id, why))
    ids = [stage_id for stage_id, _ in crashed]
    if ids:
        conn.execute(sa.delete(staged_rows).where(staged_rows.c.stage_id.in_(ids)))
        conn.execute(sa.delete(dataset_stages).where(c.id.in_(ids)))
    return crashed
