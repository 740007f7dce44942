"""Shards of a stage's pages, each with its own poll cursor and lease (issue 19, part 4).

``poll_cursors`` gets ``shard`` (unique with ``stage_id``, instead of ``stage_id`` alone) and
``shards``, the stage's shard count, fixed on its first poll (``campaigns.stages.shards``). A stage
polled before this migration keeps its one cursor, so its count is fixed at 1 here: splitting it
later would make every moved page's answers be listed again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('poll_cursors') as batch:
        batch.add_column(sa.Column('shard', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('shards', sa.Integer(), nullable=True))
        batch.drop_constraint('uq_poll_cursors_stage_id', type_='unique')
        batch.create_unique_constraint('uq_poll_cursors_stage_id_shard', ['stage_id', 'shard'])
    op.execute("UPDATE poll_cursors SET shards = 1 WHERE cursor IS NOT NULL")


def downgrade() -> None:
    op.execute("DELETE FROM poll_cursors WHERE shard <> 0")
    with op.batch_alter_table('poll_cursors') as batch:
        batch.drop_constraint('uq_poll_cursors_stage_id_shard', type_='unique')
        batch.create_unique_constraint('uq_poll_cursors_stage_id', ['stage_id'])
        batch.drop_column('shards')
        batch.drop_column('shard')
