"""Webhook ingest in batches, through `create_app`: a group commit that fails answers 503 to every request it
carried and loses no acknowledged event; webhooks applied in batches end where each applied alone ends; applying
keeps up with acknowledging under sustained posting.

In-process (httpx ASGI transport) on the SQLite default; never needs the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter

import httpx
from sqlalchemy import event

from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import create_ledger
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.webhooks.parse import parse_event
from tests.ledger import scenario
from tests.live.harness import ingest_app, sign

TOKEN = "test-auth-token"
URL = "http://testserver/webhooks/twilio"
ACCOUNT = "AC" + "0" * 32


def form_of(e: DeliveryEvent) -> dict[str, str]:
    """The `onDeliveryUpdated` form Twilio would post for `e`."""
    form = {
        "EventType": "onDeliveryUpdated",
        "AccountSid": ACCOUNT,
        "ChatServiceSid": e.service_sid,
        "ConversationSid": e.conversation_sid,
        "MessageSid": e.message_sid,
        "DeliveryReceiptSid": e.receipt_sid,
        "ParticipantSid": e.participant_sid,
        "ChannelMessageSid": e.channel_message_sid,
        "Status": e.status.value,
        "ErrorCode": str(e.error_code) if e.error_code else None,
        "DateCreated": e.date_created,
        "DateUpdated": e.date_updated,
        "Source": "API",
    }
    return {k: v for k, v in form.items() if v}


def storm_forms(seed: int, receipts: int) -> list[dict[str, str]]:
    events = scenario.storm(seed=seed, receipts=receipts)
    return [form_of(e) for e in scenario.duplicated_and_shuffled(events, seed=seed) if isinstance(e, DeliveryEvent)]


@contextlib.asynccontextmanager
async def ingest_client(tmp_path):
    settings = Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        DELIVERY_GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/ledger.sqlite3",
    )
    async with ingest_app(settings) as gateway:
        transport = httpx.ASGITransport(app=gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, gateway.services, gateway.ingest


async def post(client: httpx.AsyncClient, form: dict[str, str]) -> int:
    return (await client.post("/webhooks/twilio", data=form, headers=sign(TOKEN, URL, form))).status_code


async def test_a_failed_group_commit_answers_503_to_each_of_its_requests_and_loses_no_acknowledged_event(tmp_path):
    forms = [form_of(e) for e in scenario.storm(seed=11, receipts=60) if isinstance(e, DeliveryEvent)][:40]
    assert len({f["DeliveryReceiptSid"] for f in forms}) > 10
    async with ingest_client(tmp_path) as (client, services, ingest):
        ledger = services.ledger
        inserts: list[int] = []  # rows per inbox INSERT statement
        first_entered, release = threading.Event(), threading.Event()

        # The store: the first group commit is held until the second is queued, then commits; the second fails.
        def store(conn, cursor, statement, parameters, context, executemany) -> None:
            if not statement.startswith("INSERT INTO ledger_inbox"):
                return
            inserts.append(len(parameters) // 2)
            if len(inserts) == 1:
                first_entered.set()
                assert release.wait(10), "the test never released the first commit"
            elif len(inserts) == 2:
                raise ConnectionError("the store lost the write")

        event.listen(ledger._sqlite.engine, "before_cursor_execute", store)
        first_wave = [asyncio.create_task(post(client, f)) for f in forms[:20]]
        assert await asyncio.to_thread(first_entered.wait, 10)
        second_wave = [asyncio.create_task(post(client, f)) for f in forms[20:]]
        waiting = 40 - inserts[0]
        for _ in range(500):  # until every request not in the first commit waits for the next one
            if len(ledger._inbox_waiting) == waiting:
                break
            await asyncio.sleep(0.01)
        assert len(ledger._inbox_waiting) == waiting
        release.set()
        statuses = await asyncio.gather(*first_wave, *second_wave)
        await ingest.drain()
        event.remove(ledger._sqlite.engine, "before_cursor_execute", store)

        assert inserts == [inserts[0], waiting] and waiting >= 20  # two group commits, the second of many
        assert Counter(statuses) == {200: inserts[0], 503: waiting}
        acked = [f for f, s in zip(forms, statuses, strict=True) if s == 200]
        refused = [f for f, s in zip(forms, statuses, strict=True) if s == 503]
        # Every acknowledged event was applied; nothing of a refused one was recorded (Twilio may send it again).
        histories = await ledger.history_many({f["DeliveryReceiptSid"] for f in forms})
        recorded = {(sid, h.status.value) for sid, hs in histories.items() for h in hs}
        assert {(f["DeliveryReceiptSid"], f["Status"]) for f in acked} <= recorded
        assert not {(f["DeliveryReceiptSid"], f["Status"]) for f in refused} & recorded
        assert await ledger.inbox_pending() == []
        # The store is back: the same requests are acknowledged and applied.
        assert {await post(client, f) for f in refused} == {200}
        await ingest.drain()
        histories = await ledger.history_many({f["DeliveryReceiptSid"] for f in forms})
        recorded = {(sid, h.status.value) for sid, hs in histories.items() for h in hs}
        assert {(f["DeliveryReceiptSid"], f["Status"]) for f in forms} <= recorded


async def test_webhooks_applied_in_batches_end_where_each_applied_alone_ends(tmp_path):
    forms = storm_forms(seed=5, receipts=80)
    reference = create_ledger("memory://")
    await reference.start()
    try:
        for form in forms:  # one event per transaction, in the order posted
            event_ = parse_event(form)
            assert event_ is not None
            await reference.apply(event_)
        async with ingest_client(tmp_path) as (client, services, ingest):
            ledger = services.ledger
            batches: list[int] = []
            apply_many = ledger.apply_many

            async def counting(events, **kwargs):
                events = list(events)
                batches.append(len(events))
                return await apply_many(events, **kwargs)

            ledger.apply_many = counting
            pending = iter(forms)

            async def sender() -> list[int]:
                return [await post(client, form) for form in pending]

            statuses = [s for run in await asyncio.gather(*(sender() for _ in range(16))) for s in run]
            await ingest.drain()
            assert statuses == [200] * len(forms)
            assert max(batches) > 1 and sum(batches) == len(forms)  # applied in batches, every event once

            receipt_sids = sorted({f["DeliveryReceiptSid"] for f in forms})
            for sid in receipt_sids:
                assert await ledger.receipt(sid) == await reference.receipt(sid)
            assert await ledger.history_many(receipt_sids) == await reference.history_many(receipt_sids)
            assert await ledger.last_seq() == await reference.last_seq()  # as many changes
    finally:
        await reference.close()


async def test_applying_keeps_up_with_sustained_posting(tmp_path):
    rate, seconds, senders = 250, 2.0, 8  # events per second, posted evenly for `seconds`
    forms = [form_of(e) for e in scenario.storm(seed=17, receipts=400) if isinstance(e, DeliveryEvent)]
    forms = forms[: int(rate * seconds)]
    assert len(forms) == int(rate * seconds)
    async with ingest_client(tmp_path) as (client, _services, ingest):
        processor = ingest.processor
        acked = 0
        lags: list[int] = []
        started = time.monotonic()

        async def sender(offset: int) -> None:
            nonlocal acked
            for n in range(offset, len(forms), senders):
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                assert await post(client, forms[n]) == 200
                acked += 1

        async def watch() -> None:
            while True:
                await asyncio.sleep(0.05)
                lags.append(acked - processor.processed)

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(sender(k) for k in range(senders)))
        posted_in = time.monotonic() - started
        async with asyncio.timeout(2):  # the backlog left at the end is applied at once
            await ingest.drain()
        watcher.cancel()
        assert processor.processed == acked == len(forms)
        # Applied keeps pace: never more than half a second of events acknowledged and waiting (a busy machine
        # slows posting and applying alike, so the bound holds however long posting took).
        assert len(lags) >= 10 and max(lags) <= rate // 2, (f"posted in {posted_in:.1f} s", lags)


async def test_a_valid_signature_costs_one_hmac_and_the_port_variant_still_verifies(tmp_path, monkeypatch):
    from twilio.request_validator import RequestValidator

    from delivery_gateway.webhooks import signature

    computed: list[str] = []
    original = signature.compute_signature

    def counting(key, url, signed_params, digest):
        computed.append(url)
        return original(key, url, signed_params, digest)

    form = form_of(next(e for e in scenario.storm(seed=3, receipts=2) if isinstance(e, DeliveryEvent)))
    async with ingest_client(tmp_path) as (client, _services, _ingest):
        monkeypatch.setattr(signature, "compute_signature", counting)
        headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(URL, form)}
        assert (await client.post("/webhooks/twilio", data=form, headers=headers)).status_code == 200
        assert computed == [URL]
        computed.clear()
        # Signed with the default port spelled out (as Twilio may): the second spelling verifies it.
        with_port = "http://testserver:80/webhooks/twilio"
        headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(with_port, form)}
        assert (await client.post("/webhooks/twilio", data=form, headers=headers)).status_code == 200
        assert computed == [URL, with_port]
