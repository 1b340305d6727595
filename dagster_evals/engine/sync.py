"""Idempotent dataset sync in bounded memory: diff the source against the platform, send only the
difference, verify counts.

A sync reads its source twice, chunk by chunk, and never holds it whole:

1. `scan_source` validates every row, checks it against the platform's limits, and records each row's id
   and content hash in a temporary on-disk index (`dagster_evals.engine.row_index.SyncIndex`), failing on
   duplicate ids or an empty source before anything is written.
2. `sync_rows` adds the platform's id → content hash map to the index, marks each source row new, changed
   or unchanged, then reads the source again and sends the new and changed rows in chunks, removes the ids
   gone from the source, publishes, and checks the row count.

Memory is bounded by the chunk size (`SYNC_CHUNK_ROWS`), not by the number of rows. The index takes
disk space instead (roughly 250 bytes a row, in the temporary directory: `$TMPDIR` moves it) and is
removed when the sync ends.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from dagster_evals.engine.errors import CountMismatchError, InputError, SyncConflictError
from dagster_evals.engine.models import DatasetRef, DatasetRow, SyncResult
from dagster_evals.engine.platform import EvalPlatform, ProgressFn, StagedSync, _quiet
from dagster_evals.engine.progress import _COUNT, ProgressReporter
from dagster_evals.engine.row_index import SyncIndex
from dagster_evals.engine.sources import RowSource, duplicate_keys_error, empty_source_error

SYNC_CHUNK_ROWS = 5_000  # rows read, checked and sent at a time
DELETE_CHUNK_IDS = 10_000  # ids removed per call to the platform
SYNC_ATTEMPTS = 3  # diffs against a version another sync replaced before this one could publish
UNGUARDED_SYNC = (
    "writes a sync straight through, so two syncs of one dataset at once mix their rows: if another sync "
    "of this dataset ran at the same time, run them one at a time (e.g. EvalSuite(pool=...)) and sync again"
)
T = TypeVar("T")
RowCheck = Callable[[Sequence[DatasetRow]], None]


@dataclass(frozen=True)
class SequenceSource:
    """Rows already in memory, as a `RowSource` (places read `row 1`, `row 2`, …)."""

    rows: Sequence[DatasetRow]

    def describe(self) -> str:
        return "rows"

    def read(self) -> Iterator[tuple[str, DatasetRow]]:
        for number, row in enumerate(self.rows, start=1):
            yield f"row {number}", row


@dataclass
class ScannedSource:
    """A source read once and found valid: its row count, and each row's id and hash in `index`.

    Close it (or use it as a context manager) to remove the index file.
    """

    source: RowSource
    index: SyncIndex
    rows_total: int

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> ScannedSource:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def scan_source(
    source: RowSource,
    *,
    check: RowCheck | None = None,
    allow_empty: bool = False,
    chunk_rows: int = SYNC_CHUNK_ROWS,
) -> ScannedSource:
    """Read and validate every row of `source` in chunks, recording ids and hashes on disk.

    Args:
        source: The rows (a JSONL/CSV file source, a callable's rows, …).
        check: Called with each chunk of rows; raises on a row the platform would refuse (e.g.
            `EvalPlatform.check_rows`), so a sync fails before its first write.
        allow_empty: Accept a source without rows (a sync then empties the dataset).
        chunk_rows: Rows held in memory at a time.

    Raises:
        InputError: A malformed row (naming its line), duplicate ids (naming every place), or no rows.

    Examples:
        >>> from dagster_evals.engine.sources import IterableSource
        >>> with scan_source(IterableSource(lambda: [{"input": "a"}, {"input": "b"}])) as scanned:
        ...     scanned.rows_total
        2
    """
    index = SyncIndex()
    try:
        duplicates: dict[str, list[str]] = {}
        for chunk in chunked(source.read(), chunk_rows):
            if check is not None:
                check([row for _, row in chunk])
            repeats = index.add_source([(row.id, row.content_hash, place) for place, row in chunk])
            for row_id, first, place in repeats:
                if row_id in duplicates:
                    duplicates[row_id].append(place)
                elif len(duplicates) < 20:
                    duplicates[row_id] = [first, place]
        if not index.source_rows and not allow_empty:
            raise empty_source_error(source)
        repeated = index.duplicate_ids()
        if repeated:
            raise duplicate_keys_error(source, duplicates, repeated)
    except BaseException:
        index.close()
        raise
    return ScannedSource(source=source, index=index, rows_total=index.source_rows)


def sync_rows(
    platform: EvalPlatform,
    dataset: DatasetRef,
    rows: Sequence[DatasetRow] | RowSource | ScannedSource,
    *,
    progress: ProgressFn = _quiet,
    chunk_rows: int = SYNC_CHUNK_ROWS,
) -> SyncResult:
    """Make the dataset hold exactly `rows`, in memory bounded by `chunk_rows`.

    Rows already present with the same content are not sent again; rows whose content changed are
    overwritten; rows gone from the source are removed; ids the platform holds more than once are
    rewritten once. Afterwards the row count on the platform must equal the source count.

    `rows` may be rows in memory, a `RowSource` (read twice: once to validate and diff, once to send) or a
    source already checked by `scan_source`. The writes go through `platform.staged_sync(dataset)`: on a
    platform that stages (the local backend), the whole sync becomes visible as one new version when it is
    published, or not at all. Publishing is a compare-and-swap: when another sync published a version
    after this one read the dataset, nothing is published, and the sync diffs again against the new
    version and resends (up to `SYNC_ATTEMPTS` times; then `SyncConflictError`, the dataset left exactly at
    the other sync's version).

    Examples:
        >>> from dagster_evals import LocalPlatform
        >>> platform = LocalPlatform("sqlite://")
        >>> dataset = platform.ensure_dataset("qa")
        >>> sync_rows(platform, dataset, [DatasetRow.build(input="hi", id="1")]).added
        1
    """
    if isinstance(rows, ScannedSource):
        return _sync(platform, dataset, rows, progress, chunk_rows)
    in_memory = not isinstance(rows, RowSource)
    source = SequenceSource(rows) if in_memory else rows
    with scan_source(
        source, check=platform.check_rows, allow_empty=in_memory, chunk_rows=chunk_rows
    ) as scanned:
        return _sync(platform, dataset, scanned, progress, chunk_rows)


def _sync(
    platform: EvalPlatform, dataset: DatasetRef, scanned: ScannedSource, progress: ProgressFn, chunk_rows: int
) -> SyncResult:
    for attempt in range(1, SYNC_ATTEMPTS + 1):
        try:
            return _sync_once(platform, dataset, scanned, progress, chunk_rows)
        except SyncConflictError as exc:
            if attempt == SYNC_ATTEMPTS:
                raise SyncConflictError(
                    f"{exc.message}; gave up after {SYNC_ATTEMPTS} attempts, each outrun by another sync. "
                    "Nothing of this sync was published: the dataset holds the other sync's rows. Run the "
                    "syncs of one dataset one at a time (e.g. a Dagster concurrency pool)",
                    metadata={"attempts": SYNC_ATTEMPTS},
                ) from None
            progress(f"{exc.message}; diffing again against it (attempt {attempt + 1} of {SYNC_ATTEMPTS})")
    raise AssertionError("unreachable")


def _sync_once(
    platform: EvalPlatform, dataset: DatasetRef, scanned: ScannedSource, progress: ProgressFn, chunk_rows: int
) -> SyncResult:
    """Diff against the current version, send the difference, publish it only if that version is still
    current (on a platform that stages), then verify the count of the version published."""
    index = scanned.index
    # Where publishing is a compare-and-swap, the diff is pinned to the version it must still be current.
    base = platform.current_version(dataset) if platform.compare_and_swap_syncs else None
    index.load_present(platform.iter_row_hashes(dataset, version=base))
    added, changed, removed = index.plan()
    total = scanned.rows_total
    to_write = added + changed
    requests = 0
    version = base
    if to_write or removed:
        stage = platform.staged_sync(dataset, base_version=base)
        try:
            if to_write:
                progress(f"sending {to_write} of {total} rows ({added} new, {changed} changed)")
                reporter = ProgressReporter(f"sync {dataset.name}", to_write, log=progress, unit="rows")
                requests += _send(stage, scanned, reporter, progress, chunk_rows)
            if removed:
                progress(f"removing {removed} rows no longer in the source")
                for ids in index.removed_ids(DELETE_CHUNK_IDS):
                    requests += stage.delete_rows(ids)
            requests += stage.publish()
        except BaseException:
            stage.discard()
            raise
        if stage.atomic:
            progress("published the sync as one new version")
        version = (stage.version or base) if stage.atomic else None  # None: the latest

    # Counted at the version this sync published (or found current), not at whatever a later sync made.
    count = platform.count_rows(dataset, version=version)
    if count != total:
        # Without a compare-and-swap, another sync of this dataset at the same time writes into this one's.
        hint = "" if platform.compare_and_swap_syncs else f"; {dataset.platform} {UNGUARDED_SYNC}"
        raise CountMismatchError(
            f"dataset {dataset.name!r} on {dataset.platform} holds {count} rows after the sync, "
            f"but the source has {total} (sent {to_write}, removed {removed}){hint}",
            metadata={"rows_on_platform": count, "rows_in_source": total},
        )
    return SyncResult(
        dataset=dataset,
        version=version if version is not None else platform.current_version(dataset),
        rows_total=total,
        added=added,
        updated=changed,
        removed=removed,
        unchanged=total - to_write,
        rows_sent=to_write,
        requests_sent=requests,
    )


def _send(
    stage: StagedSync,
    scanned: ScannedSource,
    reporter: ProgressReporter,
    progress: ProgressFn,
    chunk_rows: int,
) -> int:
    """Read the source again and send its new and changed rows, `chunk_rows` at a time."""
    source = scanned.source
    requests = sent = 0
    chunk: list[DatasetRow] = []
    replace: set[str] = set()

    def flush() -> None:
        nonlocal requests, sent
        requests += stage.upsert_rows(
            chunk, replace=replace, progress=_chunk_progress(reporter, sent, len(chunk), progress)
        )
        sent += len(chunk)
        if reporter.done < sent:
            reporter.update(sent)
        chunk.clear()
        replace.clear()

    for read, planned in itertools.zip_longest(source.read(), scanned.index.actions()):
        if read is None or planned is None or (read[1].id, read[1].content_hash) != planned[:2]:
            where = read[0] if read is not None else "its end"
            raise InputError(
                f"{source.describe()}: the source changed while it was being synced (at {where}); "
                "sync again once it is no longer being written"
            )
        row, action = read[1], planned[2]
        if action is None:
            continue
        chunk.append(row)
        if action == "c":
            replace.add(row.id)
        if len(chunk) >= chunk_rows:
            flush()
    if chunk:
        flush()
    return requests


def _chunk_progress(reporter: ProgressReporter, offset: int, size: int, progress: ProgressFn) -> ProgressFn:
    """The backend's `N/size` messages for one chunk become the sync's overall count."""

    def report(message: str) -> None:
        match = _COUNT.search(message)
        if match is None or int(match.group(2)) != size:
            progress(message)
            return
        done = offset + int(match.group(1))
        if done > reporter.done:
            reporter.update(done)

    return report
