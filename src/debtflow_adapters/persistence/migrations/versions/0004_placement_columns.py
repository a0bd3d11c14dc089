"""Placement imports: the accounts' placement dates and provenance, import runs and errors.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
_ACCOUNT_COLUMNS = (
    "first_delinquency_date",
    "itemization_date",
    "last_payment_date",
    "import_run_id",
    "import_line",
)


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("first_delinquency_date", sa.Date, nullable=True))
        batch.add_column(sa.Column("itemization_date", sa.Date, nullable=True))
        batch.add_column(sa.Column("last_payment_date", sa.Date, nullable=True))
        batch.add_column(sa.Column("import_run_id", sa.Uuid, nullable=True))
        batch.add_column(sa.Column("import_line", sa.Integer, nullable=True))
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("agency_id", sa.Uuid, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("file_source_id", sa.Uuid, nullable=True),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.Text, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("rows_created", sa.BigInteger, nullable=False),
        sa.Column("rows_updated", sa.BigInteger, nullable=False),
        sa.Column("rows_failed", sa.BigInteger, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=True),
        sa.Column("finished_at", _TIMESTAMP, nullable=True),
        sa.Column("lines_done", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("ignored_columns", _JSON, nullable=False),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.UniqueConstraint("agency_id", "sha256", name="uq_import_runs_agency_sha256"),
    )
    op.create_index(
        "ix_import_runs_agency_created", "import_runs", ["agency_id", "created_at", "id"]
    )
    op.create_table(
        "import_row_errors",
        sa.Column(
            "run_id",
            sa.Uuid,
            sa.ForeignKey("import_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line", sa.BigInteger, primary_key=True),
        sa.Column("column", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("import_row_errors")
    op.drop_index("ix_import_runs_agency_created", table_name="import_runs")
    op.drop_table("import_runs")
    with op.batch_alter_table("accounts") as batch:
        for column in reversed(_ACCOUNT_COLUMNS):
            batch.drop_column(column)
