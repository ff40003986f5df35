"""The official twilio SDK (async API) against a served emulator: every resource, both scopes, several pages.

Talks to a real uvicorn server on an ephemeral port; never reaches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from delivery_gateway.emulator import serve_emulator
from tests.emulator.conftest import fast_config, is_sid

# The SDK's own aiohttp usage is deprecated upstream; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")


@pytest.fixture
async def sdk(emulator):
    config = emulator.state.config
    client = Client(config.account_sid, config.auth_token, http_client=AsyncTwilioHttpClient())
    client.conversations.base_url = emulator.base_url
    yield client
    await client.http_client.session.close()


async def test_lists_and_fetches_every_resource_in_both_scopes(emulator, sdk):
    store = emulator.state.store
    v1 = sdk.conversations.v1
    other_service = next(sid for sid in store.services if sid != store.default_service.sid)
    scopes = [(v1, store.default_service.sid), (v1.services(other_service), other_service)]
    for root, service_sid in scopes:
        conversations = await root.conversations.list_async(page_size=2)
        assert [c.sid for c in conversations] == [c.sid for c in store.conversations_in(service_sid)]
        for summary in conversations:
            conversation = root.conversations(summary.sid)
            fetched = await conversation.fetch_async()
            assert fetched.chat_service_sid == service_sid
            participants = await conversation.participants.list_async(page_size=2)
            assert len(participants) == len(store.participants[summary.sid])
            for participant in participants:
                assert (await conversation.participants(participant.sid).fetch_async()).sid == participant.sid
            messages = await conversation.messages.list_async(page_size=7, order="desc")
            assert [m.index for m in messages] == sorted((m.index for m in messages), reverse=True)
            assert len(messages) == len(store.messages[summary.sid])
            for message in messages[:3]:
                message_context = conversation.messages(message.sid)
                assert (await message_context.fetch_async()).delivery == message.delivery
                receipts = await message_context.delivery_receipts.list_async(page_size=1)
                assert len(receipts) == len(store.receipts_of(message.sid))
                for receipt in receipts:
                    fetched_receipt = await message_context.delivery_receipts(receipt.sid).fetch_async()
                    assert fetched_receipt.status == receipt.status
                    assert is_sid(fetched_receipt.channel_message_sid)


async def test_long_history_pages_in_both_orders(emulator, sdk):
    store = emulator.state.store
    long_one = max(store.conversations.values(), key=lambda c: c.next_index)
    assert long_one.next_index >= 60
    conversation = sdk.conversations.v1.conversations(long_one.sid)
    ascending = await conversation.messages.list_async(page_size=25)
    descending = await conversation.messages.list_async(page_size=25, order="desc")
    # 64 messages were written and the one at index 30 deleted: indices skip it, in order.
    expected = [index for index in range(long_one.next_index) if index != 30]
    assert [m.index for m in ascending] == expected
    assert [m.index for m in descending] == expected[::-1]
    pages = emulator.state.requests.count("GET /v1/Conversations/{ConversationSid}/Messages")
    assert pages == 2 * 3  # 63 messages at 25 a page, twice


async def test_creates_conversations_participants_messages_and_configures_webhooks(emulator, sdk):
    v1 = sdk.conversations.v1
    service_sid = emulator.state.store.create_service("SDK test").sid
    for root in (v1, v1.services(service_sid)):
        conversation = await root.conversations.create_async(friendly_name="Created by SDK")
        context = root.conversations(conversation.sid)
        chat = await context.participants.create_async(identity="agent.zed")
        sms = await context.participants.create_async(
            messaging_binding_address="+15550001111", messaging_binding_proxy_address="+15017122661"
        )
        whatsapp = await context.participants.create_async(
            messaging_binding_address="whatsapp:+15550002222",
            messaging_binding_proxy_address="whatsapp:+14155238886",
        )
        assert chat.messaging_binding is None
        assert sms.messaging_binding["type"] == "sms"
        assert whatsapp.messaging_binding["type"] == "whatsapp"
        message = await context.messages.create_async(author="agent.zed", body="hello")
        assert message.participant_sid == chat.sid
        assert message.delivery["total"] == 2
        updated = await context.messages(message.sid).update_async(body="hello again")
        assert updated.body == "hello again"
        receipts = await context.messages(message.sid).delivery_receipts.list_async()
        assert {r.participant_sid for r in receipts} == {sms.sid, whatsapp.sid}
    account = await v1.configuration.webhooks().update_async(
        post_webhook_url="https://gateway.example/webhooks/twilio",
        filters=["onDeliveryUpdated"],
        method="POST",
    )
    assert account.filters == ["onDeliveryUpdated"]
    assert (await v1.configuration.webhooks().fetch_async()).post_webhook_url.endswith("/webhooks/twilio")
    service_webhooks = v1.services(service_sid).configuration.webhooks()
    updated = await service_webhooks.update_async(
        post_webhook_url="https://gateway.example/svc", filters=["onDeliveryUpdated", "onMessageAdded"]
    )
    assert updated.chat_service_sid == service_sid
    assert (await service_webhooks.fetch_async()).filters == ["onDeliveryUpdated", "onMessageAdded"]


async def test_sdk_sees_twilio_errors(emulator, sdk):
    v1 = sdk.conversations.v1
    with pytest.raises(TwilioRestException) as missing:
        await v1.conversations("CH" + "0" * 32).fetch_async()
    assert (missing.value.status, missing.value.code) == (404, 20404)
    emulator.state.config.rate_limit_rate = 1.0
    with pytest.raises(TwilioException):  # a failed list page raises plain TwilioException
        await v1.conversations.list_async()
    with pytest.raises(TwilioRestException) as limited:
        await v1.conversations("CH" + "0" * 32).fetch_async()
    assert (limited.value.status, limited.value.code) == (429, 20429)


async def test_sdk_with_wrong_token_gets_401():
    async with serve_emulator(fast_config()) as running:
        client = Client(running.state.config.account_sid, "wrong", http_client=AsyncTwilioHttpClient())
        client.conversations.base_url = running.base_url
        try:
            with pytest.raises(TwilioRestException) as error:
                await client.conversations.v1.configuration.webhooks().fetch_async()
            assert (error.value.status, error.value.code) == (401, 20003)
        finally:
            await client.http_client.session.close()


async def test_sdk_updates_and_removes_participants_and_deletes_messages(emulator, sdk):
    store = emulator.state.store
    v1 = sdk.conversations.v1
    other_service = next(sid for sid in store.services if sid != store.default_service.sid)
    for root in (v1, v1.services(other_service)):
        conversation = await root.conversations.create_async(friendly_name="SDK edits")
        context = root.conversations(conversation.sid)
        agent = await context.participants.create_async(identity="agent.sdk")
        gmms = await context.participants.create_async(
            identity="gmms.sdk", messaging_binding_projected_address="+15017122662"
        )
        assert gmms.messaging_binding == {"type": "sms", "projected_address": "+15017122662"}
        sms = await context.participants.create_async(
            messaging_binding_address="+15550003333", messaging_binding_proxy_address="+15017122661"
        )
        first = await context.messages.create_async(author="agent.sdk", body="one")
        second = await context.messages.create_async(author="agent.sdk", body="two")
        read = await context.participants(agent.sid).update_async(last_read_message_index=second.index)
        unread = await context.participants(agent.sid).update_async(last_read_message_index=first.index)
        assert (read.last_read_message_index, unread.last_read_message_index) == (1, 0)
        assert await context.participants(sms.sid).delete_async() is True
        assert {p.sid for p in await context.participants.list_async()} == {agent.sid, gmms.sid}
        receipts = await context.messages(first.sid).delivery_receipts.list_async()
        assert [r.participant_sid for r in receipts] == [sms.sid]  # the removed participant's receipt remains
        assert await context.messages(first.sid).delete_async() is True
        assert [m.index for m in await context.messages.list_async()] == [1]
        third = await context.messages.create_async(author="agent.sdk", body="three")
        assert third.index == 2 and third.delivery is None  # no non-chat participant left
