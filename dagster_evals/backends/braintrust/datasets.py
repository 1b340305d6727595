"""Braintrust datasets: rows in and out, pinned versions, copies of production logs."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from dagster_evals.backends.base import ProgressFn, _quiet
from dagster_evals.backends.braintrust import api
from dagster_evals.backends.braintrust.session import EMPTY_VERSION, BraintrustSession
from dagster_evals.engine.errors import (
    ConfigError,
)
from dagster_evals.engine.models import (
    DatasetRef,
    DatasetRow,
    content_hash,
)

CLOCK_DATASET = "dagster-evals-version-clock"
CLOCK_DESCRIPTION = (
    "Written by dagster-evals after row deletes: one row per dataset whose _xact_id is later than the "
    "dataset's last delete, so pinned versions exclude deleted rows. Safe to ignore; do not edit."
)

logger = logging.getLogger("dagster_evals.braintrust")


class BraintrustDatasets(BraintrustSession):
    """Datasets: create, read (at a pinned version), upsert, delete, version, copy production logs."""

    def ensure_dataset(
        self, name: str, *, project: str | None = None, description: str | None = None
    ) -> DatasetRef:
        if not name:
            raise ConfigError("a dataset needs a non-empty name")
        proj = self.project(project)
        body = api.CreateDataset(project_id=proj.id, name=name)
        if description is not None:
            body = api.CreateDataset(project_id=proj.id, name=name, description=description)
        dataset = self.client.create_dataset(body)
        if description is not None and dataset.description != description:
            dataset = self.client.patch_dataset(dataset.id, api.PatchDataset(description=description))
        summary = self.client.summarize_dataset(dataset.id, summarize_data=False)
        return DatasetRef(
            platform="braintrust",
            id=dataset.id,
            name=dataset.name,
            project=proj.name,
            url=summary.dataset_url,
        )

    @staticmethod
    def _row(event: dict[str, Any]) -> DatasetRow:
        metadata = event.get("metadata") or {}
        tags = event.get("tags") or []
        return DatasetRow(
            id=event["id"],
            input=event.get("input"),
            expected=event.get("expected"),
            metadata=metadata,
            tags=tags,
            content_hash=content_hash(event.get("input"), event.get("expected"), metadata, tags),
        )

    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        if version == EMPTY_VERSION:
            return
        for event in self.client.iter_dataset_events(dataset.id, version=version):
            yield self._row(event)

    def count_rows(self, dataset: DatasetRef, *, version: str | None = None) -> int:
        if version is None:
            summary = self.client.summarize_dataset(dataset.id, summarize_data=True)
            if summary.data_summary is not None:
                return summary.data_summary.total_records
        return sum(1 for _ in self.iter_rows(dataset, version=version))

    def _event_bytes(self, row: DatasetRow) -> bytes:
        event: dict[str, Any] = {"id": row.id, "input": row.input, "metadata": row.metadata}
        if row.expected is not None:
            event["expected"] = row.expected
        event["tags"] = row.tags
        return self._encode(event)

    def check_rows(self, rows: Sequence[DatasetRow]) -> None:
        """Fail on a row too big for one insert request (or not encodable as strict JSON)."""
        for row in rows:
            self._check_size(row.id, self._event_bytes(row))

    def upsert_rows(
        self,
        dataset: DatasetRef,
        rows: Sequence[DatasetRow],
        *,
        replace: Collection[str] = (),
        progress: ProgressFn = _quiet,
    ) -> int:
        """Insert rows by id (a full replace of any row with the same id), batched and concurrent.

        Every row is size-checked before the first request, so a row too big for one request fails the sync
        before any row is written. The check encodes and drops each row; the send encodes again while it
        streams, so memory stays flat in the number of rows.
        """
        self.check_rows(rows)
        return self._send_batches(
            f"/v1/dataset/{dataset.id}/insert",
            ((row.id, self._event_bytes(row)) for row in rows),
            total=len(rows),
            progress=progress,
        )

    def delete_rows(self, dataset: DatasetRef, row_ids: Collection[str]) -> None:
        """Tombstone the rows (`_object_delete`), then record a transaction after the delete on the
        project's version clock (see `_tick_clock`), so `current_version` moves past the delete.

        Nothing is written to the dataset itself besides the tombstones: a no-op merge into a live row
        would re-create that row (empty) if someone deleted it in between.
        """
        ids = list(row_ids)
        if not ids:
            return
        path = f"/v1/dataset/{dataset.id}/insert"
        self._send_batches(
            path,
            ((i, self._encode({"id": i, "_object_delete": True})) for i in ids),
            total=len(ids),
            what="deletes",
        )
        self._tick_clock(dataset)

    def _clock(self, dataset: DatasetRef) -> api.Dataset:
        """The project's version clock dataset (created on first use)."""
        project = self.project(dataset.project)
        cached = self._clocks.get(project.id)
        if cached is None:
            cached = self.client.create_dataset(
                api.CreateDataset(project_id=project.id, name=CLOCK_DATASET, description=CLOCK_DESCRIPTION)
            )
            self._clocks[project.id] = cached
        return cached

    def _tick_clock(self, dataset: DatasetRef) -> None:
        """Replace this dataset's row in the clock dataset: a transaction id later than the delete.

        Braintrust transaction ids grow with time across the organization, and reading a dataset with
        `version=` returns it as of that transaction (braintrust SDK 0.48.1 `logger.py`, `Dataset` /
        `ObjectFetcher`), so any later transaction id is a version that includes the delete.
        """
        clock = self._clock(dataset)
        event = {"id": dataset.id, "input": {"dataset_id": dataset.id, "dataset": dataset.name}}
        self.client.insert_raw(
            f"/v1/dataset/{clock.id}/insert", self._encode({"events": [event]}), idempotent=True
        )

    def _clock_version(self, dataset: DatasetRef) -> int:
        clock = self._clock(dataset)
        for event in self.client.iter_dataset_events(clock.id):
            if event.get("id") == dataset.id:
                return int(event["_xact_id"])
        return 0

    def delete_all_rows(self, dataset: DatasetRef) -> None:
        self.delete_rows(dataset, [row.id for row in self.iter_rows(dataset)])

    def current_version(self, dataset: DatasetRef) -> str:
        """The head version: the largest `_xact_id` of any live row, as the SDK computes a dataset's
        version (braintrust SDK 0.48.1 `logger.py`, `ObjectFetcher.version`: max over every fetched
        record), or the clock transaction written after the last delete if that is later. "0" when the
        dataset never held a row."""
        newest = max((int(e["_xact_id"]) for e in self.client.iter_dataset_events(dataset.id)), default=0)
        head = max(newest, self._clock_version(dataset))
        return str(head) if head else EMPTY_VERSION

    # -- production logs --------------------------------------------------------------------------
    def copy_logs_to_dataset(
        self,
        dataset: DatasetRef,
        *,
        project: str | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
        sample_rate: float = 1.0,
        limit: int | None = None,
        expected_from: str = "output",
        seed: int = 0,
    ) -> int:
        """Copy sampled production log rows of `project` into `dataset`; returns the number copied.

        Root spans only. `where` filters events (e.g. `lambda e: e["scores"].get("thumbs_up") == 0`),
        `sample_rate` keeps a seeded random share, `limit` caps the count. The log row's `output` (or
        `expected`, per `expected_from`) becomes the row's `expected`; `origin` points back at the log.
        Rows keep the log row's id, so copying again updates instead of duplicating.
        """
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if expected_from not in ("output", "expected"):
            raise ConfigError(f"expected_from must be 'output' or 'expected', got {expected_from!r}")
        proj = self.project(project or dataset.project)
        rng = random.Random(seed)

        def picked() -> Iterator[tuple[str, bytes]]:
            taken = 0
            for event in self.client.iter_project_logs(proj.id):
                if limit is not None and taken >= limit:
                    return
                if event.get("is_root") is False or (where is not None and not where(event)):
                    continue
                if sample_rate < 1.0 and rng.random() >= sample_rate:
                    continue
                taken += 1
                row = {
                    "id": event["id"],
                    "input": event.get("input"),
                    "expected": event.get(expected_from),
                    "metadata": event.get("metadata") or {},
                    "tags": event.get("tags") or [],
                    "origin": {"object_type": "project_logs", "object_id": proj.id, "id": event["id"]},
                }
                yield event["id"], self._encode(row)

        copied = {"n": 0}

        def counted() -> Iterator[tuple[str, bytes]]:
            for item in picked():
                copied["n"] += 1
                yield item

        self._send_batches(f"/v1/dataset/{dataset.id}/insert", counted(), total=0, what="log rows")
        return copied["n"]
