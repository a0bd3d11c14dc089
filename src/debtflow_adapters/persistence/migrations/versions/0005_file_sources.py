"""File sources: the agencies' placement-file drops, polled on their schedules.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "file_sources",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.Text, nullable=True),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("username", sa.Text, nullable=True),
        sa.Column("secret_env", sa.Text, nullable=True),
        sa.Column("host_key", sa.Text, nullable=True),
        sa.Column("directory", sa.Text, nullable=False),
        sa.Column("pattern", sa.Text, nullable=False),
        sa.Column("archive_directory", sa.Text, nullable=True),
        sa.Column("delimiter", sa.String(1), nullable=False),
        sa.Column("column_mapping", _JSON, nullable=False),
        sa.Column("schedule", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.UniqueConstraint("agency_id", "name", name="uq_file_sources_agency_name"),
    )


def downgrade() -> None:
    op.drop_table("file_sources")
