"""Indexes a poll needs so its reads are proportional to what is new (issue 19, part 3).

- ``ix_assignments_stage_id_review``: review and finish read only a stage's unreviewed assignments;
- ``ix_pages_open`` (partial: pages not done): refresh_pages, finish, page_refs read only open pages;
  ``ix_pages_stage_id_status``: pages of one status (e.g. "extending");
- ``ix_ledger_campaign_id_state_kind``, ``ix_ledger_stage_id_state_kind``: planned spend, bonuses
  still to pay.

The composite indexes replace the one-column indexes that are their prefixes
(``ix_assignments_stage_id``, ``ix_pages_stage_id``, ``ix_ledger_campaign_id``, ``ix_ledger_stage_id``):
left in place, SQLite (which keeps no statistics here) picks them and walks a whole stage.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


OPEN = sa.text("status != 'done'")


def upgrade() -> None:
    op.create_index('ix_assignments_stage_id_review', 'assignments', ['stage_id', 'review'], unique=False)
    op.drop_index('ix_assignments_stage_id', table_name='assignments')
    op.create_index('ix_pages_open', 'pages', ['stage_id', 'status'], unique=False, sqlite_where=OPEN,
                    postgresql_where=OPEN)
    op.create_index('ix_pages_stage_id_status', 'pages', ['stage_id', 'status'], unique=False)
    op.drop_index('ix_pages_stage_id', table_name='pages')
    op.create_index('ix_ledger_campaign_id_state_kind', 'ledger', ['campaign_id', 'state', 'kind'], unique=False)
    op.create_index('ix_ledger_stage_id_state_kind', 'ledger', ['stage_id', 'state', 'kind'], unique=False)
    op.drop_index('ix_ledger_campaign_id', table_name='ledger')
    op.drop_index('ix_ledger_stage_id', table_name='ledger')


def downgrade() -> None:
    op.create_index('ix_ledger_stage_id', 'ledger', ['stage_id'], unique=False)
    op.create_index('ix_ledger_campaign_id', 'ledger', ['campaign_id'], unique=False)
    op.drop_index('ix_ledger_stage_id_state_kind', table_name='ledger')
    op.drop_index('ix_ledger_campaign_id_state_kind', table_name='ledger')
    op.create_index('ix_pages_stage_id', 'pages', ['stage_id'], unique=False)
    op.drop_index('ix_pages_stage_id_status', table_name='pages')
    op.drop_index('ix_pages_open', table_name='pages')
    op.create_index('ix_assignments_stage_id', 'assignments', ['stage_id'], unique=False)
    op.drop_index('ix_assignments_stage_id_review', table_name='assignments')
