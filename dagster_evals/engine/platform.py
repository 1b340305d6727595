"""The port every platform implements: `EvalPlatform`, and `StagedSync`, what a dataset sync writes through.

The engine (sync, gates, review, triggers) talks to a platform only through this interface; the backends
(`dagster_evals.backends.local`, `.braintrust`, `.keywordsai`) implement it. Imports no Dagster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from dagster_evals.engine.models import (
    DatasetRef,
    DatasetRow,
    EvalReport,
    EvalRequest,
    PlatformName,
    PromptVersion,
    Snapshot,
)
from dagster_evals.engine.progress import ProgressFn, _quiet
from dagster_evals.engine.row_index import pairs_digest

__all__ = ["EvalPlatform", "ProgressFn", "StagedSync", "_quiet", "rows_digest"]


class EvalPlatform(ABC):
    """Datasets, snapshots, evals and prompt versions on one platform.

    Implementations: `LocalPlatform` (embedded SQLite or PostgreSQL), `BraintrustPlatform`, `KeywordsAIPlatform`.
    Assets, checks and sensors only ever talk to this interface.
    """

    platform: PlatformName
    default_project: str | None = None
    # Whether `staged_sync(..., base_version=)` publishes only while that version is current (then a sync
    # diffs against a pinned version and rebases when outrun). APIs that write straight through cannot.
    compare_and_swap_syncs = False

    # -- datasets ---------------------------------------------------------------------------------
    @abstractmethod
    def ensure_dataset(
        self, name: str, *, project: str | None = None, description: str | None = None
    ) -> DatasetRef:
        """Return the dataset called `name`, creating it if it does not exist."""

    @abstractmethod
    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        """Stream the dataset's rows (at `version`, or the latest), page by page."""

    def iter_row_hashes(
        self, dataset: DatasetRef, *, version: str | None = None
    ) -> Iterator[tuple[str, str]]:
        """Stream `(row id, content hash)` of the dataset's rows (at `version`, or the latest)."""
        for row in self.iter_rows(dataset, version=version):
            yield row.id, row.content_hash

    def check_rows(self, rows: Sequence[DatasetRow]) -> None:
        """Raise `InputError` for a row the platform would refuse (e.g. too big for one request).

        A sync checks every row before its first write; the default accepts everything.
        """

    @abstractmethod
    def upsert_rows(
        self,
        dataset: DatasetRef,
        rows: Sequence[DatasetRow],
        *,
        replace: Collection[str] = (),
        progress: ProgressFn = _quiet,
    ) -> int:
        """Write rows by id (batched); `replace` names ids already present that must be overwritten.

        Returns the number of requests (or transactions) it took.
        """

    @abstractmethod
    def delete_rows(self, dataset: DatasetRef, row_ids: Collection[str]) -> None:
        """Remove the rows with these ids."""

    @abstractmethod
    def delete_all_rows(self, dataset: DatasetRef) -> None:
        """Remove every row of the dataset (the dataset itself stays)."""

    @abstractmethod
    def current_version(self, dataset: DatasetRef) -> str:
        """The id of the dataset's latest version."""

    def staged_sync(self, dataset: DatasetRef, *, base_version: str | None = None) -> StagedSync:
        """Where a sync sends its writes; `publish()` makes them visible.

        The default writes straight through (each request is visible once the platform applies it), which
        is all an API without a staging area offers. A platform that can stage writes overrides this so a
        sync is published as one version or not at all, and, given `base_version` (the version the sync
        diffed against), publishes only while that version is still current (`SyncConflictError` if not).
        """
        return StagedSync(self, dataset)

    def count_rows(self, dataset: DatasetRef, *, version: str | None = None) -> int:
        """Number of rows (at `version`, or the latest)."""
        return sum(1 for _ in self.iter_rows(dataset, version=version))

    def snapshot(self, dataset: DatasetRef) -> Snapshot:
        """Pin the dataset's current version: version id, row count and content digest."""
        version = self.current_version(dataset)
        count, digest = pairs_digest(self.iter_row_hashes(dataset, version=version))
        return Snapshot(dataset=dataset, version=version, row_count=count, digest=digest)

    # -- evals ------------------------------------------------------------------------------------
    @abstractmethod
    def run_eval(self, request: EvalRequest, *, progress: ProgressFn = _quiet) -> EvalReport:
        """Run `request.task` and its scorers over the snapshot and return the finished report."""

    @abstractmethod
    def get_eval_report(self, report_id: str) -> EvalReport:
        """Fetch a finished (or running) eval report by id."""

    def report_row_scores(self, report_id: str) -> dict[str, dict[str, float]]:
        """Per-row mean scores of a report, for row-level baseline comparison (empty if unsupported)."""
        return {}

    def iter_report_row_scores(self, report_id: str) -> Iterator[tuple[str, dict[str, float]]]:
        """`(row id, scores)` of each scored (not errored) result of a report, streamed: one per trial,
        or one per row already averaged over its trials. `report_row_scores` averages these per row."""
        yield from self.report_row_scores(report_id).items()

    # -- prompts ----------------------------------------------------------------------------------
    @abstractmethod
    def list_prompt_versions(
        self,
        *,
        project: str | None = None,
        slug: str | None = None,
        newer_than: Mapping[str, str] | None = None,
        latest_only: bool = False,
    ) -> list[PromptVersion]:
        """Prompt versions of a project (optionally of one prompt), oldest first.

        `newer_than` maps prompt id → the newest version the caller already knows; a platform may then
        leave out versions up to it (and skip requests for prompts with nothing new). With `latest_only`,
        only the newest version of a prompt missing from `newer_than` is needed (its `content` may then be
        left empty and fetched later with `get_prompt_version`).
        """

    def get_prompt_version(
        self, slug: str, version: str, *, project: str | None = None
    ) -> PromptVersion | None:
        """One version of a prompt, or None when the platform has no such version."""
        for candidate in self.list_prompt_versions(project=project, slug=slug):
            if candidate.version == version:
                return candidate
        return None

    def close(self) -> None:
        """Release connections."""


