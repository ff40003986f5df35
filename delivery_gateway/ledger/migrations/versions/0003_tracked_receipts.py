"""Receipts reconciliation re-reads: `ledger_tracked`, one row per receipt in a state that can still change.

Starts empty: receipts the ledger already holds in such a state are tracked from the next webhook or query that
sees them (the reconciliation window is a day, so nothing older would be re-read anyway).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SID = sa.String().with_variant(sa.String(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ledger_tracked",
        sa.Column("receipt_sid", SID, nullable=False),
        sa.Column("message_sid", SID, nullable=False),
        sa.Column("conversation_sid", SID, nullable=False),
        sa.Column("service_sid", SID),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("created_epoch", sa.BigInteger, nullable=False),
        sa.Column("checked_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("receipt_sid", name="pk_ledger_tracked"),
    )
    op.create_index("ix_ledger_tracked_due", "ledger_tracked", ["checked_at"])
    op.create_index("ix_ledger_tracked_message", "ledger_tracked", ["message_sid"])
    op.create_index("ix_ledger_tracked_created", "ledger_tracked", ["created_epoch"])


def downgrade() -> None:
    op.drop_table("ledger_tracked")
