"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-03 22:10:47.042970
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('batches',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('reward', sa.String(length=32), nullable=False),
    sa.Column('assignments_per_page', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_batches_idempotency_key'))
    )
    op.create_table('blocks',
    sa.Column('worker_id', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_blocks'))
    )
    op.create_table('pools',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('screening', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pools')),
    sa.UniqueConstraint('name', name=op.f('uq_pools_name'))
    )
    op.create_table('workers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers')),
    sa.UniqueConstraint('name', name=op.f('uq_workers_name'))
    )
    op.create_table('invites',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('worker_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_invites_worker_id_workers')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_invites'))
    )
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invites_worker_id'), ['worker_id'], unique=False)

    op.create_table('lanes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('requirements', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_lanes_batch_id_batches')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lanes'))
    )
    with op.batch_alter_table('lanes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lanes_batch_id'), ['batch_id'], unique=False)

    op.create_table('pool_members',
    sa.Column('pool_id', sa.String(length=40), nullable=False),
    sa.Column('worker_id', sa.String(length=40), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['pools.id'], name=op.f('fk_pool_members_pool_id_pools')),
    sa.PrimaryKeyConstraint('pool_id', 'worker_id', name=op.f('pk_pool_members'))
    )
    op.create_table('screening_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('pool_id', sa.String(length=40), nullable=False),
    sa.Column('worker_id', sa.String(length=40), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['pool_id'], ['pools.id'], name=op.f('fk_screening_attempts_pool_id_pools')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_screening_attempts'))
    )
    with op.batch_alter_table('screening_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_screening_attempts_pool_id'), ['pool_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_screening_attempts_worker_id'), ['worker_id'], unique=False)

    op.create_table('sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('worker_id', sa.String(length=40), nullable=True),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_sessions_worker_id_workers')),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_sessions'))
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_worker_id'), ['worker_id'], unique=False)

    op.create_table('pages',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('lane_id', sa.String(length=40), nullable=False),
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('assignments', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_pages_batch_id_batches')),
    sa.ForeignKeyConstraint(['lane_id'], ['lanes.id'], name=op.f('fk_pages_lane_id_lanes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pages')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_pages_idempotency_key')),
    sa.UniqueConstraint('n', name=op.f('uq_pages_n'))
    )
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pages_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pages_external_id'), ['external_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pages_lane_id'), ['lane_id'], unique=False)

    op.create_table('assignments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('page_id', sa.String(length=40), nullable=False),
    sa.Column('worker_id', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reserved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=True),
    sa.Column('answers', sa.JSON(), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_assignments_page_id_pages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments')),
    sa.UniqueConstraint('seq', name=op.f('uq_assignments_seq'))
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_page_id'), ['page_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_worker_id'), ['worker_id'], unique=False)
        batch_op.create_index('ix_assignments_worker_page', ['worker_id', 'page_id'], unique=False)

    op.create_table('page_items',
    sa.Column('page_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('item_key', sa.String(length=200), nullable=False),
    sa.Column('golden', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_page_items_page_id_pages')),
    sa.PrimaryKeyConstraint('page_id', 'position', name=op.f('pk_page_items'))
    )
    with op.batch_alter_table('page_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_page_items_item_key'), ['item_key'], unique=False)

    op.create_table('bonuses',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('worker_id', sa.String(length=40), nullable=False),
    sa.Column('assignment_id', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_bonuses_assignment_id_assignments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bonuses')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_bonuses_idempotency_key'))
    )
    with op.batch_alter_table('bonuses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bonuses_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bonuses_worker_id'), ['worker_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('bonuses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bonuses_worker_id'))
        batch_op.drop_index(batch_op.f('ix_bonuses_assignment_id'))

    op.drop_table('bonuses')
    with op.batch_alter_table('page_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_page_items_item_key'))

    op.drop_table('page_items')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_assignments_worker_page')
        batch_op.drop_index(batch_op.f('ix_assignments_worker_id'))
        batch_op.drop_index(batch_op.f('ix_assignments_page_id'))

    op.drop_table('assignments')
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pages_lane_id'))
        batch_op.drop_index(batch_op.f('ix_pages_external_id'))
        batch_op.drop_index(batch_op.f('ix_pages_batch_id'))

    op.drop_table('pages')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_worker_id'))

    op.drop_table('sessions')
    with op.batch_alter_table('screening_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_screening_attempts_worker_id'))
        batch_op.drop_index(batch_op.f('ix_screening_attempts_pool_id'))

    op.drop_table('screening_attempts')
    op.drop_table('pool_members')
    with op.batch_alter_table('lanes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lanes_batch_id'))

    op.drop_table('lanes')
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invites_worker_id'))

    op.drop_table('invites')
    op.drop_table('workers')
    op.drop_table('pools')
    op.drop_table('blocks')
    op.drop_table('batches')

