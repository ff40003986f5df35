"""Alembic environment of the delivery ledger: runs on the connection `ledger.migrate` hands over.

Never opens a connection or reads alembic.ini by itself: migrations run only through `ledger.migrate`
(gateway start-up and `delivery-gateway migrate`), which passes its connection in `config.attributes`.
"""

from __future__ import annotations

from alembic import context

from delivery_gateway.ledger.migrate import configure_context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run ledger migrations with `delivery-gateway migrate` (it supplies the connection)")
configure_context(context, connection)
with context.begin_transaction():
    context.run_migrations()
