"""A partial index for the sweep that queues again the uploads whose job was lost: it
holds only the uploaded runs still queued or running, oldest first, so the sweep reads a
few entries rather than every run the agencies ever imported.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_UNFINISHED_UPLOAD = sa.text("file_source_id IS NULL AND status IN ('queued', 'running')")


def upgrade() -> None:
    op.create_index(
        "ix_import_runs_unfinished_uploads",
        "import_runs",
        ["created_at", "id"],
        postgresql_where=_UNFINISHED_UPLOAD,
        sqlite_where=_UNFINISHED_UPLOAD,
    )


def downgrade() -> None:
    op.drop_index("ix_import_runs_unfinished_uploads", table_name="import_runs")
