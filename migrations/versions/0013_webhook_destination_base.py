"""kommo_webhooks: keep our public URL, not the subscribed address, which holds the token in clear

``destination`` was ``{public URL}/kommo/webhooks/{token}``; ``destination_base`` keeps only the
``{public URL}`` part. The token itself stays as before: its SHA-256 (looked up) and sealed (to
rebuild the address). Downgrading rebuilds ``destination`` from the base alone (the token cannot be
unsealed here), which makes the sweep subscribe the account again.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
depends_on = None
branch_labels = None

PATH = "/kommo/webhooks/"


def upgrade() -> None:
    with op.batch_alter_table("kommo_webhooks") as batch:
        batch.add_column(sa.Column("destination_base", sa.String(length=500), nullable=False, server_default=""))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT account_id, destination FROM kommo_webhooks")).all()
    for account_id, destination in rows:
        base = destination.rsplit(PATH, 1)[0] if PATH in (destination or "") else ""
        conn.execute(
            sa.text("UPDATE kommo_webhooks SET destination_base = :base WHERE account_id = :id"),
            {"base": base, "id": account_id},
        )
    with op.batch_alter_table("kommo_webhooks") as batch:
        batch.drop_column("destination")
        batch.alter_column("destination_base", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("kommo_webhooks") as batch:
        batch.add_column(sa.Column("destination", sa.String(length=500), nullable=False, server_default=""))
    with op.batch_alter_table("kommo_webhooks") as batch:
        batch.drop_column("destination_base")
        batch.alter_column("destination", server_default=None)
