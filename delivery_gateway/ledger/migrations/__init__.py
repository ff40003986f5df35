"""Alembic migrations of the delivery ledger's schema (SQLite and PostgreSQL); run by `ledger.migrate`.

Never edited once released: a schema change is a new revision under `versions/`.
"""
