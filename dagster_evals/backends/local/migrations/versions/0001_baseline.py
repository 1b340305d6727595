"""Baseline schema: datasets with versioned rows, experiments with row results, prompt versions.

Files written before the schema was versioned already hold these tables; they are adopted as they are.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _create(existing: set[str], name: str, *columns: Any) -> None:
    if name not in existing:
        op.create_table(name, *columns)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    text, integer = sa.Text, sa.Integer
    _create(
        existing,
        "datasets",
        sa.Column("id", text, primary_key=True),
        sa.Column("project", text, nullable=False),
        sa.Column("name", text, nullable=False),
        sa.Column("description", text),
        sa.Column("version", integer, nullable=False, server_default="0"),
        sa.Column("created_at", text, nullable=False),
        sa.UniqueConstraint("project", "name"),
    )
    _create(
        existing,
        "dataset_versions",
        sa.Column("dataset_id", text, primary_key=True),
        sa.Column("version", integer, primary_key=True),
        sa.Column("created_at", text, nullable=False),
        sa.Column("rows_written", integer, nullable=False),
        sa.Column("rows_removed", integer, nullable=False),
    )
    if "dataset_rows" not in existing:
        op.create_table(
            "dataset_rows",
            sa.Column("dataset_id", text, primary_key=True),
            sa.Column("row_id", text, primary_key=True),
            sa.Column("version_added", integer, primary_key=True),
            sa.Column("version_removed", integer),
            sa.Column("content_hash", text, nullable=False),
            sa.Column("input", text, nullable=False),
            sa.Column("expected", text),
            sa.Column("metadata", text, nullable=False),
            sa.Column("tags", text, nullable=False),
        )
        op.create_index("dataset_rows_live", "dataset_rows", ["dataset_id", "version_removed", "row_id"])
    _create(
        existing,
        "experiments",
        sa.Column("id", text, primary_key=True),
        sa.Column("project", text, nullable=False),
        sa.Column("name", text, nullable=False),
        sa.Column("dataset_id", text),
        sa.Column("dataset_version", text),
        sa.Column("base_experiment_id", text),
        sa.Column("status", text, nullable=False),
        sa.Column("metadata", text, nullable=False),
        sa.Column("tags", text, nullable=False),
        sa.Column("report", text),
        sa.Column("created_at", text, nullable=False),
    )
    _create(
        existing,
        "experiment_rows",
        sa.Column("experiment_id", text, primary_key=True),
        sa.Column("row_id", text, primary_key=True),
        sa.Column("trial", integer, primary_key=True),
        sa.Column("input", text),
        sa.Column("expected", text),
        sa.Column("output", text),
        sa.Column("scores", text, nullable=False),
        sa.Column("scorer_errors", text, nullable=False),
        sa.Column("error", text),
        sa.Column("latency_s", sa.Float),
        sa.Column("metadata", text, nullable=False),
    )
    _create(
        existing,
        "prompts",
        sa.Column("id", text, primary_key=True),
        sa.Column("project", text, nullable=False),
        sa.Column("slug", text, nullable=False),
        sa.Column("name", text, nullable=False),
        sa.Column("created_at", text, nullable=False),
        sa.UniqueConstraint("project", "slug"),
    )
    _create(
        existing,
        "prompt_versions",
        sa.Column("prompt_id", text, primary_key=True),
        sa.Column("version", integer, primary_key=True),
        sa.Column("content", text, nullable=False),
        sa.Column("content_hash", text, nullable=False),
        sa.Column("created_at", text, nullable=False),
    )
