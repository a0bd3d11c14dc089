"""Import runs keep how their file is read (delimiter, column mapping), so that a worker
importing an uploaded file later reads it as its sender said.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.add_column(sa.Column("delimiter", sa.String(1), nullable=False, server_default=","))
        batch.add_column(sa.Column("column_mapping", _JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.drop_column("column_mapping")
        batch.drop_column("delimiter")
