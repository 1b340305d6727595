"""Versions carried through Dagster: each step reads exactly what its upstream materialization recorded.

- The snapshot asset pins the dataset version that the dataset materialization recorded (not whatever is
  newest on the backend now).
- The eval report evaluates the snapshot that the snapshot materialization recorded.

Both prefer the upstream materialization of the **same run**, so concurrent runs each use their own;
otherwise the latest one. Which one was used is recorded in the metadata. A recorded dataset that the
backend cannot read (a step with its own SQLite file, a deleted dataset) is an error naming the backend.

A dataset that lives on the platform rather than in Dagster (a `task=None` suite scoring production logs
sampled into a platform dataset, e.g. Keywords AI `create_dataset_from_logs`) has no dataset
materialization: the snapshot step passes `platform_dataset` and, only while the dataset asset has never
been materialized, pins that dataset's current version on the backend (and records that it did). Once a
dataset materialization exists, its recorded version is pinned and must still be readable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.baselines import BASELINE_LOOKBACK, describe_backend, plain_metadata
from dagster_evals.engine.errors import DagsterEvalsError, NotFoundError
from dagster_evals.engine.models import DatasetRef, Snapshot
from dagster_evals.engine.row_index import pairs_digest


@dataclass(frozen=True)
class Upstream:
    """The upstream materialization a step reads: its metadata and where it came from."""

    metadata: dict[str, Any]
    run_id: str
    same_run: bool
    described: str | None = None

    @property
    def source(self) -> str:
        """`this run` or `latest materialization (run 1a2b3c4d)`, for metadata and logs."""
        if self.described is not None:
            return self.described
        return "this run" if self.same_run else f"latest materialization (run {self.run_id[:8]})"


def upstream_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str) -> Upstream | None:
    """The materialization of `key` made by run `run_id`, else the latest one, else None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key), limit=BASELINE_LOOKBACK
    ).records
    chosen = next((r for r in records if r.run_id == run_id), None) or (records[0] if records else None)
    if chosen is None or chosen.asset_materialization is None:
        return None
    return Upstream(
        metadata=plain_metadata(chosen.asset_materialization.metadata),
        run_id=chosen.run_id,
        same_run=chosen.run_id == run_id,
    )


def _require(upstream: Upstream | None, key: dg.AssetKey, platform: EvalPlatform, what: str) -> Upstream:
    name = key.to_user_string()
    if upstream is None:
        raise DagsterEvalsError(f"no materialization of {name} yet: materialize it first ({what})")
    recorded = upstream.metadata.get("platform")
    if recorded != platform.platform:
        raise DagsterEvalsError(
            f"{name} was last materialized on {recorded} (run {upstream.run_id[:8]}), but this step's eval "
            f"resource is {platform.platform}: materialize {name} again"
        )
    return upstream


def _not_visible(dataset: DatasetRef, upstream: Upstream, key: dg.AssetKey, platform: EvalPlatform) -> str:
    return (
        f"dataset {dataset.name!r} (id {dataset.id}) recorded by {key.to_user_string()} in run "
        f"{upstream.run_id[:8]} is not on the {describe_backend(platform)}: every step must use the same "
        "eval backend (a shared database, not a file per pod or host)"
    )


def pin_dataset_version(
    instance: dg.DagsterInstance,
    run_id: str,
    dataset_key: dg.AssetKey,
    platform: EvalPlatform,
    project: str | None,
    *,
    platform_dataset: str | None = None,
) -> tuple[Snapshot, Upstream]:
    """A snapshot of the dataset version its upstream dataset materialization recorded.

    Fails when the backend cannot see that dataset, or when the version's row count differs from the
    count the sync recorded. With `platform_dataset` (the name of a dataset kept on the platform, for
    `task=None` suites) and no dataset materialization at all, pins that dataset's current version.
    """
    found = upstream_materialization(instance, dataset_key, run_id)
    if found is None and platform_dataset is not None:
        return pin_platform_dataset(dataset_key, platform, project, platform_dataset)
    upstream = _require(found, dataset_key, platform, "the snapshot pins the version it recorded")
    meta = upstream.metadata
    dataset = DatasetRef(
        platform=platform.platform,
        id=str(meta["dataset_id"]),
        name=str(meta["dataset_name"]),
        project=meta.get("dataset_project") or project or platform.default_project,
    )
    version = str(meta["dataset_version"])
    try:
        count, digest = pairs_digest(platform.iter_row_hashes(dataset, version=version))
    except NotFoundError:
        raise DagsterEvalsError(_not_visible(dataset, upstream, dataset_key, platform)) from None
    expected = meta.get("rows_total")
    if expected is not None and int(expected) != count:
        problem = (
            f"version {version} of dataset {dataset.name!r} has {count} rows on the "
            + describe_backend(platform)
        )
        raise DagsterEvalsError(
            f"{problem}, but {dataset_key.to_user_string()} recorded {expected} rows in run {upstream.run_id[:8]}"
            + (": " + _not_visible(dataset, upstream, dataset_key, platform) if count == 0 else "")
        )
    return Snapshot(dataset=dataset, version=version, row_count=count, digest=digest), upstream


def pin_platform_dataset(
    dataset_key: dg.AssetKey, platform: EvalPlatform, project: str | None, name: str
) -> tuple[Snapshot, Upstream]:
    """The current version of the platform dataset `name`, for a suite whose dataset Dagster never synced.

    On a backend that looks datasets up by name (Keywords AI) a missing dataset is an error; elsewhere the
    dataset of that name is used (created empty if missing; an empty snapshot fails the completeness and
    threshold checks).
    """
    find: Callable[[str], DatasetRef | None] | None = getattr(platform, "find_dataset", None)
    dataset = find(name) if find is not None else platform.ensure_dataset(name, project=project)
    if dataset is None:
        raise DagsterEvalsError(
            f"no materialization of {dataset_key.to_user_string()} yet and no dataset {name!r} on the "
            f"{describe_backend(platform)}: create the dataset on the platform (e.g. from production logs) "
            f"or materialize {dataset_key.to_user_string()} first"
        )
    try:
        snapshot = platform.snapshot(dataset)
    except NotFoundError:
        raise DagsterEvalsError(
            f"dataset {name!r} (id {dataset.id}) is not readable on the {describe_backend(platform)}"
        ) from None
    upstream = Upstream(
        metadata={},
        run_id="",
        same_run=False,
        described=f"the current version of {name!r} on {platform.platform} ({dataset_key.to_user_string()} "
        "was never materialized)",
    )
    return snapshot, upstream


def load_pinned_snapshot(
    instance: dg.DagsterInstance, run_id: str, snapshot_key: dg.AssetKey, platform: EvalPlatform
) -> tuple[Snapshot, Upstream]:
    """The snapshot recorded by the upstream snapshot materialization (this run's, else the latest)."""
    upstream = _require(
        upstream_materialization(instance, snapshot_key, run_id),
        snapshot_key,
        platform,
        "the eval runs on the snapshot it recorded",
    )
    meta = upstream.metadata
    snapshot = Snapshot(
        dataset=DatasetRef(
            platform=platform.platform,
            id=str(meta["dataset_id"]),
            name=str(meta["dataset_name"]),
            project=meta.get("dataset_project") or None,
        ),
        version=str(meta["snapshot_version"]),
        row_count=int(meta["row_count"]),
        digest=str(meta["digest"]),
    )
    return snapshot, upstream
