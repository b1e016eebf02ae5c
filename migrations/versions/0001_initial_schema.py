"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 12:31:37.942257
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op



revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('crm', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=500), nullable=False),
    sa.Column('client_endpoint', sa.String(length=500), nullable=True),
    sa.Column('server_endpoint', sa.String(length=500), nullable=True),
    sa.Column('application_token_enc', sa.LargeBinary(), nullable=True),
    sa.Column('crm_mode', sa.String(length=16), nullable=False),
    sa.Column('installed_by_crm_user_id', sa.String(length=64), nullable=True),
    sa.Column('installed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uninstalled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('crm', 'external_id', name='uq_accounts_crm_external_id')
    )
    op.create_table('used_nonces',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_used_nonces'))
    )
    with op.batch_alter_table('used_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_used_nonces_expires_at'), ['expires_at'], unique=False)

    op.create_table('account_tokens',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('access_token_enc', sa.LargeBinary(), nullable=False),
    sa.Column('refresh_token_enc', sa.LargeBinary(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_tokens_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_account_tokens'))
    )
    op.create_table('channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('transport', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('address', sa.String(length=120), nullable=False),
    sa.Column('is_enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_channels_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channels'))
    )
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.create_index('ix_channels_account_created', ['account_id', 'created_at', 'id'], unique=False)

    op.create_table('crm_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_crm_events_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crm_events'))
    )
    with op.batch_alter_table('crm_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_events_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_crm_events_processed_at'), ['processed_at'], unique=False)

    op.create_table('employees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('crm_user_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('lang', sa.String(length=8), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('in_crm', sa.Boolean(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_employees_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employees')),
    sa.UniqueConstraint('account_id', 'crm_user_id', name='uq_employees_account_crm_user')
    )
    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.create_index('ix_employees_account_active', ['account_id', 'is_active'], unique=False)

    op.create_table('pending_installs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('crm', sa.String(length=16), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('code_enc', sa.LargeBinary(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=1000), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_pending_installs_account_id_accounts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_installs'))
    )
    with op.batch_alter_table('pending_installs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_installs_status'), ['status'], unique=False)

    op.create_table('pipelines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=16), nullable=False),
    sa.Column('crm_pipeline_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('is_main', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_pipelines_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipelines')),
    sa.UniqueConstraint('account_id', 'entity', 'crm_pipeline_id', name='uq_pipelines_account_entity_crm')
    )
    op.create_table('account_settings',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('default_channel_id', sa.Integer(), nullable=True),
    sa.Column('notify_heads_all', sa.Boolean(), nullable=False),
    sa.Column('fallback_employee_id', sa.Integer(), nullable=True),
    sa.Column('first_saved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('test_message_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_settings_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['default_channel_id'], ['channels.id'], name=op.f('fk_account_settings_default_channel_id_channels'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['fallback_employee_id'], ['employees.id'], name=op.f('fk_account_settings_fallback_employee_id_employees'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_account_settings'))
    )
    op.create_table('channel_roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('gets_new_clients', sa.Boolean(), nullable=False),
    sa.Column('assigned_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_channel_roles_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_roles_channel_id_channels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_channel_roles_employee_id_employees'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_roles')),
    sa.UniqueConstraint('channel_id', 'employee_id', name='uq_channel_roles_channel_employee')
    )
    with op.batch_alter_table('channel_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_roles_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_channel_roles_employee', ['employee_id'], unique=False)

    op.create_table('channel_settings',
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('new_client_entity', sa.String(length=16), nullable=False),
    sa.Column('crm_pipeline_id', sa.String(length=64), nullable=True),
    sa.Column('crm_stage_id', sa.String(length=64), nullable=True),
    sa.Column('distribution', sa.String(length=16), nullable=False),
    sa.Column('turn_counter', sa.Integer(), nullable=False),
    sa.Column('saved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_channel_settings_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_settings_channel_id_channels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_channel_settings'))
    )
    with op.batch_alter_table('channel_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_settings_account_id'), ['account_id'], unique=False)

    op.create_table('stages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('crm_stage_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_stages_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_stages_pipeline_id_pipelines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stages')),
    sa.UniqueConstraint('pipeline_id', 'crm_stage_id', name='uq_stages_pipeline_crm')
    )
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stages_account_id'), ['account_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stages_account_id'))

    op.drop_table('stages')
    with op.batch_alter_table('channel_settings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_settings_account_id'))

    op.drop_table('channel_settings')
    with op.batch_alter_table('channel_roles', schema=None) as batch_op:
        batch_op.drop_index('ix_channel_roles_employee')
        batch_op.drop_index(batch_op.f('ix_channel_roles_account_id'))

    op.drop_table('channel_roles')
    op.drop_table('account_settings')
    op.drop_table('pipelines')
    with op.batch_alter_table('pending_installs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_installs_status'))

    op.drop_table('pending_installs')
    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.drop_index('ix_employees_account_active')

    op.drop_table('employees')
    with op.batch_alter_table('crm_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_events_processed_at'))
        batch_op.drop_index(batch_op.f('ix_crm_events_account_id'))

    op.drop_table('crm_events')
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.drop_index('ix_channels_account_created')

    op.drop_table('channels')
    op.drop_table('account_tokens')
    with op.batch_alter_table('used_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_used_nonces_expires_at'))

    op.drop_table('used_nonces')
    op.drop_table('accounts')

