"""responsibility sync: Kommo webhook subscriptions, and when the CRM last confirmed a chat's responsible

Revision ID: 0006
Revises: 0001 (and needs 0002, whose chats table it references)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
# The chats table comes from 0002, a sibling branch off 0001: run after it, stay off its line.
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kommo_webhooks",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_enc", sa.LargeBinary(), nullable=False),
        sa.Column("destination", sa.String(length=500), nullable=False),
        sa.Column("events", sa.String(length=200), nullable=False),
        sa.Column("subscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_kommo_webhooks_account_id_accounts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", name="pk_kommo_webhooks"),
        sa.UniqueConstraint("token_hash", name="uq_kommo_webhooks_token_hash"),
    )
    op.create_table(
        "chat_crm_checks",
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["chat_id"], ["chats.id"], name="fk_chat_crm_checks_chat_id_chats", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_chat_crm_checks_account_id_accounts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("chat_id", name="pk_chat_crm_checks"),
    )
    op.create_index("ix_chat_crm_checks_account_id", "chat_crm_checks", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_chat_crm_checks_account_id", table_name="chat_crm_checks")
    op.drop_table("chat_crm_checks")
    op.drop_table("kommo_webhooks")
