"""Named lanes: ``pages.lane`` names the batch lane a page is published to ("trusted" for adaptive
overlap's follow-up pages, "probation" for probe pages), replacing the one-lane flag
``pages.restricted`` (a restricted page was a page for the trusted lane).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pages') as batch:
        batch.add_column(sa.Column('lane', sa.String(), nullable=True))
    op.execute("UPDATE pages SET lane = 'trusted' WHERE restricted")
    with op.batch_alter_table('pages') as batch:
        batch.drop_column('restricted')


def downgrade() -> None:
    with op.batch_alter_table('pages') as batch:
        batch.add_column(sa.Column('restricted', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE pages SET restricted = true WHERE lane = 'trusted'")
    with op.batch_alter_table('pages') as batch:
        batch.drop_column('lane')
