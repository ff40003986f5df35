"""`POST /webhooks/twilio`: signature (403), malformed (400), durable inbox, recovery, cache and pub/sub.

In-process (httpx ASGI transport); never needs the network or Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest

from delivery_gateway.cache import keys
from delivery_gateway.kernel.records import DeliveryStatus, MessageRecord, ReceiptRecord
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.kernel.sids import new_sid
from delivery_gateway.ledger import LedgerChange, create_ledger
from delivery_gateway.pubsub import conversation_channel
from tests.live.harness import ingest_app, sign
from tests.postgres_support import live_store_url

TOKEN = "test-auth-token"
URL = "http://testserver/webhooks/twilio"
CONV, MSG, RECEIPT, PART = new_sid("CH"), new_sid("IM"), new_sid("DY"), new_sid("MB")


def delivery_form(status: str = "delivered", receipt: str = RECEIPT, when: str = "2026-01-01T00:00:05Z"):
    return {
        "EventType": "onDeliveryUpdated",
        "AccountSid": "AC" + "0" * 32,
        "ConversationSid": CONV,
        "MessageSid": MSG,
        "DeliveryReceiptSid": receipt,
        "ParticipantSid": PART,
        "ChannelMessageSid": "SM" + "1" * 32,
        "Status": status,
        "DateCreated": "2026-01-01T00:00:00Z",
        "DateUpdated": when,
        "Source": "API",
    }


@contextlib.asynccontextmanager
async def ingest_client(tmp_path, **overrides):
    values = {"TWILIO_AUTH_TOKEN": TOKEN, "DELIVERY_GATEWAY_STORE_URL": live_store_url(tmp_path)}
    values.update(overrides)
    settings = Settings(_env_file=None, **values)
    async with ingest_app(settings) as gateway:
        transport = httpx.ASGITransport(app=gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, gateway.services, gateway.ingest


async def post(client: httpx.AsyncClient, params: dict, headers: dict | None = None, url: str = URL):
    return await client.post("/webhooks/twilio", data=params, headers=headers if headers is not None else {})


async def test_missing_or_bad_signature_is_403_and_changes_nothing(tmp_path):
    async with ingest_client(tmp_path) as (client, services, ingest):
        form = delivery_form()
        assert (await post(client, form)).status_code == 403
        bad = sign("another-token", URL, form)
        assert (await post(client, form, bad)).status_code == 403
        tampered = sign(TOKEN, URL, form)
        assert (await post(client, {**form, "Status": "read"}, tampered)).status_code == 403
        await ingest.drain()
        assert await services.ledger.inbox_pending() == []
        assert await services.ledger.receipt(RECEIPT) is None
        assert await services.ledger.last_seq() == 0


async def test_malformed_is_400_with_a_reason(tmp_path):
    async with ingest_client(tmp_path) as (client, services, _ingest):
        for change, reason in [
            ({"MessageSid": "IMnope"}, "MessageSid"),
            ({"DateUpdated": "yesterday"}, "DateUpdated"),
            ({"EventType": ""}, "EventType"),
        ]:
            form = {**delivery_form(), **change}
            response = await post(client, form, sign(TOKEN, URL, form))
            assert response.status_code == 400, change
            assert reason in response.json()["error"]
        body = json.dumps(delivery_form())
        response = await client.post(
            "/webhooks/twilio",
            content=body,
            headers={"content-type": "application/json", "X-Twilio-Signature": "x"},
        )
        assert response.status_code == 400
        # A status Twilio may send but the gateway does not know (seed 002 allows null; new ones may come) is no
        # malformed request: 200, nothing recorded, the receipt reads as pending.
        for status in ("teleported", ""):
            form = {**delivery_form(), "Status": status}
            response = await post(client, form, sign(TOKEN, URL, form))
            assert response.status_code == 200 and response.json()["status"] == "ignored", status
        assert await services.ledger.last_seq() == 0


async def test_accepted_event_is_applied_published_and_cached(tmp_path):
    async with ingest_client(tmp_path) as (client, services, ingest):
        cache = services.cache
        sent = ReceiptRecord(sid=RECEIPT, conversation_sid=CONV, message_sid=MSG, status=DeliveryStatus.SENT)
        other = ReceiptRecord(
            sid=new_sid("DY"), conversation_sid=CONV, message_sid=MSG, status=DeliveryStatus.DELIVERED
        )
        message = MessageRecord(sid=MSG, conversation_sid=CONV, index=0, delivery={"total": 2})
        await cache.set_many({keys.receipts(None, CONV, MSG): [sent.to_dict(), other.to_dict()]}, 60)
        await cache.set_many({keys.message(None, CONV, MSG): message.to_dict()}, 60)

        async with services.pubsub.subscribe(conversation_channel(CONV)) as sub:
            form = delivery_form("delivered")
            response = await post(client, form, sign(TOKEN, URL, form))
            assert response.status_code == 200
            text = await asyncio.wait_for(sub.__anext__(), 2)
        change = json.loads(text)
        assert change["payload"]["previous_status"] is None
        assert change["payload"]["receipt"]["status"] == "delivered"

        cached = await cache.get_many([keys.receipts(None, CONV, MSG), keys.message(None, CONV, MSG)])
        statuses = {r["sid"]: r["status"] for r in cached[keys.receipts(None, CONV, MSG)]}
        assert statuses[RECEIPT] == "delivered"
        summary = cached[keys.message(None, CONV, MSG)]["delivery"]
        assert summary == {
            "total": 2,
            "sent": "all",
            "delivered": "all",
            "read": "none",
            "failed": "none",
            "undelivered": "none",
        }

        # A duplicate and a stale event: 200, nothing published, state unchanged.
        async with services.pubsub.subscribe(conversation_channel(CONV)) as sub:
            for status, when in [("delivered", "2026-01-01T00:00:05Z"), ("sent", "2026-01-01T00:00:01Z")]:
                form = delivery_form(status, when=when)
                assert (await post(client, form, sign(TOKEN, URL, form))).status_code == 200
            await ingest.drain()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.__anext__(), 0.2)
        assert (await services.ledger.receipt(RECEIPT)).status is DeliveryStatus.DELIVERED
        assert [h.status.value for h in await services.ledger.history(RECEIPT)] == ["sent", "delivered"]


async def test_deliveries_nothing_cached_depends_on_cost_one_cache_read_per_batch_and_no_write(tmp_path, monkeypatch):
    """The cache update reads every entry a run of deliveries may touch at once; when none is cached there is
    nothing to update, and nothing is written, deleted or rebuilt per event. A cached one is still updated."""
    async with ingest_client(tmp_path) as (client, services, ingest):
        cache = services.cache
        calls: list[str] = []
        for name in ("get_many", "set_many", "delete_many"):
            original = getattr(cache, name)

            def counted(*args, _original=original, _name=name, **kwargs):
                calls.append(_name)
                return _original(*args, **kwargs)

            setattr(cache, name, counted)
        batches = 0
        apply_many = services.ledger.apply_many

        async def counting(events, **kwargs):
            nonlocal batches
            batches += 1
            return await apply_many(events, **kwargs)

        services.ledger.apply_many = counting
        rebuilt: list[int] = []
        receipt_of = LedgerChange.receipt.fget
        assert receipt_of is not None

        def rebuilding(change):
            rebuilt.append(change.seq)
            return receipt_of(change)

        monkeypatch.setattr(LedgerChange, "receipt", property(rebuilding))
        receipts = [new_sid("DY") for _ in range(12)]
        forms = [delivery_form(status, receipt=sid) for sid in receipts for status in ("sent", "delivered")]
        statuses = await asyncio.gather(*(post(client, form, sign(TOKEN, URL, form)) for form in forms))
        assert {r.status_code for r in statuses} == {200}
        await ingest.drain()
        assert calls and set(calls) == {"get_many"}
        assert len(calls) == batches < len(forms)  # one read per batch, not per event
        assert rebuilt == []  # no receipt record rebuilt from a change's payload for nothing
        assert (await services.ledger.receipt(receipts[0])).status is DeliveryStatus.DELIVERED

        # Once the message's receipts list is cached, a delivery updates it.
        sent = ReceiptRecord(sid=RECEIPT, conversation_sid=CONV, message_sid=MSG, status=DeliveryStatus.SENT)
        await cache.set_many({keys.receipts(None, CONV, MSG): [sent.to_dict()]}, 60)
        calls.clear()
        form = delivery_form("read")
        assert (await post(client, form, sign(TOKEN, URL, form))).status_code == 200
        await ingest.drain()
        assert "set_many" in calls and len(rebuilt) == 1
        cached = await cache.get_many([keys.receipts(None, CONV, MSG)])
        assert [r["status"] for r in cached[keys.receipts(None, CONV, MSG)]] == ["read"]


async def test_public_url_is_what_twilio_signed(tmp_path):
    public = "https://gateway.example.com"
    async with ingest_client(tmp_path, DELIVERY_GATEWAY_PUBLIC_URL=public) as (client, _services, _ingest):
        form = delivery_form()
        assert (await post(client, form, sign(TOKEN, URL, form))).status_code == 403
        response = await post(client, form, sign(TOKEN, public + "/webhooks/twilio", form))
        assert response.status_code == 200


async def test_unprocessed_inbox_is_processed_on_start(tmp_path):
    ledger = create_ledger(live_store_url(tmp_path))
    await ledger.start()
    await ledger.inbox_add(json.dumps(delivery_form("read", when="2026-01-01T00:00:09Z")))
    await ledger.close()  # "acknowledged, then the process died before processing"
    async with ingest_client(tmp_path) as (_client, services, _ingest):
        assert (await services.ledger.receipt(RECEIPT)).status is DeliveryStatus.READ
        assert await services.ledger.inbox_pending() == []


async def test_read_horizon_updates_cached_participants_and_messages_orphan_pages(tmp_path):
    from delivery_gateway.kernel.records import ParticipantRecord

    async with ingest_client(tmp_path) as (client, services, ingest):
        cache = services.cache
        reader = ParticipantRecord(sid=PART, conversation_sid=CONV, identity="reader", last_read_message_index=1)
        await cache.set_many({keys.participants(None, CONV): [reader.to_dict()]}, 60)
        generation_before = await cache.get_many(keys.generation_keys(None, CONV))
        horizon = {
            "EventType": "onParticipantUpdated",
            "ConversationSid": CONV,
            "ParticipantSid": PART,
            "Identity": "reader",
            "LastReadMessageIndex": "4",
            "LastReadTimestamp": "2026-01-01T00:01:00Z",
        }
        added = {
            "EventType": "onMessageAdded",
            "ConversationSid": CONV,
            "MessageSid": MSG,
            "Index": "5",
            "Author": "agent",
            "Body": "hello",
        }
        message_key = keys.message(None, CONV, MSG)
        await cache.set_many({message_key: {"sid": MSG, "conversation_sid": CONV, "index": 5}}, 60)
        removed = {**added, "EventType": "onMessageRemoved"}
        for form in (horizon, added, removed):
            assert (await post(client, form, sign(TOKEN, URL, form))).status_code == 200
        await ingest.drain()
        participants = (await cache.get_many([keys.participants(None, CONV)]))[keys.participants(None, CONV)]
        assert participants[0]["last_read_message_index"] == 4
        assert participants[0]["last_read_timestamp"].startswith("2026-01-01T00:01:00")
        generation_after = await cache.get_many(keys.generation_keys(None, CONV))
        assert generation_after and generation_after != generation_before
        assert await cache.get_many([message_key]) == {}
        kinds = [c.kind.value for c in await services.ledger.changes_after(CONV, 0)]
        assert kinds == ["read_horizon", "message", "message"]
