"""UpstreamClient against a scripted server: both scopes, paging, error mapping, for the calls that go through the
real twilio SDK and for the hot reads whose JSON the client reads itself (with the SDK's headers and credentials).

Never talks to Twilio; the emulator tests live in test_client_emulator.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from delivery_gateway.kernel.records import DeliveryStatus, MessageRecord, Page
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.kernel.sids import InvalidSid
from delivery_gateway.upstream.backoff import RetryPolicy
from delivery_gateway.upstream.client import UpstreamClient
from delivery_gateway.upstream.errors import UpstreamError, UpstreamNotFound, UpstreamUnavailable
from tests.upstream import payloads as p
from tests.upstream.scripted import Reply, ScriptedServer, serve_scripted

DEFAULT_MSGS = f"/v1/Conversations/{p.CONV}/Messages"
SERVICE_MSGS = f"/v1/Services/{p.SERVICE}/Conversations/{p.CONV}/Messages"


def settings_for(base_url: str, **overrides) -> Settings:
    return Settings(
        _env_file=None,
        twilio_account_sid=p.ACCOUNT,
        twilio_auth_token="secret",
        twilio_base_url=base_url,
        **overrides,
    )


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with serve_scripted() as s:
        yield s


@pytest.fixture
async def upstream(server: ScriptedServer) -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient(settings_for(server.url), retry_policy=RetryPolicy(max_retries=2, base=0.001, cap=0.01))
    async with client:
        yield client


async def test_list_messages_default_scope(server, upstream):
    server.script(
        DEFAULT_MSGS,
        Reply(
            200,
            p.page(
                "messages",
                [p.message(index=3), p.message(index=2)],
                base=server.url,
                path=DEFAULT_MSGS,
                next_token="PT42",
            ),
        ),
    )
    with upstream.calls.capture() as calls:
        page = await upstream.list_messages(p.CONV, order="desc", page_size=2)
    assert isinstance(page, Page)
    assert [m.index for m in page.items] == [3, 2]
    assert all(isinstance(m, MessageRecord) and m.chat_service_sid is None for m in page.items)
    assert page.next_page_token == "PT42" and page.previous_page_token is None
    assert server.queries[-1] == {"Order": "desc", "PageSize": "2"}
    assert calls.by_route() == {"/v1/Conversations/{ConversationSid}/Messages": 1}
    assert page.items[0].date_created is not None and page.items[0].delivery["total"] == 1


async def test_list_messages_service_scope_fills_service_and_passes_token(server, upstream):
    server.script(
        SERVICE_MSGS, Reply(200, p.page("messages", [p.message(index=0)], base=server.url, path=SERVICE_MSGS))
    )
    with upstream.calls.capture() as calls:
        page = await upstream.list_messages(p.CONV, service_sid=p.SERVICE, order="asc", page_size=1, page_token="PT42")
    assert page.items[0].chat_service_sid == p.SERVICE
    assert page.next_page_token is None
    assert server.queries[-1] == {"Order": "asc", "PageSize": "1", "PageToken": "PT42"}
    assert calls.by_route() == {"/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Messages": 1}


async def test_fetch_conversation_both_scopes(server, upstream):
    server.script(f"/v1/Conversations/{p.CONV}", Reply(200, p.conversation()))
    server.script(f"/v1/Services/{p.SERVICE}/Conversations/{p.CONV}", Reply(200, p.conversation()))
    default = await upstream.fetch_conversation(p.CONV)
    scoped = await upstream.fetch_conversation(p.CONV, service_sid=p.SERVICE)
    assert default.sid == scoped.sid == p.CONV
    assert scoped.chat_service_sid == p.SERVICE and default.state == "active"
    assert upstream.calls.by_route() == {
        "/v1/Conversations/{Sid}": 1,
        "/v1/Services/{ChatServiceSid}/Conversations/{Sid}": 1,
    }


async def test_list_receipts_reads_every_page(server, upstream):
    path = f"/v1/Services/{p.SERVICE}/Conversations/{p.CONV}/Messages/{p.MSG}/Receipts"
    first = [p.receipt("DY" + f"{i:032x}", "read") for i in range(50)]
    second = [p.receipt("DY" + f"{i + 50:032x}", "failed") for i in range(3)]
    server.script(
        path,
        Reply(200, p.page("delivery_receipts", first, base=server.url, path=path, next_token="PT1")),
        Reply(200, p.page("delivery_receipts", second, base=server.url, path=path)),
    )
    receipts = await upstream.list_receipts(p.CONV, p.MSG, service_sid=p.SERVICE)
    assert len(receipts) == 53
    assert receipts[0].status is DeliveryStatus.READ and receipts[-1].status is DeliveryStatus.FAILED
    assert receipts[0].error_code is None and receipts[0].chat_service_sid == p.SERVICE
    assert [q.get("PageToken") for q in server.queries] == [None, "PT1"]
    assert {q["PageSize"] for q in server.queries} == {"50"}
    assert upstream.calls.count() == 2


async def test_list_participants_default_scope(server, upstream):
    path = f"/v1/Conversations/{p.CONV}/Participants"
    server.script(path, Reply(200, p.page("participants", [p.participant()], base=server.url, path=path)))
    participants = await upstream.list_participants(p.CONV)
    assert participants[0].messaging_binding["type"] == "sms"
    assert participants[0].last_read_timestamp is None


async def test_fetch_404_is_not_found_with_code(server, upstream):
    with pytest.raises(UpstreamNotFound) as caught:
        await upstream.fetch_message(p.CONV, p.MSG)
    assert caught.value.status == 404 and caught.value.twilio_code == 20404
    assert caught.value.route == "/v1/Conversations/{ConversationSid}/Messages/{Sid}"


async def test_list_page_404_is_not_found_too(server, upstream):
    # The SDK raises a bare TwilioException for failed pages; the HTTP layer types it first.
    with pytest.raises(UpstreamNotFound) as caught:
        await upstream.list_messages(p.CONV)
    assert caught.value.status == 404 and caught.value.twilio_code == 20404


async def test_list_page_500_is_unavailable_after_retries(server, upstream):
    server.script(DEFAULT_MSGS, Reply(500, {"code": 20500, "message": "boom"}))
    with pytest.raises(UpstreamUnavailable):
        await upstream.list_messages(p.CONV)
    assert server.count(DEFAULT_MSGS) == 3


async def test_unreadable_page_is_an_upstream_error(server, upstream):
    server.script(DEFAULT_MSGS, Reply(200, {"a": [], "b": []}))
    with pytest.raises(UpstreamError, match="unreadable"):
        await upstream.list_messages(p.CONV)


async def test_non_json_body_is_an_upstream_error(server, upstream):
    server.script(f"/v1/Conversations/{p.CONV}", Reply(200, "<html>proxy error</html>"))
    with pytest.raises(UpstreamError, match="unreadable"):
        await upstream.fetch_conversation(p.CONV)


async def test_create_message_posts_once_and_maps(server, upstream):
    server.script(SERVICE_MSGS, Reply(201, p.message(index=7)))
    record = await upstream.create_message(p.CONV, service_sid=p.SERVICE, author="bob", body="hi")
    assert record.index == 7 and record.chat_service_sid == p.SERVICE
    assert server.forms[-1] == {"Author": "bob", "Body": "hi"}
    assert upstream.calls.by_call() == {
        ("POST", "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Messages", "201"): 1
    }


async def test_webhook_config_both_scopes(server, upstream):
    server.script(
        "/v1/Configuration/Webhooks",
        Reply(
            200,
            {
                "account_sid": p.ACCOUNT,
                "method": "POST",
                "filters": ["onMessageAdded"],
                "pre_webhook_url": None,
                "post_webhook_url": "https://gw/hook",
                "target": "webhook",
                "url": "x",
            },
        ),
    )
    path = f"/v1/Services/{p.SERVICE}/Configuration/Webhooks"
    server.script(
        path,
        Reply(
            200,
            {
                "account_sid": p.ACCOUNT,
                "chat_service_sid": p.SERVICE,
                "method": "POST",
                "filters": None,
                "pre_webhook_url": None,
                "post_webhook_url": None,
                "url": "x",
            },
        ),
    )
    default = await upstream.fetch_webhook_config()
    assert default.filters == ["onMessageAdded"] and default.target == "webhook"
    scoped = await upstream.update_webhook_config(
        service_sid=p.SERVICE,
        post_webhook_url="https://gw/hook",
        method="POST",
        filters=["onDeliveryUpdated", "onMessageAdded"],
    )
    assert scoped.filters == [] and scoped.chat_service_sid == p.SERVICE
    assert server.forms[-1]["PostWebhookUrl"] == "https://gw/hook"


async def test_filters_are_sent_as_repeated_form_keys(server, upstream):
    path = f"/v1/Services/{p.SERVICE}/Configuration/Webhooks"
    server.script(path, Reply(200, {"chat_service_sid": p.SERVICE, "filters": ["a", "b"]}))
    record = await upstream.update_webhook_config(service_sid=p.SERVICE, filters=["a", "b"])
    assert record.filters == ["a", "b"]
    assert server.form_pairs[-1] == [("Filters", "a"), ("Filters", "b")]


async def test_concurrent_identical_reads_coalesce_through_the_sdk(server, upstream):
    server.script(
        DEFAULT_MSGS,
        Reply(200, p.page("messages", [p.message()], base=server.url, path=DEFAULT_MSGS), delay=0.05),
    )
    with upstream.calls.capture() as calls:
        pages = await asyncio.gather(*(upstream.list_messages(p.CONV, page_size=10) for _ in range(8)))
    assert calls.count() == 1 and server.count(DEFAULT_MSGS) == 1
    assert all(pg.items == pages[0].items for pg in pages)


async def test_hot_reads_send_what_the_sdk_sends(server, upstream):
    # The chat screen's reads skip the SDK's objects, not its request: same user agent, Accept and credentials as
    # a read the SDK makes itself (fetch_message).
    path = f"/v1/Conversations/{p.CONV}/Participants"
    server.script(path, Reply(200, p.page("participants", [p.participant()], base=server.url, path=path)))
    server.script(f"/v1/Conversations/{p.CONV}/Messages/{p.MSG}", Reply(200, p.message()))
    await upstream.list_participants(p.CONV)
    await upstream.fetch_message(p.CONV, p.MSG)
    hot, sdk = server.headers
    for name in ("User-Agent", "X-Twilio-Client", "Accept", "Accept-Charset", "Authorization"):
        assert hot[name] == sdk[name], name
    assert hot["User-Agent"].startswith("twilio-python/") and hot["Accept"] == "application/json"
    assert hot["Authorization"].startswith("Basic ")


async def test_hot_read_pages_follow_legacy_page_uris(server, upstream):
    # Twilio's older list shape: paging under `next_page_uri` (relative), no `meta`; the records under their key.
    path = f"/v1/Conversations/{p.CONV}/Messages/{p.MSG}/Receipts"
    first = {"delivery_receipts": [p.receipt("DY" + "1" * 32)], "next_page_uri": f"{path}?PageSize=50&PageToken=PT9"}
    second = {"delivery_receipts": [p.receipt("DY" + "2" * 32)], "next_page_uri": None}
    server.script(path, Reply(200, first), Reply(200, second))
    receipts = await upstream.list_receipts(p.CONV, p.MSG)
    assert [r.sid for r in receipts] == ["DY" + "1" * 32, "DY" + "2" * 32]
    assert [q.get("PageToken") for q in server.queries] == [None, "PT9"]


async def test_hot_read_page_that_is_not_a_200_is_unreadable(server, upstream):
    # As the SDK's Page: a list answer is a 200; another success status is not a page (and is not retried).
    server.script(DEFAULT_MSGS, Reply(204, ""))
    with pytest.raises(UpstreamError, match="unreadable"):
        await upstream.list_messages(p.CONV)
    assert server.count(DEFAULT_MSGS) == 1


async def test_hot_read_payload_values_as_the_sdk_reads_them(server, upstream):
    # Integers sent as strings are read as the SDK reads them (deserialize.integer); an empty optional timestamp
    # is none; a status this version does not know degrades to none and keeps its text.
    path = f"/v1/Conversations/{p.CONV}/Participants"
    participant = {**p.participant(), "last_read_message_index": "7", "last_read_timestamp": "2026-11-23T05:00:00Z"}
    server.script(path, Reply(200, p.page("participants", [participant], base=server.url, path=path)))
    receipts_path = f"/v1/Conversations/{p.CONV}/Messages/{p.MSG}/Receipts"
    receipt = {**p.receipt(status="bounced"), "error_code": 0, "date_updated": ""}
    server.script(
        receipts_path, Reply(200, p.page("delivery_receipts", [receipt], base=server.url, path=receipts_path))
    )
    (read,) = await upstream.list_participants(p.CONV)
    assert read.last_read_message_index == 7 and read.last_read_timestamp is not None
    assert read.last_read_timestamp.isoformat() == "2026-11-23T05:00:00+00:00"
    (got,) = await upstream.list_receipts(p.CONV, p.MSG)
    assert got.status is None and got.reported_status == "bounced"
    assert got.error_code is None and got.date_updated is None


async def test_a_wave_of_reads_reuses_at_most_pool_size_connections(server):
    # Connection reuse: 3 waves of 40 concurrent Receipts lists with a concurrency of 8 open at most 8 connections
    # at the server, and a wave after the first opens none (keep-alive), so no call pays a TCP set-up.
    for i in range(40):
        path = f"/v1/Conversations/{p.CONV}/Messages/IM{i:032x}/Receipts"
        server.script(
            path, Reply(200, p.page("delivery_receipts", [p.receipt()], base=server.url, path=path), delay=0.01)
        )
    settings = settings_for(server.url, upstream_concurrency=8)
    async with UpstreamClient(settings) as client:
        with client.calls.capture() as calls:
            await asyncio.gather(*(client.list_receipts(p.CONV, f"IM{i:032x}") for i in range(40)))
            opened = set(server.connections)
            for _ in range(2):
                await asyncio.gather(*(client.list_receipts(p.CONV, f"IM{i:032x}") for i in range(40)))
    assert calls.count() == 120 and sum(server.hits.values()) == 120
    assert 1 <= len(opened) <= 8 and server.max_in_flight <= 8
    assert server.connections == opened


async def test_missing_credentials_fail_fast():
    settings = Settings(_env_file=None).model_copy(
        update={
            "twilio_account_sid": None,
            "twilio_auth_token": None,
            "twilio_api_key": None,
            "demo_mode": False,
        }
    )
    client = UpstreamClient(settings)
    with pytest.raises(ValueError, match="TWILIO_ACCOUNT_SID"):
        await client.start()


@pytest.mark.parametrize(
    "call",
    [
        lambda u: u.fetch_conversation("../Services/IS" + "0" * 32 + "/Conversations/CH" + "0" * 32),
        lambda u: u.fetch_conversation(p.CONV, service_sid="IS123"),
        lambda u: u.list_messages("CH" + "0" * 31 + "?"),
        lambda u: u.fetch_message(p.CONV, "not-a-sid"),
        lambda u: u.list_receipts(p.CONV, "IM" + "0" * 32 + "/x"),
        lambda u: u.fetch_receipt(p.CONV, p.MSG, p.MSG),
        lambda u: u.fetch_webhook_config(service_sid="CH" + "0" * 32),
        lambda u: u.create_message("x", body="hi"),
    ],
)
async def test_malformed_sids_never_reach_a_url(server, upstream, call):
    with pytest.raises(InvalidSid):
        await call(upstream)
    assert upstream.calls.count() == 0 and sum(server.hits.values()) == 0


async def test_sdk_never_reads_twilio_environment(server, monkeypatch):
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    server.script(f"/v1/Conversations/{p.CONV}", Reply(200, p.conversation()))
    async with UpstreamClient(settings_for(server.url)) as client:
        assert (await client.fetch_conversation(p.CONV)).sid == p.CONV  # host not rewritten to *.sydney.au1
