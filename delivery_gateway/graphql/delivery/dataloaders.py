"""Per-request DataLoaders of delivery state: a message's receipts (Twilio, cached) and receipts' histories
(the gateway's ledger).

Never outlives one request (or one subscription event). Receipts all in a final state are cached for the long
TTL; histories are batched but never cached (the ledger is the source and changes with every webhook).
"""

from __future__ import annotations

import logging
from typing import Any

from strawberry.dataloader import DataLoader

from delivery_gateway.cache import ResourceCache, TtlPolicy, cached_lookup, keys, store_fetched
from delivery_gateway.graphql.streaming_loader import StreamingLoader
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.ledger import DeliveryLedger, HistoryEntry
from delivery_gateway.upstream.api import ConversationsAPI

log = logging.getLogger(__name__)

MessageKey = tuple[str | None, str, str]  # (service scope, conversation SID, message SID)


def _to_json(items: list[ReceiptRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in items]


def _from_json(items: list[dict[str, Any]]) -> list[ReceiptRecord]:
    return [ReceiptRecord.from_dict(r) for r in items]


def receipts_loader(
    upstream: ConversationsAPI, cache: ResourceCache | None, ttl: TtlPolicy, ledger: DeliveryLedger
) -> StreamingLoader[MessageKey, list[ReceiptRecord]]:
    """Each message's Receipts list: the cache's entries at once, every other list fetched at once and settled as its
    own call answers (graphql/streaming_loader.py), so a page completes each message as its receipts arrive."""

    async def lookup(items: list[MessageKey]) -> dict[MessageKey, list[ReceiptRecord]]:
        if cache is None:
            return {}
        return await cached_lookup(cache, {k: keys.receipts(*k) for k in items}, decode=_from_json)

    async def fetch(key: MessageKey) -> list[ReceiptRecord]:
        return await upstream.list_receipts(key[1], key[2], service_sid=key[0])

    async def finish(fetched: dict[MessageKey, list[ReceiptRecord]]) -> None:
        if cache is not None:
            key_of = {k: keys.receipts(*k) for k in fetched}
            await store_fetched(cache, fetched, key_of, encode=_to_json, ttl_for=ttl.for_receipts)
        # Seen by a query: reconciliation re-reads those that can still change (a webhook may be lost). One
        # ledger call per scope for the whole batch (a page's receipts wave), not one per message.
        by_scope: dict[str | None, list[ReceiptRecord]] = {}
        for key, records in fetched.items():
            by_scope.setdefault(key[0], []).extend(records)
        for scope, records in by_scope.items():
            try:
                await ledger.track_receipts(records, service_sid=scope)
            except Exception:  # never fails the query: the next webhook or query tracks them
                log.warning("could not track %d receipts read from Twilio", len(records), exc_info=True)

    async def load(items: list[MessageKey]) -> list[list[ReceiptRecord] | BaseException]:
        return await loader.stream(items, lookup=lookup, fetch=fetch, finish=finish)

    loader: StreamingLoader[MessageKey, list[ReceiptRecord]] = StreamingLoader(load)
    return loader


def receipt_history_loader(ledger: DeliveryLedger) -> DataLoader[str, list[HistoryEntry]]:
    async def load(receipt_sids: list[str]) -> list[list[HistoryEntry]]:
        found = await ledger.history_many(receipt_sids)
        return [found.get(sid, []) for sid in receipt_sids]

    return DataLoader(load, cache=False)
