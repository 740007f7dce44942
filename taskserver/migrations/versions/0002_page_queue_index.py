"""a covering index for the page queue (the queue never reads a page's items)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_pages_queue", "pages", ["lane_id", "n", "id", "assignments", "expires_at", "stopped_at"])


def downgrade() -> None:
    op.drop_index("ix_pages_queue", table_name="pages")
