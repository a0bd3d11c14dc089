"""Gateway events: the payment gateway's webhooks, stored once by their id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payment_id", sa.Uuid, nullable=True),
        sa.Column("reference", sa.String(255), nullable=True),
        sa.Column("decline_code", sa.String(64), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("amount_refunded", sa.BigInteger, nullable=True),
        sa.Column("received_at", _TIMESTAMP, nullable=False),
        sa.Column("processed_at", _TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
    )
    op.create_index("ix_gateway_events_payment", "gateway_events", ["payment_id"])


def downgrade() -> None:
    op.drop_table("gateway_events")
