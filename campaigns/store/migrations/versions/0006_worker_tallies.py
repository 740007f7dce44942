"""Judgement labels as a column, worker tallies kept incrementally (issue 19, part 3).

``judgements.label`` holds the categorical label (``quality.labels.label_of``) so fits read no JSON;
it is filled here from the stored values. ``judgements.tallied`` starts false everywhere, so the
first poll after this migration counts every stored judgement into ``worker_tallies`` and
``worker_speeds`` once (``quality.tallies.catch_up``); ``stage_fits`` holds each stage's last
agreement fit.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

LABEL_KEYS = ("choice", "label", "verdict")  # as campaigns.quality.labels has them (2026-12-04)
BATCH = 20000


def _label(value: dict | None) -> str | None:
    for key in LABEL_KEYS:
        if value and isinstance(value.get(key), str):
            return value[key]
    return None


def upgrade() -> None:
    with op.batch_alter_table('judgements') as batch:
        batch.add_column(sa.Column('label', sa.String(), nullable=True))
        batch.add_column(sa.Column('tallied', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index('ix_judgements_stage_id_tallied', 'judgements', ['stage_id', 'tallied'], unique=False)
    judgements = sa.table('judgements', sa.column('id', sa.Integer()), sa.column('value', sa.JSON()),
                          sa.column('label', sa.String()))
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.select(judgements.c.id, judgements.c.value).where(judgements.c.id > last)
                            .order_by(judgements.c.id).limit(BATCH)).all()
        if not rows:
            break
        last = rows[-1][0]
        labelled = [{"pk": i, "lab": lab} for i, v in rows if (lab := _label(v)) is not None]
        if labelled:
            conn.execute(sa.update(judgements).where(judgements.c.id == sa.bindparam("pk"))
                         .values(label=sa.bindparam("lab")), labelled)

    op.create_table('worker_tallies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    *(sa.Column(c, sa.Integer(), nullable=False) for c in
      ('judgements', 'golden_correct', 'golden_total', 'left', 'pairs', 'timed', 'timed_items')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_worker_tallies_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_tallies')),
    sa.UniqueConstraint('campaign_id', 'worker_id', name=op.f('uq_worker_tallies_campaign_id_worker_id'))
    )
    op.create_index('ix_worker_tallies_provider', 'worker_tallies', ['provider'], unique=False)
    op.create_index('ix_worker_tallies_worker_id', 'worker_tallies', ['worker_id'], unique=False)
    op.create_table('worker_speeds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_worker_speeds_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_speeds')),
    sa.UniqueConstraint('campaign_id', 'worker_id', 'bucket',
                        name=op.f('uq_worker_speeds_campaign_id_worker_id_bucket'))
    )
    op.create_table('stage_fits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('fitted_labels', sa.Integer(), nullable=False),
    sa.Column('blocked', sa.JSON(), nullable=True),
    sa.Column('agreement', sa.JSON(), nullable=True),
    sa.Column('fitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_stage_fits_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_fits')),
    sa.UniqueConstraint('stage_id', name=op.f('uq_stage_fits_stage_id'))
    )


def downgrade() -> None:
    op.drop_table('stage_fits')
    op.drop_table('worker_speeds')
    op.drop_index('ix_worker_tallies_worker_id', table_name='worker_tallies')
    op.drop_index('ix_worker_tallies_provider', table_name='worker_tallies')
    op.drop_table('worker_tallies')
    op.drop_index('ix_judgements_stage_id_tallied', table_name='judgements')
    with op.batch_alter_table('judgements') as batch:
        batch.drop_column('tallied')
        batch.drop_column('label')