class StagedSync:
    """The writes of one dataset sync, made visible by `publish()` (or dropped by `discard()`).

    This base class writes straight through to the platform, so `atomic` is False: readers may see the
    sync part-way. Subclasses with `atomic = True` stage every write and publish them as one version.

    Examples:
        .. code-block:: python

            stage = platform.staged_sync(dataset)
            try:
                stage.upsert_rows(rows)
                stage.delete_rows(["gone"])
                stage.publish()
            except BaseException:
                stage.discard()
                raise
    """

    atomic = False
    version: str | None = None  # the version `publish()` created, where the platform says

    def __init__(self, platform: EvalPlatform, dataset: DatasetRef) -> None:
        self.platform = platform
        self.dataset = dataset

    def upsert_rows(
        self, rows: Sequence[DatasetRow], *, replace: Collection[str] = (), progress: ProgressFn = _quiet
    ) -> int:
        """Write rows by id; returns the number of requests (or transactions) it took."""
        return self.platform.upsert_rows(self.dataset, rows, replace=replace, progress=progress)

    def delete_rows(self, row_ids: Collection[str]) -> int:
        """Remove rows by id; returns the number of requests (or transactions) it took."""
        self.platform.delete_rows(self.dataset, row_ids)
        return 1

    def publish(self) -> int:
        """Make the staged writes visible; returns the number of requests (or transactions) it took."""
        return 0

    def discard(self) -> None:
        """Drop whatever was staged and not published (writes already applied stay)."""


def rows_digest(rows: Iterable[DatasetRow]) -> tuple[int, str]:
    """Row count and order-independent digest of a stream of rows (sha256 over sorted id:hash pairs),
    in bounded memory (see `pairs_digest`)."""
    return pairs_digest((row.id, row.content_hash) for row in rows)
