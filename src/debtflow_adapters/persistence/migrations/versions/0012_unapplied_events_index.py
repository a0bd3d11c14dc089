"""A partial index for the sweep that hands the workers again the gateway events not
applied yet: it holds only those, oldest first.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_UNAPPLIED_EVENT = sa.text("processed_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_gateway_events_unapplied",
        "gateway_events",
        ["received_at", "id"],
        postgresql_where=_UNAPPLIED_EVENT,
        sqlite_where=_UNAPPLIED_EVENT,
    )


def downgrade() -> None:
    op.drop_index("ix_gateway_events_unapplied", table_name="gateway_events")
