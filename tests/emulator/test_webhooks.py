"""Webhooks the emulator posts: Twilio's parameters, a signature twilio's RequestValidator accepts, routing by
scope and filters, retries, and the duplication/reordering knobs. Receiver and emulator bind ephemeral ports.
"""

from __future__ import annotations

import httpx
import pytest
from twilio.request_validator import RequestValidator

from delivery_gateway.emulator import serve_emulator
from delivery_gateway.emulator.store import ConversationStore
from delivery_gateway.emulator.webhooks import WebhookEvent, signed_request
from tests.emulator.conftest import fast_config

DELIVERY_PARAMS = {
    "EventType", "AccountSid", "ChatServiceSid", "ConversationSid", "MessageSid", "DeliveryReceiptSid",
    "ChannelMessageSid", "ParticipantSid", "Status", "DateCreated", "DateUpdated", "Source", "RetryCount",
}  # fmt: skip


def mixed_conversation(store: ConversationStore, service_sid: str | None = None):
    conversation = store.create_conversation(service_sid=service_sid, friendly_name="webhooks")
    store.create_participant(conversation.sid, identity="agent")
    store.create_participant(conversation.sid, identity="watcher")
    store.create_participant(conversation.sid, address="+15550000001", proxy_address="+15017122661")
    store.create_participant(conversation.sid, address="whatsapp:+15550000002", proxy_address="whatsapp:+1415")
    return conversation


async def test_delivery_webhooks_are_signed_and_follow_each_receipt(webhook_receiver):
    config = fast_config(failure_rate=0, whatsapp_read_rate=1, chat_read_rate=1)
    async with serve_emulator(config) as running:
        state = running.state
        state.set_webhook(
            post_webhook_url=webhook_receiver.url,
            filters=["onMessageAdded", "onDeliveryUpdated", "onParticipantUpdated"],
        )
        conversation = mixed_conversation(state.store)
        auth = (config.account_sid, config.auth_token)
        async with httpx.AsyncClient(base_url=running.base_url, auth=auth) as http:
            created = await http.post(
                f"/v1/Conversations/{conversation.sid}/Messages",
                data={"Author": "agent", "Body": "hi"},
                headers={"X-Twilio-Webhook-Enabled": "true"},
            )
        assert created.status_code == 201
        await state.simulator.idle()
    validator = RequestValidator(config.auth_token)
    for webhook in webhook_receiver.received:
        assert webhook.url == webhook_receiver.url
        signature = webhook.headers["X-Twilio-Signature"]
        assert validator.validate(webhook.url, webhook.params, signature)
        assert not validator.validate(webhook.url, {**webhook.params, "Status": "read!"}, signature)
        assert not validator.validate(webhook.url, webhook.params, signature[:-2] + "xx")
    [added] = webhook_receiver.events("onMessageAdded")
    assert added.params["MessageSid"] == created.json()["sid"] and added.params["Index"] == "0"
    deliveries = webhook_receiver.events("onDeliveryUpdated")
    assert all(DELIVERY_PARAMS <= set(w.params) and "ErrorCode" not in w.params for w in deliveries)
    by_receipt: dict[str, list[str]] = {}
    for webhook in deliveries:
        by_receipt.setdefault(webhook.params["ChannelMessageSid"][:2], []).append(webhook.params["Status"])
    assert by_receipt == {"SM": ["sent", "delivered"], "WA": ["sent", "delivered", "read"]}
    [read] = webhook_receiver.events("onParticipantUpdated")
    assert read.params["Identity"] == "watcher" and read.params["LastReadMessageIndex"] == "0"


async def test_rest_actions_fire_their_webhooks_only_with_the_header(webhook_receiver):
    async with serve_emulator(fast_config(failure_rate=0)) as running:
        state = running.state
        state.set_webhook(
            post_webhook_url=webhook_receiver.url,
            filters=["onMessageAdded", "onDeliveryUpdated", "onParticipantAdded", "onConversationAdded"],
        )
        auth = (state.config.account_sid, state.config.auth_token)
        async with httpx.AsyncClient(base_url=running.base_url, auth=auth) as http:
            sid = (await http.post("/v1/Conversations", data={})).json()["sid"]
            form = {
                "MessagingBinding.Address": "+15550000009",
                "MessagingBinding.ProxyAddress": "+15017122661",
            }
            assert (await http.post(f"/v1/Conversations/{sid}/Participants", data=form)).status_code == 201
            quiet = await http.post(f"/v1/Conversations/{sid}/Messages", data={"Body": "no header"})
            await state.simulator.idle()
            assert {w.params["EventType"] for w in webhook_receiver.received} == {"onDeliveryUpdated"}
            loud = await http.post(
                f"/v1/Conversations/{sid}/Messages",
                data={"Body": "with header"},
                headers={"X-Twilio-Webhook-Enabled": "true"},
            )
            await state.simulator.idle()
    [added] = webhook_receiver.events("onMessageAdded")
    assert added.params["MessageSid"] == loud.json()["sid"] != quiet.json()["sid"]
    assert added.params["Source"] == "API"


