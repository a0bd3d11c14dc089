"""Refunds can be pending: one the gateway has not answered is kept, with the key it was
asked under, until its answer comes; reports count a refund when it completed. Existing
refunds were completed when they were made.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        # The default fills the existing rows only: every new refund names its status.
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="completed")
        )
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("gateway_reference", existing_type=sa.String(255), nullable=True)
    op.execute("UPDATE refunds SET completed_at = created_at")
    with op.batch_alter_table("refunds") as batch:
        batch.alter_column("status", existing_type=sa.String(16), server_default=None)
    op.create_index(
        "ix_refunds_pending_created",
        "refunds",
        ["created_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_refunds_pending_created", table_name="refunds")
    # Before, a refund was reserved only while its request ran: give back what pending
    # refunds reserve, then forget them.
    op.execute(
        """
        UPDATE payments SET refunded_amount = refunded_amount - (
            SELECT COALESCE(SUM(amount), 0) FROM refunds
            WHERE refunds.payment_id = payments.id AND refunds.status = 'pending'
        )
        WHERE id IN (SELECT payment_id FROM refunds WHERE status = 'pending')
        """
    )
    op.execute("DELETE FROM refunds WHERE status = 'pending'")
    with op.batch_alter_table("refunds") as batch:
        batch.alter_column("gateway_reference", existing_type=sa.String(255), nullable=False)
        batch.drop_column("completed_at")
        batch.drop_column("idempotency_key")
        batch.drop_column("status")
