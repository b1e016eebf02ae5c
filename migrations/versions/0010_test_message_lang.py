"""test message: the language of the admin who asked for it, so the test client writes in it

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
depends_on = None
branch_labels = None


def upgrade() -> None:
    # Requests recorded before this column fall back to the admin's CRM language (``lang`` = "").
    op.add_column(
        "test_message_requests",
        sa.Column("lang", sa.String(length=8), nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("test_message_requests") as batch:
        batch.drop_column("lang")
