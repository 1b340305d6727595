"""Staged syncs: rows written by a sync wait in a stage and are published as one dataset version."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "dataset_stages",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("dataset_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_table(
        "staged_rows",
        sa.Column("stage_id", sa.Text, primary_key=True),
        sa.Column("row_id", sa.Text, primary_key=True),
        sa.Column("removed", sa.Boolean, nullable=False),
        sa.Column("content_hash", sa.Text),
        sa.Column("input", sa.Text),
        sa.Column("expected", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.Column("tags", sa.Text),
    )
