"""`DeliveryReceipt.history` as the schema exposes it: the resolver in graphql/delivery/resolvers.py, attached
with a lazy type (the snippet handed to the GraphQL engineer), reads every status change from the ledger.

In-process only; never needs the network.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.kernel.callers import Caller, CallerKind
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import create_ledger
from tests.live.events_factory import delivery, sids
from tests.postgres_support import live_store_url

LazyStatusChange = Annotated["ReceiptStatusChange", strawberry.lazy("delivery_gateway.graphql.delivery.types")]  # noqa: F821


@strawberry.type
class Receipt:
    sid: str

    @strawberry.field(description="Every status this receipt took, oldest first (the gateway's ledger).")
    async def history(self, info: Info) -> list[LazyStatusChange] | None:
        from delivery_gateway.graphql.delivery.resolvers import receipt_history
        from delivery_gateway.graphql.delivery.types import ReceiptStatusChange

        return [ReceiptStatusChange.from_entry(e) for e in await receipt_history(info.context, self.sid)]


@strawberry.type
class Query:
    @strawberry.field
    def receipts(self, sids: list[str]) -> list[Receipt]:
        return [Receipt(sid=s) for s in sids]


async def test_history_field_reads_the_ledger_batched(tmp_path):
    ledger = create_ledger(live_store_url(tmp_path, "memory://"))
    await ledger.start()
    try:
        await _history_field_reads_the_ledger_batched(ledger)
    finally:
        await ledger.close()


async def _history_field_reads_the_ledger_batched(ledger) -> None:
    conv, msg = sids("CH", 1)[0], sids("IM", 1)[0]
    r1, r2 = sids("DY", 2)
    for event in [
        delivery(conv, msg, r1, "delivered", 2),
        delivery(conv, msg, r1, "sent", 1),
        delivery(conv, msg, r2, "failed", 3, error_code=30008),
    ]:
        await ledger.apply(event)
    calls = []
    original = ledger.history_many

    async def counting(keys):
        calls.append(list(keys))
        return await original(keys)

    ledger.history_many = counting
    services = GatewayServices(settings=Settings(_env_file=None), upstream=None, ledger=ledger)
    context = RequestContext(services, Caller(kind=CallerKind.INTERNAL, identity="t"))
    schema = strawberry.Schema(query=Query)
    result = await schema.execute(
        "query($s: [String!]!) { receipts(sids: $s) { sid history { status errorCode changedStatus cursor } } }",
        variable_values={"s": [r1, r2]},
        context_value=context,
    )
    assert result.errors is None, result.errors
    first, second = result.data["receipts"]
    assert [(h["status"], h["changedStatus"]) for h in first["history"]] == [("SENT", False), ("DELIVERED", True)]
    assert second["history"] == [{"status": "FAILED", "errorCode": 30008, "changedStatus": True, "cursor": "2"}]
    assert len(calls) == 1  # one ledger read for both receipts
