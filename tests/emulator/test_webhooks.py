"""Webhooks the emulator posts: exactly the parameters Twilio documents per event, dates with milliseconds,
media in Twilio's event spelling, a signature twilio's RequestValidator accepts, routing (service-level over
account-level), filters, no retries unless asked, and the drop/duplicate/reorder/extra-parameter knobs.
Receiver and emulator bind ephemeral ports.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from twilio.request_validator import RequestValidator

from delivery_gateway.emulator import EmulatorState, serve_emulator
from delivery_gateway.emulator.store import ConversationStore
from delivery_gateway.emulator.webhooks import WebhookEvent, signed_request
from tests.emulator.conftest import fast_config

# Twilio's "Conversations Webhooks" page: the parameters every request carries, then each event's table.
COMMON = {"EventType", "AccountSid", "Source", "ClientIdentity"}
BINDING = {"MessagingBinding.ProxyAddress", "MessagingBinding.Address", "MessagingBinding.ProjectedAddress"}
DOCUMENTED = {
    "onConversationAdded": {
        "ConversationSid", "DateCreated", "DateUpdated", "FriendlyName", "UniqueName", "Attributes",
        "ChatServiceSid", "MessagingServiceSid", "State", *BINDING, "MessagingBinding.AuthorAddress",
    },
    "onMessageAdded": {
        "ConversationSid", "MessageSid", "MessagingServiceSid", "Index", "DateCreated", "Body", "Author",
        "ParticipantSid", "Attributes", "Media",
    },
    "onMessageUpdated": {
        "ConversationSid", "MessageSid", "Index", "DateCreated", "DateUpdated", "Body", "Author", "ParticipantSid",
        "Attributes", "Media",
    },
    "onMessageRemoved": {
        "ConversationSid", "MessageSid", "Index", "DateCreated", "DateUpdated", "DateRemoved", "Body", "Author",
        "ParticipantSid", "Attributes", "Media",
    },
    "onParticipantAdded": {
        "ConversationSid", "ParticipantSid", "DateCreated", "Identity", "RoleSid", "Attributes", *BINDING,
        "MessagingBinding.Type",
    },
    "onParticipantUpdated": {
        "ConversationSid", "ParticipantSid", "DateCreated", "DateUpdated", "Identity", "RoleSid", "Attributes",
        *BINDING, "MessagingBinding.Type", "LastReadMessageIndex",
    },
    "onParticipantRemoved": {
        "ConversationSid", "ParticipantSid", "DateCreated", "DateUpdated", "DateRemoved", "Identity", "RoleSid",
        "Attributes", *BINDING, "MessagingBinding.Type",
    },
}  # fmt: skip
# onDeliveryUpdated's table is complete on its own (no Source: no value of "SDK or API" fits a carrier receipt).
DELIVERY = {
    "EventType", "AccountSid", "ConversationSid", "ChatServiceSid", "MessageSid", "DeliveryReceiptSid",
    "ChannelMessageSid", "ParticipantSid", "Status", "ErrorCode", "DateCreated", "DateUpdated",
}  # fmt: skip
MILLISECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ALL_EVENTS = [*DOCUMENTED, "onDeliveryUpdated"]
WEBHOOK_ON = {"X-Twilio-Webhook-Enabled": "true"}


def allowed(event_type: str) -> set[str]:
    return DELIVERY if event_type == "onDeliveryUpdated" else COMMON | DOCUMENTED[event_type]


def assert_documented(params: dict[str, str]) -> None:
    event_type = params["EventType"]
    assert set(params) <= allowed(event_type), set(params) - allowed(event_type)
    for name, value in params.items():
        if name.startswith("Date"):
            assert MILLISECONDS.match(value), (name, value)
        assert value != "None"


def mixed_conversation(store: ConversationStore, service_sid: str | None = None):
    conversation = store.create_conversation(service_sid=service_sid, friendly_name="webhooks")
    store.create_participant(conversation.sid, identity="agent")
    store.create_participant(conversation.sid, identity="watcher")
    store.create_participant(conversation.sid, address="+15550000001", proxy_address="+15017122661")
    store.create_participant(conversation.sid, address="whatsapp:+15550000002", proxy_address="whatsapp:+1415")
    return conversation


async def post_messages(receiver, filters: list[str], count: int = 1, **knobs) -> EmulatorState:
    """Serve an emulator with `knobs` (simulator off), point `filters` at `receiver`, write `count` messages to a
    mixed conversation and wait for the webhooks; returns the (closed) state for its counters."""
    async with serve_emulator(fast_config(simulate=False, **knobs)) as running:
        state = running.state
        state.set_webhook(post_webhook_url=receiver.url, filters=filters)
        conversation = mixed_conversation(state.store)
        for n in range(count):
            state.store.create_message(conversation.sid, author="agent", body=f"m{n}")
        await state.webhooks.drain()
    return state


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
                headers=WEBHOOK_ON,
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
        assert_documented(webhook.params)
    [added] = webhook_receiver.events("onMessageAdded")
    assert added.params["MessageSid"] == created.json()["sid"] and added.params["Index"] == "0"
    assert added.params["Source"] == "API" and "ClientIdentity" not in added.params
    assert "ChatServiceSid" not in added.params and "DateUpdated" not in added.params  # not in its table
    deliveries = webhook_receiver.events("onDeliveryUpdated")
    assert all("ErrorCode" not in w.params and "Source" not in w.params for w in deliveries)
    by_receipt: dict[str, list[str]] = {}
    for webhook in deliveries:
        by_receipt.setdefault(webhook.params["ChannelMessageSid"][:2], []).append(webhook.params["Status"])
        # DateUpdated appears once the receipt has been updated (null, hence absent, on its first status).
        assert ("DateUpdated" in webhook.params) == (webhook.params["Status"] != "sent")
    assert by_receipt == {"SM": ["sent", "delivered"], "WA": ["sent", "delivered", "read"]}
    [read] = webhook_receiver.events("onParticipantUpdated")
    assert read.params["Identity"] == "watcher" and read.params["LastReadMessageIndex"] == "0"
    assert (read.params["Source"], read.params["ClientIdentity"]) == ("SDK", "watcher")
    assert read.params["MessagingBinding.Type"] == "CHAT" and "LastReadTimestamp" not in read.params


async def test_every_event_carries_only_documented_parameters(webhook_receiver):
    """Each REST action, with the header, fires its event; none carries a parameter Twilio does not document."""
    async with serve_emulator(fast_config(failure_rate=1, simulate=False)) as running:
        state = running.state
        state.set_webhook(post_webhook_url=webhook_receiver.url, filters=ALL_EVENTS)
        auth = (state.config.account_sid, state.config.auth_token)
        async with httpx.AsyncClient(base_url=running.base_url, auth=auth, headers=WEBHOOK_ON) as http:
            sid = (await http.post("/v1/Conversations", data={"UniqueName": "audit"})).json()["sid"]
            base = f"/v1/Conversations/{sid}"
            sms = (
                await http.post(
                    f"{base}/Participants",
                    data={"MessagingBinding.Address": "+15550000009", "MessagingBinding.ProxyAddress": "+15017122661"},
                )
            ).json()
            chat = (await http.post(f"{base}/Participants", data={"Identity": "agent"})).json()
            await http.post(
                f"{base}/Participants", data={"Identity": "gmms", "MessagingBinding.ProjectedAddress": "+15017122662"}
            )
            media = {"Author": "agent", "MediaSid": "ME" + "1" * 32}
            message = (await http.post(f"{base}/Messages", data=media)).json()
            await http.post(f"{base}/Messages/{message['sid']}", data={"Body": "edited"})
            await http.post(f"{base}/Participants/{chat['sid']}", data={"LastReadMessageIndex": "0"})
            await state.simulator.advance_all()
            assert (await http.delete(f"{base}/Messages/{message['sid']}")).status_code == 204
            assert (await http.delete(f"{base}/Participants/{sms['sid']}")).status_code == 204
            await state.webhooks.drain()
    seen = {w.params["EventType"] for w in webhook_receiver.received}
    assert seen == set(ALL_EVENTS)
    for webhook in webhook_receiver.received:
        assert_documented(webhook.params)
    [failed] = [w for w in webhook_receiver.events("onDeliveryUpdated") if w.params.get("ErrorCode")]
    assert int(failed.params["ErrorCode"]) >= 30000
    gmms = next(w for w in webhook_receiver.events("onParticipantAdded") if w.params.get("Identity") == "gmms")
    assert gmms.params["MessagingBinding.ProjectedAddress"] == "+15017122662"
    [removed] = webhook_receiver.events("onParticipantRemoved")
    assert removed.params["ParticipantSid"] == sms["sid"] and "DateRemoved" in removed.params


@pytest.mark.parametrize(("sid_key", "expected_key"), [(None, "Sid"), ("MediaSid", "MediaSid")])
async def test_media_uses_twilios_event_spelling(webhook_receiver, sid_key, expected_key):
    overrides = {"webhook_media_sid_key": sid_key} if sid_key else {}
    async with serve_emulator(fast_config(simulate=False, **overrides)) as running:
        state = running.state
        state.set_webhook(post_webhook_url=webhook_receiver.url, filters=["onMessageAdded"])
        conversation = mixed_conversation(state.store)
        media = [{"sid": "ME" + "a" * 32, "size": 42056, "content_type": "image/jpeg", "filename": "car.jpg"}]
        state.store.create_message(conversation.sid, author="agent", media=media)
        await state.webhooks.drain()
    [added] = webhook_receiver.received
    assert json.loads(added.params["Media"]) == [
        {expected_key: "ME" + "a" * 32, "Filename": "car.jpg", "ContentType": "image/jpeg", "Size": 42056}
    ]
    assert "Body" not in added.params  # a media-only message has no body


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
                f"/v1/Conversations/{sid}/Messages", data={"Body": "with header"}, headers=WEBHOOK_ON
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


async def test_service_level_configuration_overrides_the_account_level_one(webhook_receiver):
    """Per-Service Webhook resource: "If configured, service-scoped webhooks will override your global webhook
    settings such that only the service-scoped hooks will fire. This applies only to the services where
    service-level hooks are configured." The default service is a service like any other."""
    async with serve_emulator(fast_config(simulate=False)) as running:
        state = running.state
        store = state.store
        configured, bare = store.create_service("EU"), store.create_service("US")
        state.set_webhook(post_webhook_url=webhook_receiver.url + "?scope=account", filters=["onDeliveryUpdated"])
        state.set_webhook(
            post_webhook_url=webhook_receiver.url + "?scope=service",
            filters=["onMessageAdded"],
            service_sid=configured.sid,
        )
        in_default, in_configured, in_bare = (
            mixed_conversation(store),
            mixed_conversation(store, configured.sid),
            mixed_conversation(store, bare.sid),
        )
        for conversation in (in_default, in_configured, in_bare):
            store.create_message(conversation.sid, author="agent", body="x")
        await state.simulator.advance_all()
        seen = {
            (w.url.rsplit("=", 1)[-1], w.params["EventType"], w.params["ConversationSid"])
            for w in webhook_receiver.received
        }
        assert seen == {
            ("account", "onDeliveryUpdated", in_default.sid),
            ("account", "onDeliveryUpdated", in_bare.sid),  # no service-level configuration: account-level fires
            ("service", "onMessageAdded", in_configured.sid),  # its own filters, and nothing from account-level
        }
        for webhook in webhook_receiver.received:  # the signature covers the URL with its query string
            assert RequestValidator(state.config.auth_token).validate(
                webhook.url, webhook.params, webhook.headers["X-Twilio-Signature"]
            )
        # The default service's own service-level configuration overrides the account-level one too.
        webhook_receiver.received.clear()
        state.set_webhook(
            post_webhook_url=webhook_receiver.url + "?scope=default",
            filters=["onDeliveryUpdated"],
            service_sid=store.default_service.sid,
        )
        store.create_message(in_default.sid, author="agent", body="y")
        await state.webhooks.drain()
        assert {w.url.rsplit("=", 1)[-1] for w in webhook_receiver.received} == {"default"}


