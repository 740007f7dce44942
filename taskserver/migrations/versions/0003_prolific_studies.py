"""lanes served as Prolific studies; assignments that answer a Prolific submission

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lanes") as b:
        b.add_column(sa.Column("study_id", sa.String(40), nullable=True))
        b.add_column(sa.Column("completion_code", sa.String(40), nullable=True))
    with op.batch_alter_table("assignments") as b:
        b.add_column(sa.Column("external_id", sa.String(64), nullable=True))
        b.add_column(sa.Column("external_state", sa.String(16), nullable=True))
        b.create_unique_constraint("uq_assignments_external_id", ["external_id"])
        b.create_index("ix_assignments_external_state", ["external_state"])


def downgrade() -> None:
    with op.batch_alter_table("assignments") as b:
        b.drop_index("ix_assignments_external_state")
        b.drop_constraint("uq_assignments_external_id", type_="unique")
        b.drop_column("external_state")
        b.drop_column("external_id")
    with op.batch_alter_table("lanes") as b:
        b.drop_column("completion_code")
        b.drop_column("study_id")
