"""UpstreamClient against the Conversations emulator: both scopes, paging, error mapping, faults, call counts.

Never talks to anything but an emulator on 127.0.0.1 port 0; skipped only while the emulator is absent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

emulator_server = pytest.importorskip("delivery_gateway.emulator.server")

from delivery_gateway.emulator.config import EmulatorConfig  # noqa: E402
from delivery_gateway.kernel.records import DeliveryStatus  # noqa: E402
from delivery_gateway.kernel.settings import Settings  # noqa: E402
from delivery_gateway.kernel.sids import new_sid  # noqa: E402
from delivery_gateway.upstream.backoff import RetryPolicy  # noqa: E402
from delivery_gateway.upstream.client import UpstreamClient  # noqa: E402
from delivery_gateway.upstream.errors import (  # noqa: E402
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

MESSAGES = "/v1/Conversations/{ConversationSid}/Messages"


@pytest.fixture
async def emulator() -> AsyncIterator:
    config = EmulatorConfig(seed=11, seed_data=True, simulate=False, step_delay=0.002)
    async with emulator_server.serve_emulator(config, port=0) as running:
        yield running


def client_for(running, **kwargs) -> UpstreamClient:
    config = running.state.config
    settings = Settings(
        _env_file=None,
        twilio_account_sid=config.account_sid,
        twilio_auth_token=kwargs.pop("auth_token", config.auth_token),
        twilio_base_url=running.base_url,
        upstream_max_retries=2,
    )
    kwargs.setdefault("retry_policy", RetryPolicy(max_retries=2, base=0.001, cap=0.005, max_retry_after=0.5))
    return UpstreamClient(settings, **kwargs)


@pytest.fixture
async def upstream(emulator) -> AsyncIterator[UpstreamClient]:
    async with client_for(emulator) as client:
        yield client


def scopes(store) -> list[str | None]:
    other = next(sid for sid in store.services if sid != store.default_service.sid)
    return [None, other]


async def test_conversations_in_both_scopes_page_through(emulator, upstream):
    store = emulator.state.store
    for service_sid in scopes(store):
        seen, token = [], None
        while True:
            page = await upstream.list_conversations(service_sid=service_sid, page_size=2, page_token=token)
            seen += page.items
            token = page.next_page_token
            if token is None:
                break
        expected_service = service_sid or store.default_service.sid
        assert [c.sid for c in seen] == [c.sid for c in store.conversations_in(expected_service)]
        assert {c.chat_service_sid for c in seen} == {expected_service}
        fetched = await upstream.fetch_conversation(seen[0].sid, service_sid=service_sid)
        assert fetched == seen[0]


async def test_messages_page_in_both_orders_with_exact_call_counts(emulator, upstream):
    store = emulator.state.store
    longest = max(store.conversations.values(), key=lambda c: c.next_index)
    service_sid = None if longest.service_sid == store.default_service.sid else longest.service_sid
    for order in ("asc", "desc"):
        emulator.state.requests.reset()
        with upstream.calls.capture() as calls:
            indexes, token, pages = [], None, 0
            while True:
                page = await upstream.list_messages(
                    longest.sid, service_sid=service_sid, order=order, page_size=25, page_token=token
                )
                pages += 1
                indexes += [m.index for m in page.items]
                token = page.next_page_token
                if token is None:
                    break
        expected = sorted(m.index for m in store.messages[longest.sid].values())  # indices may skip numbers
        assert indexes == (expected if order == "asc" else expected[::-1])
        assert calls.count() == pages == -(-len(expected) // 25)
        # Our log and the emulator's own counter agree, route for route.
        assert {f"{m} {r}": n for (m, r, _), n in calls.by_call().items()} == emulator.state.requests.snapshot()


async def test_participants_receipts_and_single_fetches(emulator, upstream):
    store = emulator.state.store
    message = next(m for msgs in store.messages.values() for m in msgs.values() if len(store.receipts_of(m.sid)) >= 2)
    conversation = store.conversations[message.conversation_sid]
    service_sid = conversation.service_sid
    participants = await upstream.list_participants(conversation.sid, service_sid=service_sid)
    assert {p.sid for p in participants} == set(store.participants[conversation.sid])
    assert {p.chat_service_sid for p in participants} == {service_sid}

    upstream.PAGE_SIZE_ALL = 1  # force one receipt per page: list_receipts must follow every PageToken
    with upstream.calls.capture() as calls:
        receipts = await upstream.list_receipts(conversation.sid, message.sid, service_sid=service_sid)
    expected = store.receipts_of(message.sid)
    assert sorted(r.sid for r in receipts) == sorted(r.sid for r in expected)
    assert calls.count() == len(expected)
    assert all(isinstance(r.status, DeliveryStatus) for r in receipts)

    fetched = await upstream.fetch_receipt(conversation.sid, message.sid, receipts[0].sid, service_sid=service_sid)
    assert fetched == receipts[0]
    fetched_message = await upstream.fetch_message(conversation.sid, message.sid, service_sid=service_sid)
    assert fetched_message.sid == message.sid and fetched_message.chat_service_sid == service_sid


async def test_not_found_for_fetches_and_list_pages_in_both_scopes(emulator, upstream):
    missing = new_sid("CH")
    for service_sid in scopes(emulator.state.store):
        with pytest.raises(UpstreamNotFound) as fetch_error:
            await upstream.fetch_conversation(missing, service_sid=service_sid)
        with pytest.raises(UpstreamNotFound) as page_error:
            await upstream.list_messages(missing, service_sid=service_sid)
        with pytest.raises(UpstreamNotFound):
            await upstream.list_participants(missing, service_sid=service_sid)
        for error in (fetch_error.value, page_error.value):
            assert error.status == 404 and error.twilio_code == 20404


async def test_conversation_of_another_service_is_not_found(emulator, upstream):
    store = emulator.state.store
    default_conv = store.conversations_in(store.default_service.sid)[0]
    other = scopes(store)[1]
    with pytest.raises(UpstreamNotFound):
        await upstream.fetch_conversation(default_conv.sid, service_sid=other)


async def test_create_message_then_fetch_it(emulator, upstream):
    store = emulator.state.store
    service_sid = scopes(store)[1]
    conversation = store.conversations_in(service_sid)[0]
    created = await upstream.create_message(conversation.sid, service_sid=service_sid, author="agent", body="hello")
    assert created.body == "hello" and created.chat_service_sid == service_sid
    assert (await upstream.fetch_message(conversation.sid, created.sid, service_sid=service_sid)).sid == created.sid


async def test_webhook_config_both_scopes(emulator, upstream):
    for service_sid in scopes(emulator.state.store):
        updated = await upstream.update_webhook_config(
            service_sid=service_sid,
            post_webhook_url="http://127.0.0.1:9/hook",
            method="POST",
            filters=["onMessageAdded", "onDeliveryUpdated"],
        )
        fetched = await upstream.fetch_webhook_config(service_sid=service_sid)
        assert fetched.post_webhook_url == updated.post_webhook_url == "http://127.0.0.1:9/hook"
        assert sorted(fetched.filters) == ["onDeliveryUpdated", "onMessageAdded"]


async def test_configuration_names_the_default_service_in_one_call(emulator, upstream):
    store = emulator.state.store
    with upstream.calls.capture() as calls:
        configuration = await upstream.fetch_configuration()
    assert configuration.default_chat_service_sid == store.default_service.sid
    assert configuration.account_sid == store.account_sid
    assert calls.count() == 1 and calls.count(route="/v1/Configuration") == 1


async def test_wrong_credentials_are_unauthorized(emulator):
    async with client_for(emulator, auth_token="wrong") as client:
        with pytest.raises(UpstreamUnauthorized) as caught:
            await client.list_conversations()
        assert caught.value.status == 401


async def test_injected_faults_map_to_typed_errors(emulator, upstream):
    config = emulator.state.config
    config.rate_limit_rate, config.retry_after = 1.0, 1  # Retry-After 1 s > max_retry_after 0.5 s: give up
    with upstream.calls.capture() as calls, pytest.raises(UpstreamRateLimited) as limited:
        await upstream.list_conversations()
    assert limited.value.retry_after == 1 and limited.value.twilio_code == 20429
    assert calls.count() == 1

    config.rate_limit_rate, config.server_error_rate = 0.0, 1.0
    with upstream.calls.capture() as calls, pytest.raises(UpstreamUnavailable) as unavailable:
        await upstream.list_conversations()
    assert unavailable.value.status == config.server_error_status
    assert calls.count() == 3  # first attempt + 2 retries
    labels = {"method": "GET", "route": "/v1/Conversations", "status": str(config.server_error_status)}
    assert upstream.metrics.sample("delivery_gateway_upstream_requests_total", labels) == 3

    config.server_error_rate = 0.0
    assert (await upstream.list_conversations()).items


async def test_json_reads_equal_the_sdk_reads_in_both_scopes(emulator, upstream):
    # The hot reads (conversation, participants, messages page, receipts lists) read Twilio's JSON themselves; the
    # same resources read through the SDK's instance classes must give equal records, in either scope.
    from delivery_gateway.upstream import mapping

    store = emulator.state.store
    for conversation in store.conversations.values():
        if len(store.messages.get(conversation.sid, {})) >= 3 and store.participants.get(conversation.sid):
            break
    scope = conversation.service_sid
    for service_sid in (scope, None) if scope == store.default_service.sid else (scope,):
        direct = await upstream.fetch_conversation(conversation.sid, service_sid=service_sid)
        listed = await upstream.list_conversations(service_sid=service_sid, page_size=100)
        assert direct in listed.items

        sdk_participants = await upstream._conversation(conversation.sid, service_sid).participants.list_async()
        assert sorted(await upstream.list_participants(conversation.sid, service_sid=service_sid), key=str) == sorted(
            (mapping.participant(i, service_sid) for i in sdk_participants), key=str
        )

        page = await upstream.list_messages(conversation.sid, service_sid=service_sid, page_size=50)
        assert page.items
        for message in page.items:
            assert message == await upstream.fetch_message(conversation.sid, message.sid, service_sid=service_sid)
            for receipt in await upstream.list_receipts(conversation.sid, message.sid, service_sid=service_sid):
                assert receipt == await upstream.fetch_receipt(
                    conversation.sid, message.sid, receipt.sid, service_sid=service_sid
                )
