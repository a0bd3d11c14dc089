"""Import runs have a heartbeat (``progressed_at``): the sweep that queues again the runs
whose job was lost looks at when a run last progressed, not at when it was queued or
started, so that a backed-up queue or a long import is not queued again and again.
Existing runs last progressed when they started, or else when they were queued.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.add_column(sa.Column("progressed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE import_runs SET progressed_at = COALESCE(started_at, created_at)")


def downgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.drop_column("progressed_at")
