"""The import run that created each account: only that run may change the account's
currency, so a run that merely updated an account another import or the API made must not
(``import_run_id`` names the last writer, which cannot tell the two apart).

Accounts created before this revision get none: no run may change their currency, which
only refuses a currency change to a run still under way when the database is upgraded.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("placed_by_run_id", sa.Uuid, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("placed_by_run_id")
