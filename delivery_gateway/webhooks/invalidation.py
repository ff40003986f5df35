"""After a ledger change, updates or evicts exactly the cache entries it affects (named by cache/keys.py).

Never invents cache keys and never fails the event: a cache error only costs a later upstream call. Data it
writes comes from the event and what is already cached (no upstream call here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from delivery_gateway.cache import ResourceCache, keys
from delivery_gateway.cache.responses import ResponseCache
from delivery_gateway.cache.ttl import TtlPolicy
from delivery_gateway.delivery.summary import current_summary
from delivery_gateway.kernel.read_set import conversation_dep, message_dep
from delivery_gateway.kernel.records import ConfigurationRecord, MessageRecord, ParticipantRecord, ReceiptRecord
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import ApplyResult, DeliveryLedger, LedgerEvent
from delivery_gateway.ledger.events import (
    ConversationEvent,
    DeliveryEvent,
    MembershipEvent,
    MessageEvent,
    ReadHorizonEvent,
)

log = logging.getLogger(__name__)


class CacheInvalidator:
    """Keeps the resource cache true to what the ledger just applied (`after_apply`, called per event)."""

    def __init__(self, cache: ResourceCache, ledger: DeliveryLedger, settings: Settings) -> None:
        self.cache = cache
        self.ledger = ledger
        self.settings = settings
        self.ttl = TtlPolicy.from_settings(settings)  # the TTLs the loaders use for the same entries

    async def after_apply(self, event: LedgerEvent, result: ApplyResult) -> None:
        await self.after_apply_many([event], [result])

    async def after_apply_many(self, events: Sequence[LedgerEvent], results: Sequence[ApplyResult]) -> None:
        """The events of one commit group, in order. Consecutive deliveries share one read of every entry they
        may update (one `get_many` per run, not per event); each later one sees what the earlier ones wrote, so the
        outcome is that of the events applied one by one. An event that fails logs and never skips the next."""
        prefetched: dict[str, Any] | None = None
        for n, (event, result) in enumerate(zip(events, results, strict=True)):
            try:
                if isinstance(event, DeliveryEvent):
                    if not _changed_receipt(result):
                        continue
                    if prefetched is None:
                        prefetched = await self._prefetch_deliveries(events[n:], results[n:])
                    if not prefetched:  # nothing the run may update is cached: each delivery would only read misses
                        continue
                    receipt = result.change.receipt if result.change is not None else None
                    if receipt is not None:  # rebuilt from the change's payload: only when there is a cache to update
                        await self._delivery(event, receipt, prefetched)
                    continue
                prefetched = None  # what it changes is read again by the deliveries after it
                await self._other(event, result)
            except Exception:
                prefetched = None
                log.warning("cache update after %s failed", type(event).__name__, exc_info=True)

    async def _other(self, event: LedgerEvent, result: ApplyResult) -> None:
        if isinstance(event, ReadHorizonEvent):
            if not result.duplicate:
                await self._participant_updated(event, horizon_moved=result.change is not None)
        elif isinstance(event, MembershipEvent):
            if not result.duplicate:
                await self._membership(event)
        elif isinstance(event, MessageEvent):
            if not result.duplicate:
                await self._message(event)
        elif isinstance(event, ConversationEvent) and not result.duplicate:
            await self._conversation(event)

    async def _prefetch_deliveries(
        self, events: Sequence[LedgerEvent], results: Sequence[ApplyResult]
    ) -> dict[str, Any]:
        """One read of every entry the run of deliveries starting the sequence may update."""
        wanted: list[str] = []
        for event, result in zip(events, results, strict=True):
            if not isinstance(event, DeliveryEvent):
                break
            if _changed_receipt(result):
                wanted += _delivery_keys(event)
        return await self.cache.get_many(list(dict.fromkeys(wanted)))

    # Delivery: the receipts list of the message, and the message's delivery summary
    async def _delivery(self, event: DeliveryEvent, receipt: ReceiptRecord, found: dict[str, Any]) -> None:
        """`found`: the entries as cached (read for the whole run of deliveries), kept up to date with what this
        writes and deletes, so the next delivery of the run reads them as the cache now holds them."""
        conv, msg = event.conversation_sid, event.message_sid
        receipt_keys = {s: keys.receipts(s, conv, msg) for s in keys.scopes(event.service_sid)}
        message_keys = {s: keys.message(s, conv, msg) for s in keys.scopes(event.service_sid)}
        participant_keys = keys.invalidation_keys_participants(event.service_sid, conv)
        await self._participants_named_by(receipt, participant_keys, found)

        updated_lists: dict[str, list[ReceiptRecord]] = {}
        for key in receipt_keys.values():
            cached = found.get(key)
            if cached is None:
                continue
            records = [ReceiptRecord.from_dict(r) for r in cached]
            replaced = [receipt if r.sid == receipt.sid else r for r in records]
            if not any(r.sid == receipt.sid for r in records):
                replaced.append(receipt)
            updated_lists[key] = replaced
        for key, records in updated_lists.items():
            value = [r.to_dict() for r in records]
            await self.cache.set_many({key: value}, self.ttl.for_receipts(records))
            found[key] = value

        cached_messages = {k: found[k] for k in message_keys.values() if found.get(k) is not None}
        if not cached_messages:
            return
        receipts = next(iter(updated_lists.values()), None)
        if receipts is None:  # the summary cannot be recomputed without every receipt: evict
            await self.cache.delete_many(list(cached_messages))
            for key in cached_messages:
                found.pop(key, None)
            return
        histories = await self.ledger.history_many([r.sid for r in receipts])
        fresh = {}
        for key, value in cached_messages.items():
            record = MessageRecord.from_dict(value)  # the summary rule: what a fresh read of Twilio would show
            fresh[key] = {**record.to_dict(), "delivery": current_summary(record.delivery, receipts, histories)}
        await self.cache.set_many(fresh, self.ttl.messages)
        found.update(fresh)

    async def _participants_named_by(
        self, receipt: ReceiptRecord, participant_keys: list[str], found: dict[str, Any]
    ) -> None:
        """A receipt for a participant a cached participants list lacks: the list is older than the participant
        (who joined since) or the participant left. Either way the next read refetches it, so a new participant
        is never taken for a removed one (recipients shown `removed` are those Twilio no longer lists)."""
        if not receipt.participant_sid:
            return
        stale = [
            key
            for key in participant_keys
            if isinstance(cached := found.get(key), list)
            and not any(isinstance(p, dict) and p.get("sid") == receipt.participant_sid for p in cached)
        ]
        if stale:
            await self.cache.delete_many(stale)
            for key in stale:
                found.pop(key, None)

    async def _participant_keys(self, service_sid: str | None, conversation_sid: str) -> list[str]:
        """Every key a participants list of the conversation may sit under. Participant webhooks name no
        ChatServiceSid (Conversations Webhooks, "Post Action Webhooks request parameters"), yet an Access Token
        caller's list is keyed by its token's service SID: without one, the lists under every service the gateway
        knows of are covered too (those this process stored lists under, the configured chat services and the
        account's cached default service; the cache is read, Twilio is not called)."""
        services: list[str | None] = [service_sid]
        if service_sid is None:
            services += sorted(self.cache.participant_scopes)
            services += self.settings.chat_service_sids
            cached = (await self.cache.get_many([keys.configuration()])).get(keys.configuration())
            if isinstance(cached, dict):
                services.append(ConfigurationRecord.from_dict(cached).default_chat_service_sid)
        out: list[str] = []
        for service in dict.fromkeys(services):
            out += keys.invalidation_keys_participants(service, conversation_sid)
        return list(dict.fromkeys(out))

    # Membership: the participants list
    async def _membership(self, event: MembershipEvent) -> None:
        """A participant joined or left: the next read refetches the list, so a new member is let in (and listed)
        and a removed one refused at once, instead of after the participants TTL."""
        await self.cache.delete_many(await self._participant_keys(event.service_sid, event.conversation_sid))

    # onParticipantUpdated: the participants list (the read horizon in place; anything else evicts)
    async def _participant_updated(self, event: ReadHorizonEvent, *, horizon_moved: bool) -> None:
        """A moved read horizon is written into the cached lists that hold the participant (the common case: no
        upstream call). A list that lacks the participant, holds it under another identity (an update may change
        Identity, which decides access) or with a horizon the update no longer reports, is evicted."""
        participant_keys = await self._participant_keys(event.service_sid, event.conversation_sid)
        found = await self.cache.get_many(participant_keys)
        evict, fresh = [], {}
        for key in participant_keys:
            cached = found.get(key)
            if cached is None:
                continue
            records = [ParticipantRecord.from_dict(p) for p in cached]
            mine = next((p for p in records if p.sid == event.participant_sid), None)
            renamed = mine is not None and event.identity is not None and mine.identity != event.identity
            # Twilio leaves null parameters out: an update without LastReadMessageIndex for a participant cached
            # with one may be a cleared horizon (marked all unread), and a horizon reported again after that may
            # be one the ledger already had. The ledger orders neither, so the list is refetched: Twilio's value.
            cleared = (
                mine is not None
                and not horizon_moved
                and (event.last_read_message_index is None) != (mine.last_read_message_index is None)
            )
            if mine is None or renamed or cleared:
                evict.append(key)
                continue
            if not horizon_moved:
                continue
            out = []
            for p in records:
                data = p.to_dict()
                if p.sid == event.participant_sid:
                    data["last_read_message_index"] = event.last_read_message_index
                    # onParticipantUpdated carries no LastReadTimestamp: the horizon moved when the participant
                    # was updated, which is what REST reports as last_read_timestamp afterwards.
                    moved_at = event.last_read_timestamp or event.date_updated
                    if moved_at:
                        data["last_read_timestamp"] = moved_at
                out.append(data)
            fresh[key] = out
        if fresh:
            await self.cache.set_many(fresh, self.ttl.participants)
        if evict:
            await self.cache.delete_many(evict)

    # Messages: message pages on added/removed; the message itself on updated/removed
    async def _message(self, event: MessageEvent) -> None:
        conv, msg = event.conversation_sid, event.message_sid
        if event.action == "removed":
            await self.cache.delete_many(keys.invalidation_keys_message(event.service_sid, conv, msg))
        elif event.action == "updated":
            await self.cache.delete_many([keys.message(s, conv, msg) for s in keys.scopes(event.service_sid)])
        if event.action in ("added", "removed"):
            # Orphans every cached messages page of the conversation at once (both scopes).
            await self.cache.bump(keys.generation_keys(event.service_sid, conv))

    # Conversations: the conversation record
    async def _conversation(self, event: ConversationEvent) -> None:
        await self.cache.delete_many(keys.invalidation_keys_conversation(event.service_sid, event.conversation_sid))


def _changed_receipt(result: ApplyResult) -> bool:
    """The delivery's change carries a receipt (what `LedgerChange.receipt` would rebuild), without rebuilding it."""
    return result.change is not None and bool(result.change.payload.get("receipt"))


def _delivery_keys(event: DeliveryEvent) -> list[str]:
    """Every resource-cache entry a delivery may update: its message's receipts lists and records, and the
    conversation's participants lists."""
    conv, msg = event.conversation_sid, event.message_sid
    scopes = keys.scopes(event.service_sid)
    return [
        *(keys.receipts(s, conv, msg) for s in scopes),
        *(keys.message(s, conv, msg) for s in scopes),
        *keys.invalidation_keys_participants(event.service_sid, conv),
    ]


def response_dependencies(event: LedgerEvent, result: ApplyResult) -> list[str]:
    """The response-cache dependencies an applied event changes (kernel/read_set.py): a delivery or an edited
    message changes what was read of that message; anything else (a message added or removed, a participant joining,
    updated or leaving, the conversation itself) changes what was read of the conversation, membership decisions
    included. Nothing for a duplicate or a stale receipt."""
    if result.duplicate:
        return []
    if isinstance(event, DeliveryEvent):
        return [message_dep(event.message_sid)] if result.change is not None else []
    if isinstance(event, MessageEvent) and event.action == "updated":
        return [message_dep(event.message_sid)]
    conversation_sid = getattr(event, "conversation_sid", None)
    return [conversation_dep(conversation_sid)] if isinstance(conversation_sid, str) and conversation_sid else []


class ResponseInvalidator:
    """Drops the cached responses an applied event changes, on every replica (`ResponseCache.invalidate`).

    Runs after `CacheInvalidator` in the same after-commit hook: a response executed after the drop reads the
    resource cache already updated, and subscribers (published to afterwards) re-query fresh answers.
    """

    def __init__(self, responses: ResponseCache) -> None:
        self.responses = responses

    async def after_apply(self, event: LedgerEvent, result: ApplyResult) -> None:
        await self.after_apply_many([event], [result])

    async def after_apply_many(self, events: Sequence[LedgerEvent], results: Sequence[ApplyResult]) -> None:
        """One invalidation per event type of the commit group (the metric's label), not one per event: each is a
        drop here and one message to the other replicas."""
        by_reason: dict[str, list[str]] = {}
        for event, result in zip(events, results, strict=True):
            deps = response_dependencies(event, result)
            if deps:
                by_reason.setdefault(type(event).__name__, []).extend(deps)
        for reason, deps in by_reason.items():
            await self.responses.invalidate(deps, reason=reason)


class AfterApplyChain:
    """Several `after_apply_many` steps in order, each over the whole commit group; one failing never skips the
    next."""

    def __init__(self, *steps: CacheInvalidator | ResponseInvalidator) -> None:
        self.steps = steps

    async def after_apply_many(self, events: Sequence[LedgerEvent], results: Sequence[ApplyResult]) -> None:
        for step in self.steps:
            try:
                await step.after_apply_many(events, results)
            except Exception:
                log.warning("%s after %d events failed", type(step).__name__, len(events), exc_info=True)
