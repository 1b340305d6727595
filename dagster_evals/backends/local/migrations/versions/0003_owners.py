"""Owners and heartbeats of staged syncs and running eval reports, and why a report failed.

A later sync or eval removes a crashed sync's staged rows and marks a crashed eval's report failed once its
owner is known gone (see `dagster_evals.backends.local.leases`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    for table in ("dataset_stages", "experiments"):
        op.add_column(table, sa.Column("owner", sa.Text))
        op.add_column(table, sa.Column("heartbeat_at", sa.Text))
    op.add_column("experiments", sa.Column("failure", sa.Text))
