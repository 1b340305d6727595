"""Keywords AI datasets and their rows: find or create, sync rows exactly, delete, version by digest.

Writes and the platform's timing:
- Bulk inserts are not safe to repeat and a request can be applied after the client gave up on it (a
  slow network), so nothing is resent blindly: after an ambiguous failure the rows written are
  reconciled — the logs holding them are listed (by the content-hash row id in their metadata), extra
  copies and stale versions are deleted, missing rows are inserted, and the listing is repeated after a
  settle delay until it is clean twice in a row. If it does not converge, the sync fails saying how to
  repair.
- Removing logs by filter is asynchronous ("…being removed in the background"): every removal is
  followed by a bounded poll until the removed logs are no longer listed, so the count check that
  follows a sync sees the settled dataset.
- Metadata filters are spelled as the server was seen to honour them (`shapes.py`): a spelling
  it ignores would match nothing, and a removal would silently remove nothing.
- Changed rows are written first and their old versions removed afterwards (by row id and old hash),
  so a row is never missing from the dataset mid-sync.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from dagster_evals.backends.base import ProgressFn, _quiet, rows_digest
from dagster_evals.backends.keywordsai.client import KeywordsAIClient
from dagster_evals.backends.keywordsai.models import CreateDatasetRequest, DatasetLogInput, where
from dagster_evals.backends.keywordsai.rows import HASH_KEY, ROW_ID_KEY, log_from_row, row_from_log
from dagster_evals.backends.keywordsai.shapes import ServerShapes
from dagster_evals.engine.errors import (
    ConfigError,
    CountMismatchError,
    DagsterEvalsError,
    InputError,
    NotFoundError,
    PlatformError,
)
from dagster_evals.engine.models import DatasetRef, DatasetRow, Snapshot
from dagster_evals.engine.row_index import SortedPairs

T = TypeVar("T")
CHUNK = 100


class DatasetChangedError(DagsterEvalsError):
    """The dataset's rows no longer match the snapshot an eval was asked to run on."""


def version_of(digest: str) -> str:
    """The version id of a dataset whose rows have this digest."""
    return digest[:16]