async def test_failed_receipts_carry_error_code(webhook_receiver):
    async with serve_emulator(fast_config(failure_rate=1)) as running:
        state = running.state
        state.set_webhook(post_webhook_url=webhook_receiver.url, filters=["onDeliveryUpdated"])
        conversation = mixed_conversation(state.store)
        state.store.create_message(conversation.sid, author="agent", body="doomed")
        await state.simulator.idle()
    finals = [w.params for w in webhook_receiver.received if w.params["Status"] in ("failed", "undelivered")]
    assert len(finals) == 2 and all(int(params["ErrorCode"]) >= 30000 for params in finals)


async def test_service_conversations_use_service_settings_and_filters_apply(webhook_receiver):
    async with serve_emulator(fast_config(simulate=False)) as running:
        state = running.state
        store = state.store
        service = store.create_service("EU")
        state.set_webhook(post_webhook_url=webhook_receiver.url + "?scope=account", filters=["onDeliveryUpdated"])
        state.set_webhook(
            post_webhook_url=webhook_receiver.url + "?scope=service",
            filters=["onMessageAdded"],
            service_sid=service.sid,
        )
        default_conversation = mixed_conversation(store)
        service_conversation = mixed_conversation(store, service.sid)
        store.create_message(default_conversation.sid, author="agent", body="a")
        store.create_message(service_conversation.sid, author="agent", body="b")
        await state.simulator.advance_all()
    seen = {
        (w.url.rsplit("=", 1)[-1], w.params["EventType"], w.params["ConversationSid"])
        for w in webhook_receiver.received
    }
    assert seen == {
        ("account", "onDeliveryUpdated", default_conversation.sid),
        ("service", "onMessageAdded", service_conversation.sid),
    }
    for webhook in webhook_receiver.received:  # the signature covers the URL with its query string
        assert RequestValidator(running.state.config.auth_token).validate(
            webhook.url, webhook.params, webhook.headers["X-Twilio-Signature"]
        )


async def test_5xx_answers_are_retried_with_retry_count(webhook_receiver):
    webhook_receiver.fail_next = 2
    async with serve_emulator(fast_config(simulate=False)) as running:
        state = running.state
        state.set_webhook(post_webhook_url=webhook_receiver.url, filters=["onMessageAdded"])
        conversation = mixed_conversation(state.store)
        state.store.create_message(conversation.sid, author="agent", body="retry me")
        await state.webhooks.drain()
    [webhook] = webhook_receiver.received
    assert webhook.params["RetryCount"] == "2"


async def test_concurrent_workers_deliver_every_event(webhook_receiver):
    config = fast_config(simulate=False, webhook_concurrency=4, webhook_retries=0)
    async with serve_emulator(config) as running:
        state = running.state
        state.set_webhook(post_webhook_url=webhook_receiver.url, filters=["onMessageAdded"])
        conversation = mixed_conversation(state.store)
        for n in range(12):
            state.store.create_message(conversation.sid, author="agent", body=f"m{n}")
        await state.webhooks.drain()
    assert sorted(int(w.params["Index"]) for w in webhook_receiver.received) == list(range(12))


async def test_unreachable_receiver_is_logged_not_fatal(caplog):
    async with serve_emulator(fast_config(failure_rate=0, webhook_retries=1)) as running:
        state = running.state
        state.set_webhook(post_webhook_url="http://127.0.0.1:9/webhooks/twilio", filters=["onDeliveryUpdated"])
        conversation = mixed_conversation(state.store)
        _, created = state.store.create_message(conversation.sid, author="agent", body="into the void")
        await state.simulator.idle()
        assert state.webhooks.abandoned >= 2
        assert {r.status for r in created} <= {"delivered", "read"}
    assert "abandoned" in caplog.text


@pytest.mark.parametrize("knob", ["webhook_duplicate_rate", "webhook_reorder_rate"])
async def test_duplication_and_reordering_knobs(webhook_receiver, knob):
    async with serve_emulator(fast_config(simulate=False, failure_rate=0, **{knob: 1.0})) as running:
        state = running.state
        state.set_webhook(post_webhook_url=webhook_receiver.url, filters=["onMessageAdded", "onDeliveryUpdated"])
        conversation = mixed_conversation(state.store)
        state.store.create_message(conversation.sid, author="agent", body="knobs")
        await state.webhooks.drain()
    events = [w.params["EventType"] for w in webhook_receiver.received]
    if knob == "webhook_duplicate_rate":
        assert events == ["onMessageAdded"] * 2 + ["onDeliveryUpdated"] * 4
        tokens = [w.headers["I-Twilio-Idempotency-Token"] for w in webhook_receiver.received]
        assert tokens[0] == tokens[1] and tokens[2] == tokens[3] != tokens[4]
    else:
        assert events == ["onDeliveryUpdated", "onMessageAdded", "onDeliveryUpdated"]


def test_get_method_webhooks_sign_the_full_query_url():
    event = WebhookEvent("https://gw.example/webhooks/twilio?x=1", "GET", {"EventType": "onMessageAdded", "A": "b c"})
    url, form, headers = signed_request("token", event, retry_count=0)
    assert form == {} and url.startswith(event.url + "&")
    assert RequestValidator("token").validate(url, {}, headers["X-Twilio-Signature"])
    assert not RequestValidator("other").validate(url, {}, headers["X-Twilio-Signature"])
