"""Twilio's real behaviours, as the emulator models them, seen through the assembled gateway (`create_app`).

Each test drives the emulator into one documented (or harshest plausible) behaviour — a participant who joined
after the message, one who left, a Group MMS participant, receipt statuses beyond the five, media in webhooks,
read horizons moved back, receipts whose earlier statuses the gateway never saw — and asserts what a client
of the gateway receives. Never sleeps on a fixed schedule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta

from delivery_gateway.emulator.webhook_events import (
    ON_DELIVERY_UPDATED,
    ON_PARTICIPANT_UPDATED,
    delivery_params,
    participant_updated_params,
)
from tests.live.harness import TransportWsClient
from tests.live.test_end_to_end import emulator_config, live, settle

RECIPIENTS = """
query($c: String!, $m: String!, $svc: String) {
  message(conversationSid: $c, sid: $m, serviceSid: $svc) {
    ticks
    delivery { total sent delivered read failed undelivered }
    receipts { sid status reportedStatus participant { sid removed } }
    recipients { status channel source errorCode participant { sid channel removed } }
  }
}"""


def agent_sms_whatsapp(store):
    conversation = store.create_conversation(friendly_name="behaviours")
    store.create_participant(conversation.sid, identity="agent")
    sms = store.create_participant(conversation.sid, address="+15550001111", proxy_address="+15559990000")
    whatsapp = store.create_participant(
        conversation.sid, address="whatsapp:+15550002222", proxy_address="whatsapp:+15559990000"
    )
    return conversation, sms, whatsapp


async def test_recipients_are_the_participants_the_message_was_sent_to(tmp_path):
    """A participant who joined later is no recipient (Twilio: a new participant "will receive all subsequent
    messages"); one who left still counts, through the receipt Twilio keeps, shown as removed."""
    async with live(tmp_path) as lv:
        store = lv.emulator.state.store
        conversation, sms, whatsapp = agent_sms_whatsapp(store)
        message, receipts = store.create_message(conversation.sid, author="agent", body="hi", notify=False)
        failed = next(r for r in receipts if r.participant_sid == whatsapp.sid)
        failed.advance("failed", 63016, store.clock())
        store.remove_participant(whatsapp)
        late = store.create_participant(
            conversation.sid, address="+15550003333", date_created=message.date_created + timedelta(minutes=5)
        )
        data = await lv.query(RECIPIENTS, c=conversation.sid, m=message.sid)
        recipients = {r["participant"]["sid"]: r for r in data["message"]["recipients"]}
        assert late.sid not in recipients
        assert recipients[sms.sid]["status"] == "SENT" and recipients[sms.sid]["participant"]["removed"] is False
        gone = recipients[whatsapp.sid]
        assert gone["status"] == "FAILED" and gone["errorCode"] == 63016
        assert gone["participant"] == {"sid": whatsapp.sid, "channel": "WHATSAPP", "removed": True}
        assert gone["channel"] == "WHATSAPP" and gone["source"] == "RECEIPT"
        assert data["message"]["ticks"] == "FAILED"
        by_receipt = {r["participant"]["sid"]: r["participant"]["removed"] for r in data["message"]["receipts"]}
        assert by_receipt == {sms.sid: False, whatsapp.sid: True}

        # A later message reaches the late joiner and not the removed participant.
        later, _ = store.create_message(
            conversation.sid, author="agent", body="again", notify=False, date_created=late.date_created
        )
        data = await lv.query(RECIPIENTS, c=conversation.sid, m=later.sid)
        assert {r["participant"]["sid"] for r in data["message"]["recipients"]} == {sms.sid, late.sid}
        assert data["message"]["ticks"] == "SENT"


async def test_group_mms_participants_are_chat_participants_with_a_read_horizon(tmp_path):
    """Twilio's spec: `identity` is "non-null if (and only if) the participant is using the Conversations SDK";
    a Group MMS participant (`createGmms`: identity + projected_address) gets no receipts."""
    async with live(tmp_path) as lv:
        store = lv.emulator.state.store
        conversation = store.create_conversation(friendly_name="gmms")
        store.create_participant(conversation.sid, identity="agent")
        gmms = store.create_participant(conversation.sid, identity="alice", projected_address="+15017122661")
        message, _ = store.create_message(conversation.sid, author="agent", body="hi", notify=False)
        calls = lv.emulator.state.requests.count()
        data = await lv.query(RECIPIENTS, c=conversation.sid, m=message.sid)
        [recipient] = data["message"]["recipients"]
        assert recipient["participant"]["sid"] == gmms.sid
        assert (recipient["channel"], recipient["source"], recipient["status"]) == ("CHAT", "READ_HORIZON", "DELIVERED")
        assert data["message"]["ticks"] == "DELIVERED" and data["message"]["receipts"] == []
        # Message and Participants only: no Receipts list for a message no binding can receive.
        assert lv.emulator.state.requests.count() - calls == 2, lv.emulator.state.requests.snapshot()
        store.mark_read(gmms, message.index)
        participant = await lv.query(
            "query($c: String!) { conversation(sid: $c) { participants { sid channel projectedAddress } } }",
            c=conversation.sid,
        )
        assert {"sid": gmms.sid, "channel": "CHAT", "projectedAddress": "+15017122661"} in participant["conversation"][
            "participants"
        ]


async def test_receipt_statuses_beyond_the_five_degrade_to_pending(tmp_path, caplog):
    """Seed 002: a receipt's status "can be read, failed, delivered, undelivered, sent or null"; `queued` and
    statuses no document lists yet reach webhooks and lists too. None fails a webhook or a query."""
    unknown = "future-status-of-a-test"  # unique: each unknown status is logged once per process
    async with live(tmp_path, emulator_config(unknown_status=unknown)) as lv:
        state = lv.emulator.state
        store = state.store
        conversation, _sms, _whatsapp = agent_sms_whatsapp(store)
        caplog.set_level(logging.WARNING, logger="delivery_gateway")
        for knobs in ({"queued_rate": 1.0}, {"null_status_rate": 1.0}, {"unknown_status_rate": 1.0}):
            state.config.queued_rate = state.config.null_status_rate = state.config.unknown_status_rate = 0.0
            for name, value in knobs.items():
                setattr(state.config, name, value)
            message, _receipts = store.create_message(conversation.sid, author="agent", body=str(knobs))
            await settle(lv)
            data = (await lv.query(RECIPIENTS, c=conversation.sid, m=message.sid))["message"]
            assert [r["status"] for r in data["recipients"] if r["channel"] != "CHAT"] == ["PENDING", "PENDING"]
            assert data["ticks"] == "PENDING"
            reported = {r["reportedStatus"] for r in data["receipts"]}
            expected = {"queued_rate": "queued", "null_status_rate": None, "unknown_status_rate": unknown}
            assert reported == {expected[next(iter(knobs))]}
            assert data["delivery"]["total"] == 2
        # Every webhook was accepted (the emulator logs any answer >= 400), each unknown status logged once.
        assert not [r.getMessage() for r in caplog.records if "answered" in r.getMessage()]
        assert sum(f"unknown receipt status {unknown!r}" in r.getMessage() for r in caplog.records) == 1
        # The queued receipts then move on: a status Twilio documents wins over queued.
        state.config.queued_rate = 1.0
        state.config.null_status_rate = state.config.unknown_status_rate = 0.0
        message, _ = store.create_message(conversation.sid, author="agent", body="moves on")
        await settle(lv)
        await state.simulator.advance_all()
        await settle(lv)
        data = (await lv.query(RECIPIENTS, c=conversation.sid, m=message.sid))["message"]
        assert data["ticks"] in ("DELIVERED", "READ"), data


async def test_media_of_message_webhooks_reaches_message_events(tmp_path):
    """The `Media` webhook parameter in Twilio's event spelling (Sid or MediaSid, ContentType, Filename, Size)
    and in the REST spelling both come out as the same media of `messageEvents`."""
    query = """subscription($c: String!) { messageEvents(conversationSid: $c) {
      action message { sid media { sid contentType filename size } } } }"""
    media = [{"sid": "ME" + "a" * 32, "content_type": "image/png", "filename": "cat.png", "size": 1234}]
    expected = [{"sid": "ME" + "a" * 32, "contentType": "image/png", "filename": "cat.png", "size": 1234}]
    async with live(tmp_path, emulator_config(rest_webhooks_without_header=True)) as lv:
        state = lv.emulator.state
        state.set_webhook(post_webhook_url=lv.gateway.webhook_url, filters=["onMessageAdded", "onDeliveryUpdated"])
        conversation, _, _ = agent_sms_whatsapp(state.store)
        async with TransportWsClient.connect(lv.gateway.ws_url) as client:
            await client.subscribe(query, {"c": conversation.sid})
            await asyncio.sleep(0.1)
            for sid_key in ("Sid", "MediaSid"):
                state.config.webhook_media_sid_key = sid_key
                message, _ = state.store.create_message(conversation.sid, author="agent", media=media)
                await settle(lv)
                event = (await client.next())["payload"]["data"]["messageEvents"]
                assert event["message"] == {"sid": message.sid, "media": expected}, sid_key


async def test_delivery_summary_agrees_cold_and_warm(tmp_path):
    """A receipt sent, then failed, where the gateway saw only the failure: Twilio's summary still says it was
    sent. A warm read (cache updated by the webhook) equals a cold one (read from Twilio)."""
    async with live(tmp_path) as lv:
        state = lv.emulator.state
        store = state.store
        conversation, sms, _whatsapp = agent_sms_whatsapp(store)
        message, receipts = store.create_message(conversation.sid, author="agent", body="hi", notify=False)
        warm = (await lv.query(RECIPIENTS, c=conversation.sid, m=message.sid))["message"]
        assert warm["delivery"]["sent"] == "ALL"
        for receipt in receipts:  # the first status never reached the gateway; the failure does
            receipt.advance("failed" if receipt.participant_sid == sms.sid else "delivered", 30008, store.clock())
            if receipt.participant_sid != sms.sid:
                receipt.error_code = None
            state.webhooks.emit(conversation.service_sid, ON_DELIVERY_UPDATED, delivery_params(store, receipt))
        await settle(lv)
        calls = state.requests.count()
        warm = (await lv.query(RECIPIENTS, c=conversation.sid, m=message.sid))["message"]
        assert state.requests.count() == calls  # served from the cache the webhooks updated
        # Read through the service scope: cache entries of their own, never cached, so read from Twilio.
        cold = (await lv.query(RECIPIENTS, c=conversation.sid, m=message.sid, svc=conversation.service_sid))["message"]
        assert state.requests.count() > calls
        assert cold["delivery"] == {
            "total": 2,
            "sent": "ALL",
            "delivered": "SOME",
            "read": "NONE",
            "failed": "SOME",
            "undelivered": "NONE",
        }
        assert warm["delivery"] == cold["delivery"]


ROLLUP = """
query($c: String!) {
  conversation(sid: $c) {
    participants { sid lastReadMessageIndex }
    rollup(window: 50) { unread { participant { sid } count atLeast lastReadMessageIndex } }
  }
}"""


async def test_read_horizons_move_back_and_unread_counts_count_messages(tmp_path):
    """Twilio's Participant update takes any LastReadMessageIndex (the SDK marks messages unread with it), and
    message indices "may skip numbers": the gateway applies a horizon moved back and counts messages, and a
    participant with no horizon has an unknown (null) unread count, as the SDK reports."""
    async with live(tmp_path) as lv:
        state = lv.emulator.state
        store = state.store
        state.set_webhook(post_webhook_url=lv.gateway.webhook_url, filters=["onParticipantUpdated"])
        conversation = store.create_conversation(friendly_name="horizons")
        store.create_participant(conversation.sid, identity="agent")
        reader = store.create_participant(conversation.sid, identity="reader")
        newcomer = store.create_participant(conversation.sid, identity="newcomer")
        messages = [
            store.create_message(conversation.sid, author="agent", body=f"m{i}", notify=False)[0] for i in range(5)
        ]
        store.delete_message(messages[3])  # indices now 0, 1, 2, 4

        def report(index: int, seconds: int) -> None:
            when = messages[0].date_created + timedelta(seconds=seconds)
            store.update_participant(reader, last_read_message_index=index, when=when)
            state.webhooks.emit(
                conversation.service_sid, ON_PARTICIPANT_UPDATED, participant_updated_params(store, reader)
            )

        report(4, 10)
        await settle(lv)
        warm = (await lv.query(ROLLUP, c=conversation.sid))["conversation"]
        report(1, 20)  # marked unread back to message 1
        await settle(lv)
        calls = state.requests.count()
        data = (await lv.query(ROLLUP, c=conversation.sid))["conversation"]
        assert state.requests.count() == calls  # the webhook updated the cached participants
        assert {"sid": reader.sid, "lastReadMessageIndex": 1} in data["participants"]
        unread = {u["participant"]["sid"]: (u["count"], u["atLeast"]) for u in data["rollup"]["unread"]}
        assert unread[reader.sid] == (2, False)  # messages 2 and 4; not 4 - 1 = 3
        assert unread[newcomer.sid] == (None, False)
        assert {u["participant"]["sid"]: u["count"] for u in warm["rollup"]["unread"]}[reader.sid] == 0
        recipients = await lv.query(RECIPIENTS, c=conversation.sid, m=messages[2].sid)
        reader_state = [r for r in recipients["message"]["recipients"] if r["participant"]["sid"] == reader.sid]
        assert reader_state[0]["status"] == "DELIVERED"  # no longer READ

        # A late, older report (Twilio does not promise order) does not undo the newer one.
        older = dataclasses.replace(
            reader, last_read_message_index=4, date_updated=messages[0].date_created + timedelta(seconds=15)
        )
        state.webhooks.emit(conversation.service_sid, ON_PARTICIPANT_UPDATED, participant_updated_params(store, older))
        await settle(lv)
        data = (await lv.query(ROLLUP, c=conversation.sid))["conversation"]
        assert {"sid": reader.sid, "lastReadMessageIndex": 1} in data["participants"]


async def test_receipt_details_reach_clients_as_twilio_sends_them(tmp_path):
    """Seed 002: `date_updated` is "null if the delivery receipt has not been updated"; the spec's `error_code`
    `default: 0` means no error (knob); webhook dates carry milliseconds. A client sees no error, a null
    dateUpdated until the receipt moves, and the recipient's updatedAt at the receipt's creation meanwhile."""
    query = """query($c: String!, $m: String!) { message(conversationSid: $c, sid: $m) {
      receipts { status errorCode error { code } dateCreated dateUpdated history { status at } }
      recipients { channel updatedAt } } }"""
    async with live(tmp_path, emulator_config(error_code_when_none=0)) as lv:
        state = lv.emulator.state
        conversation, _, _ = agent_sms_whatsapp(state.store)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="hi")
        await settle(lv)
        fresh = (await lv.query(query, c=conversation.sid, m=message.sid))["message"]
        assert [(r["errorCode"], r["error"], r["dateUpdated"]) for r in fresh["receipts"]] == [(None, None, None)] * 2
        assert {r["updatedAt"] for r in fresh["recipients"] if r["channel"] != "CHAT"} == {
            r["dateCreated"] for r in fresh["receipts"]
        }
        await state.simulator.advance_all()
        await settle(lv)
        moved = (await lv.query(query, c=conversation.sid, m=message.sid))["message"]
        assert all(r["dateUpdated"] and r["errorCode"] is None for r in moved["receipts"])
        # The webhook's date (milliseconds) and the REST one (whole seconds) name the same moment.
        for receipt in moved["receipts"]:
            last = [h for h in receipt["history"] if h["status"] == receipt["status"]]
            assert last and last[0]["at"][:19] == receipt["dateUpdated"][:19], receipt


async def test_a_participant_who_just_joined_is_not_taken_for_a_removed_one(tmp_path):
    """The participants list is cached; a participant who joins and gets a message is named by its receipt's
    webhook before the cached list knows them: the webhook evicts the list, so they show as a current recipient."""
    async with live(tmp_path) as lv:
        store = lv.emulator.state.store
        conversation, sms, _ = agent_sms_whatsapp(store)
        first, _ = store.create_message(conversation.sid, author="agent", body="one")
        await settle(lv)
        await lv.query(RECIPIENTS, c=conversation.sid, m=first.sid)  # the participants list is now cached
        newcomer = store.create_participant(conversation.sid, address="+15550004444", proxy_address="+15559990000")
        second, _ = store.create_message(conversation.sid, author="agent", body="two")
        await settle(lv)
        data = await lv.query(RECIPIENTS, c=conversation.sid, m=second.sid)
        recipients = {r["participant"]["sid"]: r["participant"]["removed"] for r in data["message"]["recipients"]}
        assert recipients[newcomer.sid] is False and recipients[sms.sid] is False
