"""conversations: clients, chats, messages, offers, gateway secrets, round-robin turns, CRM outbox

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    ref_table = target.split(".")[0]
    return sa.ForeignKeyConstraint(
        [column], [target], name=f"fk_{table}_{column}_{ref_table}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "gateway_secrets",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret_enc", sa.LargeBinary(), nullable=True),
        sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        _fk("gateway_secrets", "account_id", "accounts.id"),
        sa.PrimaryKeyConstraint("account_id", name="pk_gateway_secrets"),
    )

    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("crm_contact_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("clients", "account_id", "accounts.id"),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
        sa.UniqueConstraint("account_id", "key", name="uq_clients_account_key"),
    )

    op.create_table(
        "chats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("chat_type", sa.String(length=16), nullable=False),
        sa.Column("external_chat_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("assignment", sa.String(length=16), nullable=False),
        sa.Column("responsible_employee_id", sa.Integer(), nullable=True),
        sa.Column("crm_responsible_user_id", sa.String(length=64), nullable=True),
        sa.Column("claimed_by_employee_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_new_client", sa.Boolean(), nullable=False),
        sa.Column("crm_contact_id", sa.String(length=64), nullable=True),
        sa.Column("crm_entity_kind", sa.String(length=16), nullable=True),
        sa.Column("crm_entity_id", sa.String(length=64), nullable=True),
        sa.Column("crm_incoming_uid", sa.String(length=64), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_message_preview", sa.String(length=200), nullable=False),
        sa.Column("last_direction", sa.String(length=4), nullable=False),
        sa.Column("unanswered", sa.Boolean(), nullable=False),
        sa.Column("unanswered_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("chats", "account_id", "accounts.id"),
        _fk("chats", "channel_id", "channels.id"),
        _fk("chats", "client_id", "clients.id"),
        _fk("chats", "responsible_employee_id", "employees.id", "SET NULL"),
        _fk("chats", "claimed_by_employee_id", "employees.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_chats"),
        sa.UniqueConstraint("account_id", "channel_id", "chat_type", "external_chat_id", name="uq_chats_channel_chat"),
    )
    op.create_index(
        "ix_chats_responsible_recent", "chats", ["account_id", "responsible_employee_id", "last_message_at", "id"]
    )
    op.create_index("ix_chats_channel_recent", "chats", ["account_id", "channel_id", "last_message_at", "id"])
    op.create_index("ix_chats_account_recent", "chats", ["account_id", "last_message_at", "id"])
    op.create_index(
        "ix_chats_unanswered",
        "chats",
        ["account_id", "channel_id", "responsible_employee_id"],
        sqlite_where=sa.text("unanswered"),
        postgresql_where=sa.text("unanswered"),
    )
    op.create_index("ix_chats_crm_contact", "chats", ["account_id", "crm_contact_id"])
    op.create_index("ix_chats_crm_entity", "chats", ["account_id", "crm_entity_id"])

    op.create_table(
        "chat_offers",
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        _fk("chat_offers", "chat_id", "chats.id"),
        _fk("chat_offers", "employee_id", "employees.id"),
        _fk("chat_offers", "account_id", "accounts.id"),
        sa.PrimaryKeyConstraint("chat_id", "employee_id", name="pk_chat_offers"),
    )
    op.create_index("ix_chat_offers_employee", "chat_offers", ["account_id", "employee_id", "chat_id"])

    op.create_table(
        "messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("gateway_message_id", sa.String(length=128), nullable=True),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("author_employee_id", sa.Integer(), nullable=True),
        sa.Column("sender_name", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("delivery", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        _fk("messages", "account_id", "accounts.id"),
        _fk("messages", "channel_id", "channels.id"),
        _fk("messages", "chat_id", "chats.id"),
        _fk("messages", "author_employee_id", "employees.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("account_id", "channel_id", "gateway_message_id", name="uq_messages_gateway_id"),
    )
    op.create_index("ix_messages_chat_sent", "messages", ["chat_id", "sent_at", "id"])

    op.create_table(
        "distribution_turns",
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("last_turn", sa.Integer(), nullable=False),
        _fk("distribution_turns", "channel_id", "channels.id"),
        _fk("distribution_turns", "employee_id", "employees.id"),
        _fk("distribution_turns", "account_id", "accounts.id"),
        sa.PrimaryKeyConstraint("channel_id", "employee_id", name="pk_distribution_turns"),
    )
    op.create_index("ix_distribution_turns_account_id", "distribution_turns", ["account_id"])

    op.create_table(
        "crm_operations",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _fk("crm_operations", "account_id", "accounts.id"),
        _fk("crm_operations", "chat_id", "chats.id"),
        sa.PrimaryKeyConstraint("id", name="pk_crm_operations"),
        sa.UniqueConstraint("account_id", "idempotency_key", name="uq_crm_operations_key"),
    )
    op.create_index(
        "ix_crm_operations_due",
        "crm_operations",
        ["next_attempt_at"],
        sqlite_where=sa.text("status IN ('pending', 'running')"),
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.create_index("ix_crm_operations_chat", "crm_operations", ["chat_id"])


def downgrade() -> None:
    op.drop_table("crm_operations")
    op.drop_table("distribution_turns")
    op.drop_table("messages")
    op.drop_table("chat_offers")
    op.drop_table("chats")
    op.drop_table("clients")
    op.drop_table("gateway_secrets")
