"""Which earlier eval report a run is compared with, read from Dagster's record of past materializations.

The default baseline is the last report that **passed its gate** (`"last_passing"`): a report that failed a
blocking check can never become the reference, so re-running a blocked regression cannot approve it.

A baseline that Dagster recorded but the eval backend can no longer read (deleted, expired, or a step that
runs against a different backend, e.g. a pod with its own SQLite file) **fails closed**: the
`no_regression` check fails and names the missing report and the backend, unless the suite sets
`allow_missing_baseline=True`. "No baseline yet" (the first run) passes and says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from dagster_evals.backends.base import EvalPlatform
from dagster_evals.engine.errors import DagsterEvalsError, NotFoundError
from dagster_evals.engine.gates import Baseline, describe_backend

BASELINE_PREVIOUS = "previous"
BASELINE_PREVIOUS_PARTITION = "previous_partition"
BASELINE_LAST_PASSING = "last_passing"
BASELINE_DEFAULT = BASELINE_LAST_PASSING
BASELINE_MODES = (BASELINE_LAST_PASSING, BASELINE_PREVIOUS, BASELINE_PREVIOUS_PARTITION)
# How many past materializations a baseline lookup reads at most.
BASELINE_LOOKBACK = 200


def recorded_platform(metadata: Mapping[str, Any]) -> Any:
    """The platform a report materialization names: in its `details` entry (since 0.2), else top-level."""
    details = metadata.get("details")
    if isinstance(details, Mapping) and details.get("platform"):
        return details["platform"]
    return metadata.get("platform")


def plain_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata values without their `MetadataValue` wrappers."""
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def report_records(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> Iterator[dict[str, Any]]:
    """Metadata of past materializations of `key` (optionally of one partition), newest first.

    Reads page by page (`BASELINE_LOOKBACK` a page) through the whole history, so a long series of failed
    reports cannot hide the last passing one. Each entry also carries `_partition` and `_run_id`.
    """
    records_filter = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    cursor = None
    while True:
        page = instance.fetch_materializations(records_filter, limit=BASELINE_LOOKBACK, cursor=cursor)
        for record in page.records:
            mat = record.asset_materialization
            if mat is not None:
                yield plain_metadata(mat.metadata) | {"_partition": mat.partition, "_run_id": record.run_id}
        if not page.has_more or not page.records:
            return
        cursor = page.cursor


def _candidates(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    mode: str,
    partition: str | None,
    partitions_def: dg.DynamicPartitionsDefinition | None,
    platform: str,
) -> Iterator[dict[str, Any]]:
    """Reports that could serve as baseline, best first: on `platform`, with a report id."""
    if mode == BASELINE_PREVIOUS_PARTITION and partition is not None and partitions_def is not None:
        keys = instance.get_dynamic_partitions(str(partitions_def.name))
        earlier = keys[: keys.index(partition)] if partition in keys else []
        found: Iterator[dict[str, Any]] = iter(())
        for previous in reversed(earlier):
            found = report_records(instance, key, previous)
            first = next(found, None)
            if first is not None:
                found = itertools.chain([first], found)
                break
    else:
        found = report_records(instance, key)
    for metadata in found:
        if mode == BASELINE_LAST_PASSING and metadata.get("gate_passed") is not True:
            continue
        if recorded_platform(metadata) == platform and metadata.get("report_id"):
            yield metadata


def resolve_baseline(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    *,
    suite_name: str,
    key: dg.AssetKey,
    mode: str | None,
    platform: EvalPlatform,
    partitions_def: dg.DynamicPartitionsDefinition | None = None,
    allow_missing: bool = False,
) -> Baseline:
    """The report to compare against, per `mode` (see `EvalSuite.baseline`).

    Example:
        >>> Baseline(report_id=None, note="no baseline yet").note
        'no baseline yet'
    """
    if mode is None:
        return Baseline(None, "baseline comparison is off (baseline=None)")
    if mode not in BASELINE_MODES:
        try:
            pinned = platform.get_eval_report(mode).id
            run_id = next(
                (
                    str(m["_run_id"])
                    for m in itertools.islice(report_records(context.instance, key), BASELINE_LOOKBACK)
                    if m.get("report_id") == pinned
                ),
                None,
            )
            return Baseline(pinned, f"pinned baseline {mode}", run_id=run_id)
        except NotFoundError as exc:
            raise DagsterEvalsError(
                f"suite {suite_name!r}: the pinned baseline {mode!r} does not exist on {platform.platform} "
                "(it may have expired or been deleted): pin another report id or use baseline='previous' "
                f"or {BASELINE_DEFAULT!r} ({describe_backend(platform)})"
            ) from exc
    partition = context.partition_key if context.has_partition_key else None
    skipped: list[str] = []
    for metadata in _candidates(context.instance, key, mode, partition, partitions_def, platform.platform):
        report_id = str(metadata["report_id"])
        try:
            platform.get_eval_report(report_id)
        except Exception as exc:  # a missing report and a backend that cannot answer both fail closed
            reason = "is not there" if isinstance(exc, NotFoundError) else f"could not be read ({exc})"
            problem = (
                f"baseline report {report_id} (recorded by run {str(metadata.get('_run_id'))[:8]}"
                + (f", partition {metadata['_partition']}" if metadata.get("_partition") else "")
                + f") {reason} on the {describe_backend(platform)}"
            )
            if not allow_missing:
                return Baseline(
                    None,
                    problem,
                    failure=(
                        f"{problem}. Every step must use the same eval backend (a shared database, not a "
                        "file per pod or host); to accept runs without this baseline set "
                        "allow_missing_baseline=True on the suite"
                    ),
                )
            context.log.warning(f"{problem}; allow_missing_baseline=True: trying an older one")
            skipped.append(report_id)
            continue
        note = f"baseline {report_id} ({mode})"
        if skipped:
            note += f"; skipped missing baseline(s) {', '.join(skipped)} (allow_missing_baseline=True)"
        return Baseline(report_id, note, run_id=str(metadata["_run_id"]) if metadata.get("_run_id") else None)
    if not skipped:
        what = "passing report" if mode == BASELINE_LAST_PASSING else "report"
        return Baseline(None, f"no baseline yet: no earlier {what} of this suite on {platform.platform}")
    return Baseline(
        None,
        f"no readable baseline: {', '.join(skipped)} missing on the {describe_backend(platform)} "
        "(allow_missing_baseline=True)",
    )
