"""The ledger's Alembic revisions, oldest first (`0001_…`)."""