def ambiguous(exc: PlatformError) -> bool:
    """The request may have been applied (no response, a cut-off body, 5xx, 408)."""
    return exc.status is None or exc.status >= 500 or exc.status in (408, 425)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DatasetOps:
    """Dataset operations of `KeywordsAIPlatform` (a mixin; the facade holds the settings)."""

    client: KeywordsAIClient
    page_size: int
    batch_size: int
    max_request_bytes: int
    settle_delay_s: float
    settle_timeout_s: float
    max_reconcile_rounds: int
    max_create_attempts: int
    _foreign_ids: dict[str, set[str]]
    _shapes: ServerShapes
    _insert_failures: Counter[str]
    _ref: Callable[[str, str], DatasetRef]

    # -- datasets ---------------------------------------------------------------------------------------
    def find_dataset(self, name: str) -> DatasetRef | None:
        """The dataset called `name` (the oldest if several share it), or None."""
        matches = [d for d in self.client.iter_datasets(page_size=self.page_size) if d.name == name]
        if not matches:
            return None
        oldest = min(matches, key=lambda d: (d.created_at is None, d.created_at or datetime.min, d.id))
        return self._ref(oldest.id, oldest.name)

    def _create_once(self, create: Callable[[], T], find: Callable[[], T | None]) -> T:
        """Send a create that is not safe to repeat so that it takes effect once.

        After an ambiguous failure the request may still land: `find` looks for its result over a settle
        window (polling), and only when nothing appeared is the request sent again.
        """
        attempt = 0
        limit = max(self.max_create_attempts, self.client.http.retry.max_retries + 1)
        while True:
            attempt += 1
            try:
                return create()
            except PlatformError as exc:
                if not ambiguous(exc) or attempt >= limit:
                    raise
            deadline = time.monotonic() + self.settle_timeout_s
            for poll in range(3):
                found = find()
                if found is not None:
                    return found
                if time.monotonic() >= deadline:
                    break
                time.sleep(self.settle_delay_s * (poll + 1))

    def ensure_dataset(
        self, name: str, *, project: str | None = None, description: str | None = None
    ) -> DatasetRef:
        """Find the dataset by name or create it empty (`project` is ignored: datasets belong to the
        organization of the API key). A create lost in transit is looked for before it is sent again;
        if two datasets of this name exist afterwards, the oldest is used and empty newer ones removed."""
        if not name:
            raise ConfigError("a dataset needs a non-empty name")
        found = self.find_dataset(name)
        if found is not None:
            if description is not None:
                self.client.update_dataset(found.id, description=description)
            return found
        request = CreateDatasetRequest(name=name, description=description, is_empty=True)
        created = self._create_once(
            lambda: self._ref(*_id_name(self.client.create_dataset(request))), lambda: self.find_dataset(name)
        )
        return self._settle_dataset(name, created)

    def _settle_dataset(self, name: str, created: DatasetRef) -> DatasetRef:
        same = [d for d in self.client.iter_datasets(page_size=self.page_size) if d.name == name]
        if len(same) <= 1:
            return created
        same.sort(key=lambda d: (d.created_at is None, d.created_at or datetime.min, d.id))
        for extra in same[1:]:
            if not extra.log_count:
                self.client.delete_dataset(extra.id)
        return self._ref(same[0].id, same[0].name)

    def update_dataset(
        self, dataset: DatasetRef, *, name: str | None = None, description: str | None = None
    ) -> DatasetRef:
        """Rename a dataset and/or change its description (PATCH)."""
        updated = self.client.update_dataset(dataset.id, name=name, description=description)
        return self._ref(updated.id, updated.name)

    def delete_dataset(self, dataset: DatasetRef) -> None:
        """Delete the dataset and its logs."""
        self.client.delete_dataset(dataset.id)

    def delete_logs_where(self, dataset: DatasetRef, filters: Mapping[str, Any]) -> dict[str, Any]:
        """Remove the dataset's logs matching `filters`, and wait until they are gone."""
        answer = self.client.remove_dataset_logs(dataset.id, filters=filters)
        self._wait_gone(dataset.id, filters)
        return answer

    # -- reading ----------------------------------------------------------------------------------------
    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        """Stream the dataset's rows. With `version`, raise `DatasetChangedError` at the end of the stream
        when the rows read do not have that version (the server keeps no older versions)."""
        with SortedPairs() as pairs:  # on disk past a bound: memory stays flat in the row count
            for log in self.client.iter_dataset_logs(dataset.id, page_size=self.page_size):
                row, ours = row_from_log(log)
                if not ours:
                    self._foreign_ids.setdefault(dataset.id, set()).add(row.id)
                if version is not None:
                    pairs.add(row.id, row.content_hash)
                yield row
            if version is None:
                return
            _, digest = pairs.digest()
            if version_of(digest) != version:
                raise DatasetChangedError(
                    f"dataset {dataset.name!r} on Keywords AI is at version {version_of(digest)}, not "
                    f"{version}: its rows changed and Keywords AI keeps no older versions"
                )

    def count_rows(self, dataset: DatasetRef, *, version: str | None = None) -> int:
        """Number of logs in the dataset (one request; `version` is not checked)."""
        return self.client.count_dataset_logs(dataset.id)

    def current_version(self, dataset: DatasetRef) -> str:
        """The digest-derived version of the dataset's current rows (reads every row)."""
        _, digest = rows_digest(self.iter_rows(dataset))
        return version_of(digest)

    def snapshot(self, dataset: DatasetRef) -> Snapshot:
        count, digest = rows_digest(self.iter_rows(dataset))
        return Snapshot(dataset=dataset, version=version_of(digest), row_count=count, digest=digest)

    def _metadata_field(self, dataset_id: str, key: str, values: Sequence[str]) -> str:
        return self._shapes.metadata_field_for(self.client, dataset_id, key, values)

    # -- removing ---------------------------------------------------------------------------------------
    def _wait_gone(self, dataset_id: str, filters: Mapping[str, Any]) -> None:
        """Poll until no log matches `filters` (removal runs in the background), at most
        `settle_timeout_s`; then fail saying the removal has not finished."""
        deadline = time.monotonic() + self.settle_timeout_s
        delay = max(self.settle_delay_s, 0.0)
        while True:
            left = self.client.count_dataset_logs(dataset_id, filters=filters)
            if left == 0:
                return
            if time.monotonic() >= deadline:
                raise CountMismatchError(
                    f"Keywords AI still lists {left} logs of dataset {dataset_id} {self.settle_timeout_s:.0f}s "
                    "after they were removed (removal runs in the background); run the sync again later, or "
                    "raise settle_timeout_s",
                    metadata={"logs_still_listed": left},
                )
            time.sleep(delay)
            delay = min(max(delay * 2, 0.05), 5.0)

    def delete_rows(self, dataset: DatasetRef, row_ids: Collection[str]) -> None:
        """Remove these rows and wait until they are no longer listed."""
        ids = sorted(set(row_ids))
        foreign = self._foreign_ids.get(dataset.id, set())
        for key, chosen in ((ROW_ID_KEY, [i for i in ids if i not in foreign]),
                            (None, [i for i in ids if i in foreign])):  # fmt: skip
            for chunk in chunks(chosen):
                # Rows being removed are on the dataset: their filter must match them.
                field = "unique_id" if key is None else self._metadata_field(dataset.id, key, chunk)
                filters = where(field, "in", list(chunk))
                self.client.remove_dataset_logs(dataset.id, filters=filters)
                self._wait_gone(dataset.id, filters)

    def delete_all_rows(self, dataset: DatasetRef) -> None:
        self.client.remove_dataset_logs(dataset.id, delete_all=True)
        self._wait_gone(dataset.id, {})

    # -- writing ----------------------------------------------------------------------------------------
    def _batches(self, keys: Sequence[str], logs: Sequence[DatasetLogInput]) -> list[tuple[int, int]]:
        """`(start, end)` ranges of the bulk requests; fails naming a row too big for any request."""
        overhead = len(b'{"logs": []}')
        batches: list[tuple[int, int]] = []
        start, size = 0, overhead
        for index, (key, log) in enumerate(zip(keys, logs, strict=True)):
            encoded = len(json.dumps(log.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")) + 2
            if overhead + encoded > self.max_request_bytes:
                raise InputError(
                    f"row {key!r} is {encoded} bytes once encoded, more than the {self.max_request_bytes} "
                    "bytes sent to Keywords AI in one request (max_request_bytes); shorten the row"
                )
            if index > start and (
                index - start >= self.batch_size or size + encoded > self.max_request_bytes
            ):
                batches.append((start, index))
                start, size = index, overhead
            size += encoded
        if start < len(keys):
            batches.append((start, len(keys)))
        return batches

    def _insert(self, dataset_id: str, keys: Sequence[str], logs: Sequence[DatasetLogInput],
                progress: ProgressFn, what: str = "rows") -> bool:  # fmt: skip
        """Bulk-insert in batches; True when every batch was certainly applied exactly once."""
        certain = True
        done = 0
        limit = self.client.http.retry.max_retries + 1
        for start, end in self._batches(keys, logs):
            try:
                result = self.client.bulk_create_dataset_logs(dataset_id, logs[start:end])
            except PlatformError as exc:
                if not ambiguous(exc):
                    raise
                # Not resent here: reconciliation adds what is missing. A row whose inserts keep failing
                # fails the sync once the retry budget is spent.
                self._insert_failures.update(keys[start:end])
                if max(self._insert_failures[k] for k in keys[start:end]) >= limit:
                    raise
                certain = False
                continue
            if result.error_count:
                details = "; ".join(
                    f"row {keys[start + e.index]!r}: {e.error or (e.model_extra or {}).get('detail')}"
                    for e in result.errors[:5]
                    if e.index is not None and start + e.index < end
                )
                raise InputError(
                    f"Keywords AI rejected {result.error_count} of {end - start} {what} in a batch"
                    + (f": {details}" if details else "")
                )
            certain = certain and result.success_count == end - start
            done += end - start
            progress(f"wrote {done}/{len(keys)} {what} to Keywords AI")
        return certain

    def _scan(self, dataset_id: str, key: str, wanted: Collection[str]) -> dict[str, list[tuple[str, Any]]]:
        """`{key value: [(log id, stored hash), ...]}` of the logs holding these keys."""
        found: dict[str, list[tuple[str, Any]]] = {}
        for chunk in chunks(sorted(wanted)):
            filters = where(self._metadata_field(dataset_id, key, chunk), "in", list(chunk))
            for log in self.client.iter_dataset_logs(dataset_id, filters=filters, page_size=self.page_size):
                meta = log.metadata or {}
                found.setdefault(str(meta.get(key)), []).append((log.log_id, meta.get(HASH_KEY)))
        return found

    def _reconcile(self, dataset_id: str, key: str, wanted: Mapping[str, Any],
                   logs: Mapping[str, DatasetLogInput], confirm: bool, progress: ProgressFn) -> int:  # fmt: skip
        """Make the dataset hold exactly one log per wanted key (with the wanted hash, when not None).

        Returns the number of corrections made. With `confirm`, a clean listing must be seen twice,
        `settle_delay_s` apart (a write applied late shows up in between)."""
        corrections = 0
        clean = 0
        for _ in range(self.max_reconcile_rounds):
            found = self._scan(dataset_id, key, wanted)
            extras: list[str] = []
            missing: list[str] = []
            for value, digest in wanted.items():
                copies = found.get(value, [])
                good = [log_id for log_id, h in copies if digest is None or h == digest]
                extras += [log_id for log_id, h in copies if not (digest is None or h == digest)] + good[1:]
                if not good:
                    missing.append(value)
            if not extras and not missing:
                clean += 1
                if not confirm or clean >= 2:
                    return corrections
                time.sleep(self.settle_delay_s)
                continue
            clean, confirm = 0, True
            corrections += len(extras) + len(missing)
            progress(f"reconciling: removing {len(extras)} extra logs, adding {len(missing)} missing")
            for log_id in extras:
                with contextlib.suppress(NotFoundError):  # already gone (an earlier attempt landed)
                    self.client.delete_dataset_log(dataset_id, log_id)
            if missing:
                self._insert(dataset_id, missing, [logs[m] for m in missing], _quiet)
            time.sleep(self.settle_delay_s)
        raise CountMismatchError(
            f"dataset {dataset_id} on Keywords AI did not settle to exactly one log per row after "
            f"{self.max_reconcile_rounds} rounds (writes are still landing late); run the sync again — it "
            "removes duplicates and adds missing rows — or raise settle_delay_s",
            metadata={"rounds": self.max_reconcile_rounds},
        )

    def check_rows(self, rows: Sequence[DatasetRow]) -> None:
        """Fail on a row too big for one bulk request (`max_request_bytes`)."""
        self._batches([row.id for row in rows], [log_from_row(row) for row in rows])

    def upsert_rows(self, dataset: DatasetRef, rows: Sequence[DatasetRow], *,
                    replace: Collection[str] = (), progress: ProgressFn = _quiet) -> int:  # fmt: skip
        """Insert `rows` (batches of at most `batch_size` rows and `max_request_bytes` bytes), then remove
        the old versions of the `replace` ids; reconcile when a write's outcome is unknown. Every row is
        checked before the first request. Returns the number of requests sent."""
        logs = [log_from_row(row) for row in rows]
        keys = [row.id for row in rows]
        self._batches(keys, logs)
        self._insert_failures = Counter()
        before = self.client.http.requests_sent
        foreign = sorted(set(replace) & self._foreign_ids.get(dataset.id, set()))
        certain = self._insert(dataset.id, keys, logs, progress)
        for chunk in chunks(foreign):  # logs not written by dagster-evals: their id is the unique_id
            filters = where("unique_id", "in", list(chunk))
            self.client.remove_dataset_logs(dataset.id, filters=filters)
            self._wait_gone(dataset.id, filters)
        if not certain or replace:
            wanted = {row.id: row.content_hash for row in rows}
            fixed = self._reconcile(dataset.id, ROW_ID_KEY, wanted, dict(zip(keys, logs, strict=True)),
                                    confirm=not certain, progress=progress)  # fmt: skip
            if fixed:
                progress(f"reconciled {fixed} logs after writes whose outcome was unknown")
        return self.client.http.requests_sent - before


def _id_name(dataset: Any) -> tuple[str, str]:
    return dataset.id, dataset.name
