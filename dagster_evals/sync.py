"""Idempotent dataset sync: diff the source against the platform, send only the difference, verify counts."""

from __future__ import annotations

from collections.abc import Sequence

from dagster_evals.backends.base import EvalPlatform, ProgressFn, _quiet
from dagster_evals.errors import CountMismatchError
from dagster_evals.models import DatasetRef, DatasetRow, SyncResult
from dagster_evals.progress import sync_progress


def sync_rows(
    platform: EvalPlatform,
    dataset: DatasetRef,
    rows: Sequence[DatasetRow],
    *,
    progress: ProgressFn = _quiet,
) -> SyncResult:
    """Make the dataset hold exactly `rows`.

    Rows already present with the same content are not sent again; rows whose content changed are
    overwritten; rows gone from the source are removed; ids the platform holds more than once are
    rewritten once. Afterwards the row count on the platform must equal the source count.

    The writes go through `platform.staged_sync(dataset)`: on a platform that stages (the local backend),
    the whole sync becomes visible as one new version when it is published, or not at all.
    """
    present: dict[str, str] = {}
    repeated: set[str] = set()
    for stored in platform.iter_rows(dataset):
        if stored.id in present:
            repeated.add(stored.id)
        present[stored.id] = stored.content_hash

    source_ids = {row.id for row in rows}
    added = [row for row in rows if row.id not in present]
    changed = [
        row
        for row in rows
        if row.id in present and (present[row.id] != row.content_hash or row.id in repeated)
    ]
    removed = [row_id for row_id in present if row_id not in source_ids]
    unchanged = len(rows) - len(added) - len(changed)

    to_write = added + changed
    requests = 0
    if to_write or removed:
        stage = platform.staged_sync(dataset)
        try:
            if to_write:
                progress(
                    f"sending {len(to_write)} of {len(rows)} rows ({len(added)} new, {len(changed)} changed)"
                )
                requests += stage.upsert_rows(
                    to_write,
                    replace={row.id for row in changed},
                    progress=sync_progress(progress, total=len(to_write), what=f"sync {dataset.name}"),
                )
            if removed:
                progress(f"removing {len(removed)} rows no longer in the source")
                requests += stage.delete_rows(removed)
            requests += stage.publish()
        except BaseException:
            stage.discard()
            raise
        if stage.atomic:
            progress("published the sync as one new version")

    count = platform.count_rows(dataset)
    if count != len(rows):
        raise CountMismatchError(
            f"dataset {dataset.name!r} on {dataset.platform} holds {count} rows after the sync, "
            f"but the source has {len(rows)} (sent {len(to_write)}, removed {len(removed)})",
            metadata={"rows_on_platform": count, "rows_in_source": len(rows)},
        )
    return SyncResult(
        dataset=dataset,
        version=platform.current_version(dataset),
        rows_total=len(rows),
        added=len(added),
        updated=len(changed),
        removed=len(removed),
        unchanged=unchanged,
        rows_sent=len(to_write),
        requests_sent=requests,
    )
