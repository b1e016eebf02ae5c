"""accounts: how the last background read of the CRM's employees and pipelines failed

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
depends_on = None
branch_labels = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("sync_failure", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("sync_failed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("sync_failed_at")
        batch.drop_column("sync_failure")
