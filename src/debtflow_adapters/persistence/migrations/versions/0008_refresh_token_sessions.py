"""Refresh tokens indexed by their session: the daily purge deletes ended sessions, and the
foreign key's check of each deletion then finds the session's tokens by index, not by
scanning them all.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_refresh_tokens_session", "refresh_tokens", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_session", table_name="refresh_tokens")
