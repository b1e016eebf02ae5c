"""chat panel: a per-account change stamp, so an unchanged poll skips the list query

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
depends_on = None
branch_labels = None


def upgrade() -> None:
    op.create_table(
        "chat_list_stamps",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_chat_list_stamps_account_id_accounts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", name="pk_chat_list_stamps"),
    )


def downgrade() -> None:
    op.drop_table("chat_list_stamps")
