"""Exports: reports written as CSV files to object storage; the agencies' nightly choice.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("storage_key", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Uuid, nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=True),
        sa.Column("finished_at", _TIMESTAMP, nullable=True),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("failure_reason", sa.Text, nullable=True),
    )
    op.create_index("ix_exports_agency_created", "exports", ["agency_id", "created_at", "id"])
    # The purge looks for old exports of every agency.
    op.create_index("ix_exports_created", "exports", ["created_at"])
    op.create_table(
        "nightly_exports",
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), primary_key=True),
        sa.Column("kinds", _JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nightly_exports")
    op.drop_index("ix_exports_created", table_name="exports")
    op.drop_index("ix_exports_agency_created", table_name="exports")
    op.drop_table("exports")
