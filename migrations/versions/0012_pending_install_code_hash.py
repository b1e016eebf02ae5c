"""pending Kommo installs: the code's hash, so the same code for the same host is stored once

Rows stored before have no hash (their codes are sealed, and expire within 20 minutes anyway).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
depends_on = None
branch_labels = None


def upgrade() -> None:
    with op.batch_alter_table("pending_installs") as batch:
        batch.add_column(sa.Column("code_hash", sa.String(length=64), nullable=True))
    op.create_index("uq_pending_installs_code", "pending_installs", ["crm", "host", "code_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_pending_installs_code", table_name="pending_installs")
    with op.batch_alter_table("pending_installs") as batch:
        batch.drop_column("code_hash")
