"""Refunds made at the gateway that fail later: a ``refund.failed`` event keeps the
gateway's reference of the payment refunded and the refund's amount, as such a refund
carries no key of ours; the payment is found by its gateway reference, now indexed.

Events stored before this revision have neither: they were applied already, or find their
refund by its key as before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_events") as batch:
        batch.add_column(sa.Column("payment_reference", sa.String(255), nullable=True))
        batch.add_column(sa.Column("refund_amount", sa.BigInteger, nullable=True))
    op.create_index("ix_payments_gateway_reference", "payments", ["gateway_reference"])


def downgrade() -> None:
    op.drop_index("ix_payments_gateway_reference", table_name="payments")
    with op.batch_alter_table("gateway_events") as batch:
        batch.drop_column("refund_amount")
        batch.drop_column("payment_reference")
