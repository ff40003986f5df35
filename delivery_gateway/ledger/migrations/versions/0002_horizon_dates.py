"""Read horizons keep the DateUpdated of the report that set them, so a horizon moved back (marked unread)
applies while a late, older report does not undo a newer one. Existing rows have none: until their next report
dated on both sides, only a forward move replaces them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_horizons", sa.Column("at", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_horizons") as batch:
        batch.drop_column("at")
