"""Datasets on the local backend: versioned rows, snapshots, and syncs published as one version.

A row is visible at version v when it was added at or before v and not removed at or before v, so a
snapshot pins a version and reads exactly the rows it had, whatever happens to the dataset later. Writes
are staged first (`staged_rows`) and published in one transaction that adds exactly one version (only
while the version a sync diffed against is current); readers never observe a half-written sync.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dagster_evals.backends.base import EvalPlatform, ProgressFn, _quiet
from dagster_evals.backends.local.staging import LocalStagedSync
from dagster_evals.backends.local.store import (
    dataset_rows,
    dataset_stages,
    dataset_versions,
    datasets,
    in_memory,
    insert,
    staged_rows,
    write_transaction,
)
from dagster_evals.engine.errors import ConfigError, InputError, NotFoundError, SyncConflictError
from dagster_evals.engine.isolation import DaemonThreads
from dagster_evals.engine.models import DatasetRef, DatasetRow, RunRow, utcnow
from dagster_evals.engine.shard_key import register_sqlite_function, shard_filter

PAGE_SIZE = 1000
# The first page of rows an eval reads; each next page is twice as large, up to PAGE_SIZE (see `_iter_rows`).
FIRST_PAGE_SIZE = 100
# `DatasetRow.model_validate` without its Python wrapper: the validator itself, called once per row read.
_validate_row = DatasetRow.__pydantic_validator__.validate_python
HASH_PAGE_SIZE = 10_000  # (id, hash) pairs are small: fewer, larger pages
# A stage without a recorded owner (written by an earlier version) is dropped by a later sync after this.
ABANDONED_STAGE_AFTER = timedelta(days=1)
logger = logging.getLogger("dagster_evals.local")


_Row = TypeVar("_Row")
_DATASET_ROW_COLUMNS = ("row_id", "input", "expected", "metadata", "content_hash", "tags")
_RUN_ROW_COLUMNS = ("row_id", "input", "expected", "metadata")


def _dataset_row(
    row_id: str, input: str, expected: str, metadata: str, content_hash: str, tags: str
) -> DatasetRow:
    return _validate_row(  # from a dict: the fastest way pydantic builds a row
        {
            "id": row_id,
            "input": loads(input),
            "expected": loads(expected),
            "metadata": loads(metadata),
            "tags": loads(tags),
            "content_hash": content_hash,
        }
    )


def _run_row(row_id: str, input: str, expected: str, metadata: str) -> RunRow:
    return RunRow(row_id, loads(input), loads(expected), loads(metadata))


def loads(text: str | None) -> Any:
    """The value of a stored JSON text (None stays None); empty metadata and tags and plain strings, the
    usual values, skip the parser."""
    if text is None:
        return None
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if text[:1] == '"' and "\\" not in text:  # a string without escapes: its characters, as stored
        return text[1:-1]
    return json.loads(text)


class LocalDatasets(EvalPlatform):
    """Dataset operations of `LocalPlatform` (mixed into it)."""

    engine: Engine
    batch_size: int
    compare_and_swap_syncs = True

    def ensure_dataset(
        self, name: str, *, project: str | None = None, description: str | None = None
    ) -> DatasetRef:
        project = project or self.default_project
        if not name:
            raise ConfigError("a dataset needs a non-empty name")
        where = (datasets.c.project == project) & (datasets.c.name == name)
        with write_transaction(self.engine) as conn:
            found = conn.execute(sa.select(datasets.c.id).where(where)).scalar()
            if found is None:
                # Another process may create it at the same moment: whoever commits first wins.
                conn.execute(
                    insert(conn, datasets)
                    .values(
                        id=uuid.uuid4().hex,
                        project=project,
                        name=name,
                        description=description,
                        version=0,
                        created_at=utcnow().isoformat(),
                    )
                    .on_conflict_do_nothing(index_elements=["project", "name"])
                )
                found = conn.execute(sa.select(datasets.c.id).where(where)).scalar_one()
            elif description is not None:
                conn.execute(
                    sa.update(datasets).where(datasets.c.id == found).values(description=description)
                )
        return DatasetRef(platform="local", id=str(found), name=name, project=project)

    def _published_version(self, conn: Connection, dataset: DatasetRef, *, lock: bool = False) -> int:
        query = sa.select(datasets.c.version).where(datasets.c.id == dataset.id)
        version = conn.execute(query.with_for_update() if lock else query).scalar()
        if version is None:
            raise NotFoundError("local", 404, "GET", f"dataset/{dataset.id}", f"no dataset {dataset.name!r}")
        return int(version)

    def _resolve_version(self, dataset: DatasetRef, version: str | None) -> int:
        with self.engine.connect() as conn:
            current = self._published_version(conn, dataset)
        if version is None:
            return current
        try:
            return int(version)
        except ValueError:
            raise InputError(f"local dataset versions are integers, got {version!r}") from None

    def current_version(self, dataset: DatasetRef) -> str:
        return str(self._resolve_version(dataset, None))

    @staticmethod
    def _visible_at(dataset: DatasetRef, at: int) -> sa.ColumnElement[bool]:
        return (
            (dataset_rows.c.dataset_id == dataset.id)
            & (dataset_rows.c.version_added <= at)
            & (dataset_rows.c.version_removed.is_(None) | (dataset_rows.c.version_removed > at))
        )

    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        return self._iter_rows(dataset, version, None, _DATASET_ROW_COLUMNS, _dataset_row)

    def iter_run_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[RunRow]:
        """The rows at `version`, by id, as an eval run reads them (`RunRow`: id, input, expected output and
        metadata; validated when they were written)."""
        return self._iter_rows(dataset, version, None, _RUN_ROW_COLUMNS, _run_row)

    def iter_shard_rows(
        self, dataset: DatasetRef, *, version: str | None = None, index: int, shards: int
    ) -> Iterator[DatasetRow]:
        """The rows of shard `index` of `shards` (see `dagster_evals.engine.shard_key`), selected by the database:
        the other shards' rows never leave it."""
        return self._iter_rows(dataset, version, (index, shards), _DATASET_ROW_COLUMNS, _dataset_row)

    def _iter_rows(
        self,
        dataset: DatasetRef,
        version: str | None,
        shard: tuple[int, int] | None,
        columns: tuple[str, ...],
        build: Callable[..., _Row],
    ) -> Iterator[_Row]:
        """The rows at `version` (of `shard`), by id: `build(*values)` of the `columns` of each."""
        at = self._resolve_version(dataset, version)
        c = dataset_rows.c
        dialect = self.engine.dialect.name
        visible = self._visible_at(dataset, at)
        if shard is not None:
            visible = visible & shard_filter(dialect, c.row_id, *shard)

        selected = [c[name] for name in columns]

        def fetch(after: str, limit: int = PAGE_SIZE) -> Sequence[Any]:
            query = sa.select(*selected).where(visible & (c.row_id > after)).order_by(c.row_id).limit(limit)
            with self.engine.connect() as conn:
                if shard is not None and dialect == "sqlite":
                    register_sqlite_function(conn.connection.driver_connection)
                return conn.execute(query).all()

        # The next page is read on a thread while this one is used (at most two pages held), off the
        # event loop of the eval pulling the rows; an in-memory database's one connection stays on this thread.
        # The first page, read where the rows are first pulled, is a small one, and each next page twice as
        # large up to PAGE_SIZE: an eval that starts hundreds of rows at once waits for a few hundred rows,
        # not for a full page, and the larger pages are read ahead while its first rows run.
        reader = None if in_memory(self.engine.url) else DaemonThreads("dagster-evals-rows")
        try:
            limit = FIRST_PAGE_SIZE if reader is not None else PAGE_SIZE
            page = fetch("", limit)
            while True:
                ahead = None
                next_limit = min(PAGE_SIZE, 2 * limit)
                if reader is not None and len(page) == limit:
                    ahead = reader.submit(fetch, page[-1].row_id, next_limit)
                for values in page:
                    yield build(*values)
                if len(page) < limit:
                    return
                page = ahead.result() if ahead is not None else fetch(page[-1].row_id)
                limit = next_limit
        finally:
            if reader is not None:
                reader.shutdown()

    def iter_row_hashes(
        self, dataset: DatasetRef, *, version: str | None = None
    ) -> Iterator[tuple[str, str]]:
        """`(row id, content hash)` of the rows at `version`, by id, `HASH_PAGE_SIZE` per query."""
        at = self._resolve_version(dataset, version)
        c = dataset_rows.c
        last_id = ""
        while True:
            query = (
                sa.select(c.row_id, c.content_hash)
                .where(self._visible_at(dataset, at) & (c.row_id > last_id))
                .order_by(c.row_id)
                .limit(HASH_PAGE_SIZE)
            )
            with self.engine.connect() as conn:
                page = conn.execute(query).all()
            for r in page:
                yield r.row_id, r.content_hash
            if len(page) < HASH_PAGE_SIZE:
                return
            last_id = page[-1].row_id

    def count_rows(self, dataset: DatasetRef, *, version: str | None = None) -> int:
        at = self._resolve_version(dataset, version)
        query = sa.select(sa.func.count()).select_from(dataset_rows).where(self._visible_at(dataset, at))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- writes: staged, then published as one version ---------------------------------------------
    def staged_sync(self, dataset: DatasetRef, *, base_version: str | None = None) -> LocalStagedSync:
        """Stage a sync's writes; `publish()` makes them one new version (only while `base_version` is current)."""
        return LocalStagedSync(self, dataset, base_version)

    def upsert_rows(
        self,
        dataset: DatasetRef,
        rows: Sequence[DatasetRow],
        *,
        replace: Collection[str] = (),
        progress: ProgressFn = _quiet,
    ) -> int:
        """Write rows by id as one new version (none if nothing changed); returns the transactions used."""
        stage = self.staged_sync(dataset)
        try:
            return stage.upsert_rows(rows, replace=replace, progress=progress) + stage.publish()
        except BaseException:
            stage.discard()
            raise

    def delete_rows(self, dataset: DatasetRef, row_ids: Collection[str]) -> None:
        """Remove rows by id as one new version."""
        if not row_ids:
            return
        stage = self.staged_sync(dataset)
        try:
            stage.delete_rows(row_ids)
            stage.publish()
        except BaseException:
            stage.discard()
            raise

    def delete_all_rows(self, dataset: DatasetRef) -> None:
        c = dataset_rows.c
        live = (c.dataset_id == dataset.id) & c.version_removed.is_(None)
        with write_transaction(self.engine) as conn:
            version = self._published_version(conn, dataset, lock=True) + 1
            removed = conn.execute(
                sa.update(dataset_rows).where(live).values(version_removed=version)
            ).rowcount
            self._record_version(conn, dataset, version, 0, removed)

    def _record_version(
        self, conn: Connection, dataset: DatasetRef, version: int, written: int, removed: int
    ) -> None:
        conn.execute(sa.update(datasets).where(datasets.c.id == dataset.id).values(version=version))
        conn.execute(
            sa.insert(dataset_versions).values(
                dataset_id=dataset.id,
                version=version,
                created_at=utcnow().isoformat(),
                rows_written=written,
                rows_removed=removed,
            )
        )

    def _publish(self, dataset: DatasetRef, stage_id: str, base: int | None = None) -> int | None:
        """Apply a stage as one version, only while `base` (if given) is current; the new version or None."""
        d, s = dataset_rows.c, staged_rows.c
        in_stage = sa.select(staged_rows).where(
            (s.stage_id == stage_id) & (s.row_id == d.row_id) & (d.dataset_id == dataset.id)
        )
        live = (d.dataset_id == dataset.id) & d.version_removed.is_(None)
        with write_transaction(self.engine) as conn:
            # The dataset row lock (PostgreSQL) / the write lock (SQLite) orders concurrent publishes.
            current = self._published_version(conn, dataset, lock=True)
            if base is not None and current != base:
                raise SyncConflictError(
                    f"dataset {dataset.name!r}: another sync published version {current} while this one "
                    f"was staged against version {base}"
                )
            version = current + 1
            removed = conn.execute(
                sa.update(dataset_rows)
                .where(live & in_stage.where(s.removed).exists())
                .values(version_removed=version)
            ).rowcount
            conn.execute(
                sa.update(dataset_rows)
                .where(live & in_stage.where(~s.removed & (s.content_hash != d.content_hash)).exists())
                .values(version_removed=version)
            )
            still_live = sa.select(dataset_rows.c.row_id).where(live & (d.row_id == s.row_id))
            to_add = (s.stage_id == stage_id) & ~s.removed & ~still_live.exists()
            # Counted before the insert: drivers differ on INSERT … SELECT row counts.
            written = conn.execute(
                sa.select(sa.func.count()).select_from(staged_rows).where(to_add)
            ).scalar_one()
            conn.execute(
                sa.insert(dataset_rows).from_select(
                    [
                        "dataset_id",
                        "row_id",
                        "version_added",
                        "content_hash",
                        "input",
                        "expected",
                        "metadata",
                        "tags",
                    ],
                    sa.select(
                        sa.literal(dataset.id),
                        s.row_id,
                        sa.literal(version),
                        s.content_hash,
                        s.input,
                        s.expected,
                        s.metadata,
                        s.tags,
                    ).where(to_add),
                )
            )
            conn.execute(sa.delete(staged_rows).where(s.stage_id == stage_id))
            conn.execute(sa.delete(dataset_stages).where(dataset_stages.c.id == stage_id))
            if not written and not removed:
                return None
            self._record_version(conn, dataset, version, written, removed)
            return version

    def list_dataset_versions(self, dataset: DatasetRef) -> list[dict[str, Any]]:
        """Every version of a dataset with the number of rows it wrote and removed, oldest first."""
        c = dataset_versions.c
        query = (
            sa.select(c.version, c.created_at, c.rows_written, c.rows_removed)
            .where(c.dataset_id == dataset.id)
            .order_by(c.version)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
