"""Refunds the gateway reports failed: a ``refund.failed`` event names our refund by its
id, which the gateway repeats from the refund's metadata. (A refund's status is a plain
string column, so ``failed`` needs nothing of the schema.)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_events") as batch:
        batch.add_column(sa.Column("refund_id", sa.Uuid, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_events") as batch:
        batch.drop_column("refund_id")
