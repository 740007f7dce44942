"""Initial schema: every table of campaigns.store.models.

Money columns are BIGINT micro-units (campaigns.store.models.MoneyType); strings are VARCHAR
without length (sqlmodel's AutoString). Names follow the metadata naming convention.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('environment', sa.String(), nullable=False),
    sa.Column('endpoint_url', sa.String(), nullable=True),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('spec_yaml', sa.Text(), nullable=False),
    sa.Column('spec_hash', sa.String(), nullable=False),
    sa.Column('budget_cap', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_index('ix_campaigns_name', 'campaigns', ['name'], unique=True)

    op.create_table('pool_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('pool', sa.String(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pool_members')),
    sa.UniqueConstraint('provider', 'pool', 'worker_id', name=op.f('uq_pool_members_provider_pool_worker_id'))
    )
    op.create_table('workers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked', sa.Boolean(), nullable=False),
    sa.Column('screening_score', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers')),
    sa.UniqueConstraint('provider', 'worker_id', name=op.f('uq_workers_provider_worker_id'))
    )
    op.create_table('items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_items_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_items')),
    sa.UniqueConstraint('campaign_id', 'external_id', name=op.f('uq_items_campaign_id_external_id'))
    )
    op.create_index('ix_items_campaign_id', 'items', ['campaign_id'], unique=False)

    op.create_table('stages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('batch_idempotency_key', sa.String(), nullable=False),
    sa.Column('batch_ref', sa.JSON(), nullable=True),
    sa.Column('reward', sa.BigInteger(), nullable=False),
    sa.Column('assignments_per_page', sa.Integer(), nullable=False),
    sa.Column('max_assignments_per_page', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_stages_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stages')),
    sa.UniqueConstraint('batch_idempotency_key', name=op.f('uq_stages_batch_idempotency_key')),
    sa.UniqueConstraint('campaign_id', 'name', name=op.f('uq_stages_campaign_id_name'))
    )
    op.create_index('ix_stages_campaign_id', 'stages', ['campaign_id'], unique=False)

    op.create_table('worker_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(), nullable=False),
    sa.Column('pool', sa.String(), nullable=True),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=True),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                            name=op.f('fk_worker_actions_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_actions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_worker_actions_idempotency_key'))
    )
    op.create_index('ix_worker_actions_worker_id', 'worker_actions', ['worker_id'], unique=False)

    op.create_table('worker_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('trust', sa.Float(), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=True),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                            name=op.f('fk_worker_scores_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_scores'))
    )
    op.create_index('ix_worker_scores_campaign_id', 'worker_scores', ['campaign_id'], unique=False)
    op.create_index('ix_worker_scores_worker_id', 'worker_scores', ['worker_id'], unique=False)

    op.create_table('ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=True),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=True),
    sa.Column('assignment_id', sa.String(), nullable=True),
    sa.Column('provider_ref', sa.String(), nullable=True),
    sa.Column('reason', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_ledger_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_ledger_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_idempotency_key'))
    )
    op.create_index('ix_ledger_campaign_id', 'ledger', ['campaign_id'], unique=False)
    op.create_index('ix_ledger_stage_id', 'ledger', ['stage_id'], unique=False)
    op.create_index('ix_ledger_worker_id', 'ledger', ['worker_id'], unique=False)

    op.create_table('pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('page_key', sa.String(), nullable=False),
    sa.Column('task_keys', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('assignments', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_pages_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pages')),
    sa.UniqueConstraint('page_key', name=op.f('uq_pages_page_key'))
    )
    op.create_index('ix_pages_stage_id', 'pages', ['stage_id'], unique=False)

    op.create_table('poll_cursors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_poll_cursors_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_poll_cursors')),
    sa.UniqueConstraint('stage_id', name=op.f('uq_poll_cursors_stage_id'))
    )
    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('assignment_id', sa.String(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=True),
    sa.Column('page_ref', sa.String(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    sa.Column('provider_status', sa.String(), nullable=False),
    sa.Column('review', sa.String(), nullable=False),
    sa.Column('review_message', sa.String(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=True),
    sa.Column('parse_error', sa.String(), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_assignments_page_id_pages')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_assignments_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('provider', 'assignment_id', name=op.f('uq_assignments_provider_assignment_id'))
    )
    op.create_index('ix_assignments_page_id', 'assignments', ['page_id'], unique=False)
    op.create_index('ix_assignments_stage_id', 'assignments', ['stage_id'], unique=False)
    op.create_index('ix_assignments_worker_id', 'assignments', ['worker_id'], unique=False)

    op.create_table('publications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('provider_ref', sa.String(), nullable=False),
    sa.Column('idempotency_key', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_publications_page_id_pages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publications')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_publications_idempotency_key')),
    sa.UniqueConstraint('page_id', name=op.f('uq_publications_page_id'))
    )
    op.create_index('ix_publications_provider_ref', 'publications', ['provider_ref'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('key_hint', sa.String(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('golden', sa.Boolean(), nullable=False),
    sa.Column('golden_answer', sa.JSON(), nullable=True),
    sa.Column('page_id', sa.Integer(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_tasks_item_id_items')),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_tasks_page_id_pages')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_tasks_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('stage_id', 'key', name=op.f('uq_tasks_stage_id_key'))
    )
    op.create_index('ix_tasks_item_id', 'tasks', ['item_id'], unique=False)
    op.create_index('ix_tasks_key', 'tasks', ['key'], unique=False)
    op.create_index('ix_tasks_page_id', 'tasks', ['page_id'], unique=False)
    op.create_index('ix_tasks_stage_id', 'tasks', ['stage_id'], unique=False)

    op.create_table('judgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_pk', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('golden_correct', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['assignment_pk'], ['assignments.id'],
                            name=op.f('fk_judgements_assignment_pk_assignments')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_judgements_stage_id_stages')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_judgements_task_id_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_judgements')),
    sa.UniqueConstraint('assignment_pk', 'task_id', name=op.f('uq_judgements_assignment_pk_task_id'))
    )
    op.create_index('ix_judgements_assignment_pk', 'judgements', ['assignment_pk'], unique=False)
    op.create_index('ix_judgements_stage_id', 'judgements', ['stage_id'], unique=False)
    op.create_index('ix_judgements_task_id', 'judgements', ['task_id'], unique=False)
    op.create_index('ix_judgements_worker_id', 'judgements', ['worker_id'], unique=False)


def downgrade() -> None:
    # Reverse order of creation, so foreign keys never point at a dropped table.
    op.drop_table('judgements')
    op.drop_table('tasks')
    op.drop_table('publications')
    op.drop_table('assignments')
    op.drop_table('poll_cursors')
    op.drop_table('pages')
    op.drop_table('ledger')
    op.drop_table('worker_scores')
    op.drop_table('worker_actions')
    op.drop_table('stages')
    op.drop_table('items')
    op.drop_table('workers')
    op.drop_table('pool_members')
    op.drop_table('campaigns')
