"""Row results keep each scorer's reason for its score (an LLM judge's rationale)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("experiment_rows") as batch:
        batch.add_column(sa.Column("reasons", sa.Text, nullable=True))
