"""Embedded local backend: a SQLite file holding versioned datasets, experiments and prompt versions.

Every write to a dataset (an upsert batch or a delete) is one transaction and one new version; a row is
visible at version v when it was added at or before v and not removed at or before v, so a snapshot pins
a version and reads exactly the rows it had, whatever happens to the dataset later.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import Field

from dagster_evals.backends.base import EvalPlatform, EvalPlatformResource, ProgressFn, _quiet, rows_digest
from dagster_evals.errors import ConfigError, InputError, NotFoundError, pinned_dataset_gone
from dagster_evals.models import (
    DatasetRef,
    DatasetRow,
    EvalReport,
    EvalRequest,
    PromptVersion,
    RowResult,
    Snapshot,
    canonical_json,
    content_hash,
    utcnow,
)
from dagster_evals.runner import run_request_locally
from dagster_evals.scorers import resolve_local_scorers
from dagster_evals.summary import ReportBuilder

DEFAULT_PROJECT = "default"
DEFAULT_BATCH_SIZE = 500
PAGE_SIZE = 1000
ENV_DB_PATH = "DAGSTER_EVALS_LOCAL_DB"

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    version INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, UNIQUE (project, name));
CREATE TABLE IF NOT EXISTS dataset_versions (
    dataset_id TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    rows_written INTEGER NOT NULL, rows_removed INTEGER NOT NULL, PRIMARY KEY (dataset_id, version));
CREATE TABLE IF NOT EXISTS dataset_rows (
    dataset_id TEXT NOT NULL, row_id TEXT NOT NULL, version_added INTEGER NOT NULL,
    version_removed INTEGER, content_hash TEXT NOT NULL, input TEXT NOT NULL, expected TEXT,
    metadata TEXT NOT NULL, tags TEXT NOT NULL, PRIMARY KEY (dataset_id, row_id, version_added));
CREATE INDEX IF NOT EXISTS dataset_rows_live ON dataset_rows (dataset_id, version_removed, row_id);
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, dataset_id TEXT,
    dataset_version TEXT, base_experiment_id TEXT, status TEXT NOT NULL, metadata TEXT NOT NULL,
    tags TEXT NOT NULL, report TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiment_rows (
    experiment_id TEXT NOT NULL, row_id TEXT NOT NULL, trial INTEGER NOT NULL, input TEXT,
    expected TEXT, output TEXT, scores TEXT NOT NULL, scorer_errors TEXT NOT NULL, error TEXT,
    latency_s REAL, metadata TEXT NOT NULL, PRIMARY KEY (experiment_id, row_id, trial));
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, slug TEXT NOT NULL, name TEXT NOT NULL,
    created_at TEXT NOT NULL, UNIQUE (project, slug));
CREATE TABLE IF NOT EXISTS prompt_versions (
    prompt_id TEXT NOT NULL, version INTEGER NOT NULL, content TEXT NOT NULL, content_hash TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (prompt_id, version));
"""


