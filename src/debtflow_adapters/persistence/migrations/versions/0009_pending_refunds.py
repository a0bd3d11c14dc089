"""Refunds can be pending: one the gateway has not answered is kept, with the key it was
asked under, until the recovery task learns its outcome. Existing refunds were completed.

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
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="completed")
        )
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.alter_column("gateway_reference", existing_type=sa.String(255), nullable=True)
    op.create_index(
        "ix_refunds_pending_created",
        "refunds",
        ["created_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_refunds_pending_created", table_name="refunds")
    op.execute("DELETE FROM refunds WHERE status = 'pending'")
    with op.batch_alter_table("refunds") as batch:
        batch.alter_column("gateway_reference", existing_type=sa.String(255), nullable=False)
        batch.drop_column("idempotency_key")
        batch.drop_column("status")
