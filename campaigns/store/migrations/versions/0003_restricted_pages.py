"""Restricted pages: ``pages.restricted`` marks a page published to its batch's restricted lane
(adaptive overlap's follow-up pages, open to the trusted pool only). Kept on the page so a
re-publish after a crash goes to the same lane whatever the pool's membership is by then.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pages') as batch:
        batch.add_column(sa.Column('restricted', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('pages') as batch:
        batch.drop_column('restricted')