def default_db_path() -> Path:
    """`$DAGSTER_EVALS_LOCAL_DB`, else `$DAGSTER_HOME/dagster_evals.sqlite`, else `./.dagster_evals/local.sqlite`."""
    if os.environ.get(ENV_DB_PATH):
        return Path(os.environ[ENV_DB_PATH])
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]) / "dagster_evals.sqlite"
    return Path.cwd() / ".dagster_evals" / "local.sqlite"


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class LocalPlatform(EvalPlatform):
    """`EvalPlatform` on an embedded SQLite file. Safe to share between threads and processes."""

    platform = "local"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        project: str = DEFAULT_PROJECT,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.path = Path(path) if path else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.default_project = project
        self.batch_size = batch_size
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._conn.executescript(SCHEMA)

    def __repr__(self) -> str:
        return f"LocalPlatform(path={str(self.path)!r}, project={self.default_project!r})"

    # -- plumbing ---------------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- datasets ---------------------------------------------------------------------------------
    def ensure_dataset(
        self, name: str, *, project: str | None = None, description: str | None = None
    ) -> DatasetRef:
        project = project or self.default_project
        if not name:
            raise ConfigError("a dataset needs a non-empty name")

        def work(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT id FROM datasets WHERE project = ? AND name = ?", (project, name)
            ).fetchone()
            if row:
                if description is not None:
                    conn.execute("UPDATE datasets SET description = ? WHERE id = ?", (description, row["id"]))
                return str(row["id"])
            dataset_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO datasets (id, project, name, description, created_at) VALUES (?, ?, ?, ?, ?)",
                (dataset_id, project, name, description, utcnow().isoformat()),
            )
            return dataset_id

        dataset_id = self._transaction(work)
        return DatasetRef(platform="local", id=dataset_id, name=name, project=project)

    def _dataset_version(self, conn: sqlite3.Connection, dataset: DatasetRef) -> int:
        row = conn.execute("SELECT version FROM datasets WHERE id = ?", (dataset.id,)).fetchone()
        if row is None:
            raise NotFoundError("local", 404, "GET", f"dataset/{dataset.id}", f"no dataset {dataset.name!r}")
        return int(row["version"])

    def _resolve_version(self, dataset: DatasetRef, version: str | None) -> int:
        with self._lock:
            current = self._dataset_version(self._conn, dataset)
        if version is None:
            return current
        try:
            return int(version)
        except ValueError:
            raise InputError(f"local dataset versions are integers, got {version!r}") from None

    def current_version(self, dataset: DatasetRef) -> str:
        return str(self._resolve_version(dataset, None))

    def iter_rows(self, dataset: DatasetRef, *, version: str | None = None) -> Iterator[DatasetRow]:
        at = self._resolve_version(dataset, version)
        last_id = ""
        while True:
            page = self._query(
                "SELECT row_id, content_hash, input, expected, metadata, tags FROM dataset_rows "
                "WHERE dataset_id = ? AND version_added <= ? AND (version_removed IS NULL OR version_removed > ?) "
                "AND row_id > ? ORDER BY row_id LIMIT ?",
                (dataset.id, at, at, last_id, PAGE_SIZE),
            )
            for r in page:
                yield DatasetRow(
                    id=r["row_id"],
                    input=_loads(r["input"]),
                    expected=_loads(r["expected"]),
                    metadata=_loads(r["metadata"]),
                    tags=_loads(r["tags"]),
                    content_hash=r["content_hash"],
                )
            if len(page) < PAGE_SIZE:
                return
            last_id = page[-1]["row_id"]

    def count_rows(self, dataset: DatasetRef, *, version: str | None = None) -> int:
        at = self._resolve_version(dataset, version)
        row = self._query(
            "SELECT COUNT(*) AS n FROM dataset_rows WHERE dataset_id = ? AND version_added <= ? "
            "AND (version_removed IS NULL OR version_removed > ?)",
            (dataset.id, at, at),
        )[0]
        return int(row["n"])

    def _new_version(self, conn: sqlite3.Connection, dataset: DatasetRef, written: int, removed: int) -> int:
        version = self._dataset_version(conn, dataset) + 1
        conn.execute("UPDATE datasets SET version = ? WHERE id = ?", (version, dataset.id))
        conn.execute(
            "INSERT INTO dataset_versions (dataset_id, version, created_at, rows_written, rows_removed) "
            "VALUES (?, ?, ?, ?, ?)",
            (dataset.id, version, utcnow().isoformat(), written, removed),
        )
        return version

    def upsert_rows(
        self,
        dataset: DatasetRef,
        rows: Sequence[DatasetRow],
        *,
        replace: Collection[str] = (),
        progress: ProgressFn = _quiet,
    ) -> int:
        transactions = 0
        started = time.monotonic()
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]

            def work(conn: sqlite3.Connection, batch: Sequence[DatasetRow] = batch) -> None:
                live = {
                    r["row_id"]: r["content_hash"]
                    for chunk in range(0, len(batch), 500)
                    for r in conn.execute(
                        "SELECT row_id, content_hash FROM dataset_rows WHERE dataset_id = ? "
                        "AND version_removed IS NULL AND row_id IN "
                        f"({','.join('?' * len(batch[chunk : chunk + 500]))})",
                        (dataset.id, *[row.id for row in batch[chunk : chunk + 500]]),
                    )
                }
                changed = [row for row in batch if live.get(row.id) != row.content_hash]
                if not changed:
                    return
                version = self._new_version(conn, dataset, len(changed), 0)
                conn.executemany(
                    "UPDATE dataset_rows SET version_removed = ? WHERE dataset_id = ? AND row_id = ? "
                    "AND version_removed IS NULL",
                    [(version, dataset.id, row.id) for row in changed if row.id in live],
                )
                conn.executemany(
                    "INSERT INTO dataset_rows (dataset_id, row_id, version_added, version_removed, "
                    "content_hash, input, expected, metadata, tags) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                    [
                        (
                            dataset.id,
                            row.id,
                            version,
                            row.content_hash,
                            canonical_json(row.input),
                            None if row.expected is None else canonical_json(row.expected),
                            canonical_json(row.metadata),
                            canonical_json(row.tags),
                        )
                        for row in changed
                    ],
                )

            self._transaction(work)
            transactions += 1
            done = min(start + self.batch_size, len(rows))
            if len(rows) > self.batch_size:
                elapsed = time.monotonic() - started
                eta = elapsed / done * (len(rows) - done)
                progress(f"wrote {done}/{len(rows)} rows ({elapsed:.1f}s elapsed, ETA {eta:.1f}s)")
        return transactions

    def delete_rows(self, dataset: DatasetRef, row_ids: Collection[str]) -> None:
        ids = list(row_ids)
        if not ids:
            return

        def work(conn: sqlite3.Connection) -> None:
            version = self._new_version(conn, dataset, 0, len(ids))
            conn.executemany(
                "UPDATE dataset_rows SET version_removed = ? WHERE dataset_id = ? AND row_id = ? "
                "AND version_removed IS NULL",
                [(version, dataset.id, row_id) for row_id in ids],
            )

        self._transaction(work)

    def delete_all_rows(self, dataset: DatasetRef) -> None:
        def work(conn: sqlite3.Connection) -> None:
            live = conn.execute(
                "SELECT COUNT(*) AS n FROM dataset_rows WHERE dataset_id = ? AND version_removed IS NULL",
                (dataset.id,),
            ).fetchone()["n"]
            version = self._new_version(conn, dataset, 0, int(live))
            conn.execute(
                "UPDATE dataset_rows SET version_removed = ? WHERE dataset_id = ? AND version_removed IS NULL",
                (version, dataset.id),
            )

        self._transaction(work)

    def snapshot(self, dataset: DatasetRef) -> Snapshot:
        version = self.current_version(dataset)
        count, digest = rows_digest(self.iter_rows(dataset, version=version))
        return Snapshot(dataset=dataset, version=version, row_count=count, digest=digest)

    def list_dataset_versions(self, dataset: DatasetRef) -> list[dict[str, Any]]:
        """Every version of a dataset with the number of rows it wrote and removed, oldest first."""
        return [
            dict(r)
            for r in self._query(
                "SELECT version, created_at, rows_written, rows_removed FROM dataset_versions "
                "WHERE dataset_id = ? ORDER BY version",
                (dataset.id,),
            )
        ]

    # -- evals ------------------------------------------------------------------------------------
    def run_eval(self, request: EvalRequest, *, progress: ProgressFn = _quiet) -> EvalReport:
        scorers = resolve_local_scorers(request.scorers)
        snapshot = request.snapshot
        try:
            self._resolve_version(snapshot.dataset, snapshot.version)
        except NotFoundError as exc:
            raise pinned_dataset_gone(exc, snapshot.dataset.name) from None
        project = snapshot.dataset.project or self.default_project
        baseline_scores: dict[str, dict[str, float]] = {}
        baseline_name = None
        if request.baseline_id:
            baseline = self.get_eval_report(request.baseline_id)
            baseline_name = baseline.name
            baseline_scores = self.report_row_scores(request.baseline_id)
        experiment_id = uuid.uuid4().hex
        now = utcnow().isoformat()
        self._transaction(
            lambda conn: conn.execute(
                "INSERT INTO experiments (id, project, name, dataset_id, dataset_version, base_experiment_id, "
                "status, metadata, tags, created_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    experiment_id,
                    project,
                    request.name,
                    snapshot.dataset.id,
                    snapshot.version,
                    request.baseline_id,
                    canonical_json(request.metadata),
                    canonical_json(request.tags),
                    now,
                ),
            )
        )
        builder = ReportBuilder([s.name for s in scorers])
        pending: list[RowResult] = []
        total = snapshot.row_count * request.trial_count
        done = {"n": 0}

        def flush() -> None:
            if not pending:
                return
            batch = list(pending)
            pending.clear()
            self._transaction(
                lambda conn: conn.executemany(
                    "INSERT OR REPLACE INTO experiment_rows (experiment_id, row_id, trial, input, expected, "
                    "output, scores, scorer_errors, error, latency_s, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            experiment_id,
                            r.row_id,
                            r.trial,
                            canonical_json(r.input),
                            canonical_json(r.expected),
                            canonical_json(r.output),
                            canonical_json(r.scores),
                            canonical_json(r.scorer_errors),
                            r.error,
                            r.latency_s,
                            canonical_json(r.metadata),
                        )
                        for r in batch
                    ],
                )
            )
            done["n"] += len(batch)
            progress(f"scored {done['n']}/{total} row trials")

        def on_result(result: RowResult) -> None:
            builder.add(result)
            pending.append(result)
            if len(pending) >= self.batch_size:
                flush()

        stats = run_request_locally(
            request, self.iter_rows(snapshot.dataset, version=snapshot.version), scorers, on_result
        )
        flush()
        report = builder.build_for(
            request,
            id=experiment_id,
            platform="local",
            duration_s=stats.duration_s,
            baseline_name=baseline_name,
            baseline_row_scores=baseline_scores or None,
        )
        self._transaction(
            lambda conn: conn.execute(
                "UPDATE experiments SET status = 'completed', report = ? WHERE id = ?",
                (report.model_dump_json(), experiment_id),
            )
        )
        return report

    def get_eval_report(self, report_id: str) -> EvalReport:
        """A finished report by id (or by name: the newest report of that name)."""
        rows = self._query(
            "SELECT report FROM experiments WHERE (id = ? OR name = ?) AND report IS NOT NULL "
            "ORDER BY id = ? DESC, created_at DESC LIMIT 1",
            (report_id, report_id, report_id),
        )
        if not rows:
            raise NotFoundError(
                "local", 404, "GET", f"experiment/{report_id}", "no finished eval report with this id or name"
            )
        return EvalReport.model_validate_json(rows[0]["report"])

    def report_row_scores(self, report_id: str) -> dict[str, dict[str, float]]:
        sums: dict[str, dict[str, list[float]]] = {}
        for r in self._query(
            "SELECT row_id, scores FROM experiment_rows WHERE experiment_id = ? AND error IS NULL",
            (report_id,),
        ):
            for name, value in json.loads(r["scores"]).items():
                if value is not None:
                    sums.setdefault(r["row_id"], {}).setdefault(name, []).append(float(value))
        return {row: {n: sum(v) / len(v) for n, v in scores.items()} for row, scores in sums.items()}

    def list_eval_reports(self, *, project: str | None = None, limit: int = 100) -> list[EvalReport]:
        """Finished eval reports of a project, newest first."""
        rows = self._query(
            "SELECT report FROM experiments WHERE project = ? AND report IS NOT NULL "
            "ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (project or self.default_project, limit),
        )
        return [EvalReport.model_validate_json(r["report"]) for r in rows]

    def iter_report_rows(self, report_id: str) -> Iterator[RowResult]:
        """Every row result of an eval report."""
        for r in self._query(
            "SELECT * FROM experiment_rows WHERE experiment_id = ? ORDER BY row_id, trial", (report_id,)
        ):
            yield RowResult(
                row_id=r["row_id"],
                trial=r["trial"],
                input=_loads(r["input"]),
                expected=_loads(r["expected"]),
                output=_loads(r["output"]),
                scores=json.loads(r["scores"]),
                scorer_errors=json.loads(r["scorer_errors"]),
                error=r["error"],
                latency_s=r["latency_s"],
                metadata=json.loads(r["metadata"]),
            )

    # -- prompts ----------------------------------------------------------------------------------
    def push_prompt_version(
        self, slug: str, content: dict[str, Any], *, project: str | None = None, name: str | None = None
    ) -> PromptVersion:
        """Create the prompt if needed and record `content` as its new version (unchanged content: no new
        version, the current one is returned)."""
        project = project or self.default_project
        digest = content_hash(content, None, {}, [])

        def work(conn: sqlite3.Connection) -> tuple[str, int, str]:
            row = conn.execute(
                "SELECT id FROM prompts WHERE project = ? AND slug = ?", (project, slug)
            ).fetchone()
            now = utcnow().isoformat()
            if row is None:
                prompt_id = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO prompts (id, project, slug, name, created_at) VALUES (?, ?, ?, ?, ?)",
                    (prompt_id, project, slug, name or slug, now),
                )
            else:
                prompt_id = row["id"]
            latest = conn.execute(
                "SELECT version, content_hash, created_at FROM prompt_versions WHERE prompt_id = ? "
                "ORDER BY version DESC LIMIT 1",
                (prompt_id,),
            ).fetchone()
            if latest is not None and latest["content_hash"] == digest:
                return prompt_id, int(latest["version"]), latest["created_at"]
            version = (int(latest["version"]) if latest else 0) + 1
            conn.execute(
                "INSERT INTO prompt_versions (prompt_id, version, content, content_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (prompt_id, version, canonical_json(content), digest, now),
            )
            return prompt_id, version, now

        prompt_id, version, created = self._transaction(work)
        return PromptVersion(
            platform="local",
            project=project,
            prompt_id=prompt_id,
            slug=slug,
            version=str(version),
            created_at=created,  # type: ignore[arg-type]
            content=content,
        )

    def list_prompt_versions(
        self,
        *,
        project: str | None = None,
        slug: str | None = None,
        newer_than: Mapping[str, str] | None = None,
        latest_only: bool = False,
    ) -> list[PromptVersion]:
        project = project or self.default_project
        sql = (
            "SELECT p.id, p.slug, v.version, v.content, v.created_at FROM prompts p "
            "JOIN prompt_versions v ON v.prompt_id = p.id WHERE p.project = ?"
        )
        params: list[Any] = [project]
        if slug is not None:
            sql += " AND p.slug = ?"
            params.append(slug)
        sql += " ORDER BY v.created_at, p.slug, v.version"
        return [
            PromptVersion(
                platform="local",
                project=project,
                prompt_id=r["id"],
                slug=r["slug"],
                version=str(r["version"]),
                created_at=r["created_at"],
                content=json.loads(r["content"]),
            )
            for r in self._query(sql, params)
        ]


class LocalEvalResource(EvalPlatformResource):
    """The embedded local backend: datasets, evals and prompts in a SQLite file. Needs no API key.

    Examples:
        .. code-block:: python

            import dagster as dg
            from dagster_evals import LocalEvalResource

            defs = dg.Definitions(resources={"evals": LocalEvalResource(path="evals.sqlite")})
    """

    path: str | None = Field(
        default=None,
        description=(
            "SQLite file. Default: $DAGSTER_EVALS_LOCAL_DB, else $DAGSTER_HOME/dagster_evals.sqlite, "
            "else ./.dagster_evals/local.sqlite."
        ),
    )
    project: str = Field(default=DEFAULT_PROJECT, description="Project that datasets and evals belong to.")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description="Rows written per transaction.")

    def connect(self) -> LocalPlatform:
        return LocalPlatform(self.path, project=self.project, batch_size=self.batch_size)

    def get_platform(self) -> LocalPlatform:
        return cast(LocalPlatform, super().get_platform())