@pytest.mark.parametrize("pre_overrides", [True, False])
async def test_a_service_with_only_a_pre_event_url_hides_account_webhooks_by_default(webhook_receiver, pre_overrides):
    async with serve_emulator(fast_config(simulate=False, service_pre_webhook_overrides=pre_overrides)) as running:
        state = running.state
        service = state.store.create_service("pre only")
        state.set_webhook(post_webhook_url=webhook_receiver.url, filters=["onDeliveryUpdated"])
        state.store.webhook_settings(service.sid).pre_webhook_url = "https://pre.example/hook"
        conversation = mixed_conversation(state.store, service.sid)
        state.store.create_message(conversation.sid, author="agent", body="x")
        await state.webhooks.drain()
    assert len(webhook_receiver.received) == (0 if pre_overrides else 2)


async def test_no_retries_by_default(webhook_receiver):
    """Twilio's post_webhook_retry_count: "The default is 0, which means the call won't be retried"."""
    webhook_receiver.fail_next, webhook_receiver.fail_status = 1, 503
    state = await post_messages(webhook_receiver, ["onMessageAdded"])
    assert state.config.webhook_retries == 0
    assert (webhook_receiver.attempts, webhook_receiver.received) == (1, [])
    assert (state.webhooks.abandoned, state.webhooks.delivered) == (1, 0)


