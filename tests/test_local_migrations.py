"""Schema versions: a SQLite file written before the schema was versioned is adopted and upgraded in place,
keeping its data; a database already at the newest revision is left alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from dagster_evals import LocalPlatform
from dagster_evals.backends.local.store import VERSION_TABLE, head_revision

# The tables as the first release created them (by hand-written SQL, with no version table).
FIRST_RELEASE_SCHEMA = """
CREATE TABLE datasets (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    version INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, UNIQUE (project, name));
CREATE TABLE dataset_versions (
    dataset_id TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    rows_written INTEGER NOT NULL, rows_removed INTEGER NOT NULL, PRIMARY KEY (dataset_id, version));
CREATE TABLE dataset_rows (
    dataset_id TEXT NOT NULL, row_id TEXT NOT NULL, version_added INTEGER NOT NULL,
    version_removed INTEGER, content_hash TEXT NOT NULL, input TEXT NOT NULL, expected TEXT,
    metadata TEXT NOT NULL, tags TEXT NOT NULL, PRIMARY KEY (dataset_id, row_id, version_added));
CREATE INDEX dataset_rows_live ON dataset_rows (dataset_id, version_removed, row_id);
CREATE TABLE experiments (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, dataset_id TEXT,
    dataset_version TEXT, base_experiment_id TEXT, status TEXT NOT NULL, metadata TEXT NOT NULL,
    tags TEXT NOT NULL, report TEXT, created_at TEXT NOT NULL);
CREATE TABLE experiment_rows (
    experiment_id TEXT NOT NULL, row_id TEXT NOT NULL, trial INTEGER NOT NULL, input TEXT,
    expected TEXT, output TEXT, scores TEXT NOT NULL, scorer_errors TEXT NOT NULL, error TEXT,
    latency_s REAL, metadata TEXT NOT NULL, PRIMARY KEY (experiment_id, row_id, trial));
CREATE TABLE prompts (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, slug TEXT NOT NULL, name TEXT NOT NULL,
    created_at TEXT NOT NULL, UNIQUE (project, slug));
CREATE TABLE prompt_versions (
    prompt_id TEXT NOT NULL, version INTEGER NOT NULL, content TEXT NOT NULL, content_hash TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (prompt_id, version));
INSERT INTO datasets VALUES ('d1', 'default', 'faq', NULL, 1, '2026-01-01T00:00:00+00:00');
INSERT INTO dataset_versions VALUES ('d1', 1, '2026-01-01T00:00:00+00:00', 1, 0);
INSERT INTO dataset_rows VALUES ('d1', 'r1', 1, NULL, 'h1', '"hello"', '"hi"', '{}', '[]');
"""


def test_a_first_release_file_is_adopted_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(FIRST_RELEASE_SCHEMA)
    platform = LocalPlatform(path)
    ds = platform.ensure_dataset("faq")
    assert ds.id == "d1" and [(r.id, r.input) for r in platform.iter_rows(ds)] == [("r1", "hello")]
    platform.upsert_rows(ds, [r.model_copy(update={"id": "r2"}) for r in platform.iter_rows(ds)])
    assert platform.current_version(ds) == "2"
    platform.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [(head_revision(),)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_every_engine_ends_on_the_newest_revision_and_reopening_changes_nothing(database_url: str) -> None:
    LocalPlatform(database_url).close()
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [(head_revision(),)]
    assert {"datasets", "dataset_rows", "staged_rows", "dataset_stages", "experiments", "prompts"} <= tables
    LocalPlatform(database_url).close()
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {VERSION_TABLE}")).scalar_one() == 1
    engine.dispose()
