"""page sessions: an epoch per account and per employee, signed into every session token

Raising it ends every session issued before: on uninstall and reinstall (account), and when an
employee's admin right or activity changes (employee).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
depends_on = None
branch_labels = None


def upgrade() -> None:
    for table in ("accounts", "employees"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("accounts", "employees"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("session_epoch")