@pytest.mark.parametrize(("status", "retried"), [(429, True), (503, True), (504, True), (500, False), (502, False)])
async def test_retry_knob_retries_what_twilio_documents(webhook_receiver, status, retried):
    """post_webhook_retry_count retries a call that "times out (after 5 seconds) or it receives a 429, 503, or
    504 HTTP response"; other answers end the event."""
    webhook_receiver.fail_next, webhook_receiver.fail_status = 2, status
    state = await post_messages(webhook_receiver, ["onMessageAdded"], webhook_retries=2)
    if retried:
        [webhook] = webhook_receiver.received
        assert webhook_receiver.attempts == 3 and "RetryCount" not in webhook.params
    else:
        assert (webhook_receiver.attempts, webhook_receiver.received) == (1, [])
        assert state.webhooks.delivered == 1  # answered: Twilio does not retry it


async def test_timeouts_are_retried_only_with_the_knob(webhook_receiver):
    webhook_receiver.delay_next, webhook_receiver.delay = 1, 0.3
    await post_messages(webhook_receiver, ["onMessageAdded"], webhook_retries=1, webhook_timeout=0.1)
    assert webhook_receiver.attempts == 2 and len(webhook_receiver.received) == 1


async def test_concurrent_workers_deliver_every_event(webhook_receiver):
    await post_messages(webhook_receiver, ["onMessageAdded"], 12, webhook_concurrency=4)
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


