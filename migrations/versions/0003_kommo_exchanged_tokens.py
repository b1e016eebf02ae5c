"""kommo: token pairs exchanged for a pending install's code

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kommo_exchanged_tokens",
        sa.Column("pending_install_id", sa.Integer(), nullable=False),
        sa.Column("access_token_enc", sa.LargeBinary(), nullable=False),
        sa.Column("refresh_token_enc", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pending_install_id"],
            ["pending_installs.id"],
            name=op.f("fk_kommo_exchanged_tokens_pending_install_id_pending_installs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pending_install_id", name=op.f("pk_kommo_exchanged_tokens")),
    )


def downgrade() -> None:
    op.drop_table("kommo_exchanged_tokens")
