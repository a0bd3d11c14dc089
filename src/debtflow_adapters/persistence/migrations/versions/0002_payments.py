"""Payments: payments, refunds, idempotency keys, and agencies' overpayment switch.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("agencies") as agencies:
        agencies.add_column(
            sa.Column("allow_overpayment", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("processor_id", sa.Uuid, sa.ForeignKey("payment_processors.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_method", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("gateway_reference", sa.String(255), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.Uuid, nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
    )
    op.create_index("ix_payments_agency_created", "payments", ["agency_id", "created_at", "id"])
    op.create_index("ix_payments_account_created", "payments", ["account_id", "created_at", "id"])
    op.create_index("ix_payments_status_created", "payments", ["status", "created_at"])
    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("payment_id", sa.Uuid, sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("gateway_reference", sa.String(255), nullable=False),
        sa.Column("created_by", sa.Uuid, nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
    )
    op.create_index("ix_refunds_payment_created", "refunds", ["payment_id", "created_at", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("response", _JSON, nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    for table in ("idempotency_keys", "refunds", "payments"):
        op.drop_table(table)
    with op.batch_alter_table("agencies") as agencies:
        agencies.drop_column("allow_overpayment")