async def test_drop_knob_loses_a_seeded_share_and_counts_it(webhook_receiver):
    async def run(seed: int, rate: float) -> tuple[list[str], int]:
        webhook_receiver.received.clear()
        state = await post_messages(webhook_receiver, ["onMessageAdded"], 40, seed=seed, webhook_drop_rate=rate)
        return [w.params["Index"] for w in webhook_receiver.received], state.webhooks.dropped

    kept, dropped = await run(3, 0.5)
    assert 0 < dropped < 40 and len(kept) + dropped == 40
    assert (kept, dropped) == await run(3, 0.5)  # the same seed drops the same events
    assert (await run(4, 0.5))[0] != kept
    assert await run(3, 1.0) == ([], 40)


@pytest.mark.parametrize("knob", ["webhook_duplicate_rate", "webhook_reorder_rate"])
async def test_duplication_and_reordering_knobs(webhook_receiver, knob):
    await post_messages(webhook_receiver, ["onMessageAdded", "onDeliveryUpdated"], failure_rate=0, **{knob: 1.0})
    events = [w.params["EventType"] for w in webhook_receiver.received]
    if knob == "webhook_duplicate_rate":
        assert events == ["onMessageAdded"] * 2 + ["onDeliveryUpdated"] * 4
        tokens = [w.headers["I-Twilio-Idempotency-Token"] for w in webhook_receiver.received]
        assert tokens[0] == tokens[1] and tokens[2] == tokens[3] != tokens[4]
    else:
        assert events == ["onDeliveryUpdated", "onMessageAdded", "onDeliveryUpdated"]


async def test_extra_parameter_knob_adds_undocumented_parameters(webhook_receiver):
    extra = {"RetryCount": "0", "FutureField": "x"}
    state = await post_messages(webhook_receiver, ["onDeliveryUpdated"], webhook_extra_params=extra)
    assert webhook_receiver.received
    for webhook in webhook_receiver.received:
        assert (webhook.params["RetryCount"], webhook.params["FutureField"]) == ("0", "x")
        assert RequestValidator(state.config.auth_token).validate(
            webhook.url, webhook.params, webhook.headers["X-Twilio-Signature"]
        )


def test_get_method_webhooks_sign_the_full_query_url():
    event = WebhookEvent("https://gw.example/webhooks/twilio?x=1", "GET", {"EventType": "onMessageAdded", "A": "b c"})
    url, form, headers = signed_request("token", event)
    assert form == {} and url.startswith(event.url + "&")
    assert RequestValidator("token").validate(url, {}, headers["X-Twilio-Signature"])
    assert not RequestValidator("other").validate(url, {}, headers["X-Twilio-Signature"])
