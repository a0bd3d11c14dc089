"""Refunds the gateway reports failed: a ``refund.failed`` event names our refund by the
key it was made under, which the gateway keeps as the refund's metadata; a failed refund
keeps when it failed, and an event when the gateway made it, both by the gateway's clock, so that a
refunded total told before a failure is not read as one told after it. (A refund's status
is a plain string column: ``failed`` needs nothing of the schema.)

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

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("gateway_events") as batch:
        batch.add_column(sa.Column("refund_key", sa.Text, nullable=True))
        batch.add_column(sa.Column("created_at", _TIMESTAMP, nullable=True))
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("failed_at", _TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("failed_at")
    with op.batch_alter_table("gateway_events") as batch:
        batch.drop_column("created_at")
        batch.drop_column("refund_key")
