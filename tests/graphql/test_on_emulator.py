"""The GraphQL API against the Twilio emulator through the real UpstreamClient: exact upstream call counts.

Never reaches real Twilio; every server binds an ephemeral port and stops with its test.
"""

from __future__ import annotations

import pytest

from delivery_gateway.cache import ResourceCache
from delivery_gateway.emulator import EmulatorConfig
from delivery_gateway.emulator.server import serve_emulator
from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.client import UpstreamClient
from tests.graphql.gql_support import CHAT_SCREEN, Runner, participant_caller

ACCOUNT = "AC" + "1" * 32
TOKEN = "emulator-secret"
PAGE = """
query P($sid: String!, $svc: String, $first: Int, $after: String, $last: Int, $before: String) {
  conversation(sid: $sid, serviceSid: $svc) {
    messages(first: $first, after: $after, last: $last, before: $before) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { node { index } }
    }
  }
}
"""


@pytest.fixture
async def emulator():
    config = EmulatorConfig(account_sid=ACCOUNT, auth_token=TOKEN, seed=1, seed_data=False, simulate=False)
    async with serve_emulator(config, port=0) as running:
        yield running


@pytest.fixture
async def upstream(emulator):
    settings = Settings(
        _env_file=None,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_AUTH_TOKEN=TOKEN,
        DELIVERY_GATEWAY_TWILIO_BASE_URL=emulator.base_url,
        DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=0,
        DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET=0,
    )
    client = UpstreamClient(settings)
    await client.start()
    yield client
    await client.close()


def runner(upstream, cache: ResourceCache | None = None) -> Runner:
    return Runner(GatewayServices(settings=upstream.settings, upstream=upstream, cache=cache))


def seed_chat(store, service_sid: str | None = None, messages: int = 60):
    """alice, bob (chat), an SMS and a WhatsApp participant; SMS-authored messages reach chat users only."""
    conv = store.create_conversation(service_sid=service_sid, friendly_name="support")
    alice = store.create_participant(conv.sid, identity="alice")
    bob = store.create_participant(conv.sid, identity="bob")
    store.create_participant(conv.sid, address="+15551230001", proxy_address="+15550000000")
    store.create_participant(conv.sid, address="whatsapp:+15551230002", proxy_address="whatsapp:+15550000000")
    outcomes = [
        ("delivered", None),
        ("read", None),
        ("failed", 30007),
        ("undelivered", 30003),
        ("sent", None),
    ]
    with_receipts = 0
    for i in range(messages):
        author = ["alice", "+15551230001", "bob"][i % 3]
        message, receipts = store.create_message(conv.sid, author=author, body=f"m{i}")
        for n, receipt in enumerate(receipts):
            status, code = outcomes[(i + n) % len(outcomes)]
            if status != "sent":
                receipt.advance(status, code, receipt.date_created)
        with_receipts += bool(receipts) and message.index >= messages - 50
    store.mark_read(alice, messages - 5)
    store.mark_read(bob, messages - 20)
    return conv, with_receipts


@pytest.mark.parametrize("scoped", [False, True], ids=["default-scope", "service-scope"])
async def test_chat_screen_cold_and_warm(emulator, upstream, scoped):
    store = emulator.state.store
    service_sid = store.create_service("svc").sid if scoped else None
    conv, with_receipts = seed_chat(store, service_sid)
    gql = runner(upstream, ResourceCache.from_url("memory://", namespace=f"e{scoped}"))
    query = CHAT_SCREEN.replace("$sid: String!)", "$sid: String!, $svc: String)").replace(
        "conversation(sid: $sid)", "conversation(sid: $sid, serviceSid: $svc)"
    )
    with upstream.calls.capture() as cold:
        result = await gql(query, {"sid": conv.sid, "svc": service_sid})
    assert result.errors is None, result.errors
    edges = result.data["conversation"]["messages"]["edges"]
    assert len(edges) == 50
    routes = cold.by_route()
    prefix = "/v1/Services/{ChatServiceSid}" if scoped else "/v1"
    assert routes == {
        f"{prefix}/Conversations/{{Sid}}": 1,
        f"{prefix}/Conversations/{{ConversationSid}}/Messages": 1,
        f"{prefix}/Conversations/{{ConversationSid}}/Participants": 1,
        f"{prefix}/Conversations/{{ConversationSid}}/Messages/{{MessageSid}}/Receipts": with_receipts,
    }, routes
    assert cold.count() == 3 + with_receipts
    nodes = [e["node"] for e in edges]
    assert all({r["source"] for r in n["recipients"]} == {"READ_HORIZON", "RECEIPT"} for n in nodes)
    assert all(len(n["recipients"]) == 3 for n in nodes)
    statuses = {r["status"] for n in nodes for r in n["receipts"]}
    assert statuses == {"SENT", "DELIVERED", "READ", "FAILED", "UNDELIVERED"}
    failed = [r for n in nodes for r in n["receipts"] if r["status"] == "FAILED"]
    assert failed[0]["errorCode"] == 30007 and failed[0]["error"]["name"] == "Message filtered"
    channels = {r["channel"] for n in nodes for r in n["receipts"]}
    assert channels == {"SMS", "WHATSAPP"}
    assert {n["ticks"] for n in nodes} >= {"FAILED", "DELIVERED"}

    with upstream.calls.capture() as warm:
        again = await gql(query, {"sid": conv.sid, "svc": service_sid})
    assert warm.count() == 0 and again.data == result.data


async def test_chat_only_messages_cost_no_receipts_call(emulator, upstream):
    store = emulator.state.store
    conv = store.create_conversation(friendly_name="chat only")
    alice = store.create_participant(conv.sid, identity="alice")
    store.create_participant(conv.sid, identity="bob")
    store.create_participant(conv.sid, identity="carol")
    for i in range(8):
        store.create_message(conv.sid, author=["alice", "bob"][i % 2], body=f"m{i}")
    store.mark_read(alice, 7)
    gql = runner(upstream)
    with upstream.calls.capture() as calls:
        result = await gql(CHAT_SCREEN, {"sid": conv.sid})
    assert result.errors is None, result.errors
    assert calls.count() == 3  # conversation, messages page, participants: no Receipts call at all
    nodes = [e["node"] for e in result.data["conversation"]["messages"]["edges"]]
    assert all(n["receipts"] == [] and n["delivery"] is None for n in nodes)
    assert all({r["source"] for r in n["recipients"]} == {"READ_HORIZON"} for n in nodes)
    # bob's messages: alice read all, carol none -> DELIVERED; nobody has read everything of alice's either
    assert {n["ticks"] for n in nodes} == {"DELIVERED"}


async def test_paging_forward_and_backward(emulator, upstream):
    conv, _ = seed_chat(emulator.state.store, messages=130)
    gql = runner(upstream)

    async def window(**args):
        result = await gql(PAGE, {"sid": conv.sid, **args})
        assert result.errors is None, result.errors
        conn = result.data["conversation"]["messages"]
        return [e["node"]["index"] for e in conn["edges"]], conn["pageInfo"]

    seen, info = await window(last=50)
    assert seen == list(range(80, 130))
    while info["hasPreviousPage"]:
        with upstream.calls.capture() as calls:
            older, info = await window(last=50, before=info["startCursor"])
        assert calls.count() == 2  # conversation + exactly the next older page
        seen = older + seen
    assert seen == list(range(130))

    forward, info = await window(first=50)
    while info["hasNextPage"]:
        more, info = await window(first=50, after=info["endCursor"])
        forward += more
    assert forward == list(range(130))
    mid, _ = await window(first=3, after=info["startCursor"])
    assert mid == [101, 102, 103]


async def test_errors_and_codes(emulator, upstream):
    conv, _ = seed_chat(emulator.state.store, messages=4)
    gql = runner(upstream)
    missing = "CH" + "a" * 32
    with upstream.calls.capture() as calls:
        result = await gql(
            f'{{ a: conversation(sid: "{missing}") {{ sid }} '
            f'b: conversation(sid: "{conv.sid}") {{ sid participants {{ identity }} }} }}'
        )
    assert result.data["a"] is None and result.data["b"]["sid"] == conv.sid
    assert [e.extensions["code"] for e in result.errors] == ["NOT_FOUND"]
    assert calls.count() == 3

    with upstream.calls.capture() as calls:
        bad = await gql('{ conversation(sid: "CH-nope") { sid } message(conversationSid: "x", sid: "y") { sid } }')
    assert {e.extensions["code"] for e in bad.errors} == {"BAD_USER_INPUT"}
    assert calls.count() == 0

    emulator.state.config.rate_limit_rate = 1.0
    limited = await gql(f'{{ conversation(sid: "{conv.sid}") {{ sid }} }}')
    assert limited.data["conversation"] is None
    assert limited.errors[0].extensions["code"] == "UPSTREAM_RATE_LIMITED"
    emulator.state.config.rate_limit_rate = 0.0
    emulator.state.config.server_error_rate = 1.0
    down = await gql(f'{{ conversation(sid: "{conv.sid}") {{ sid }} }}')
    assert down.errors[0].extensions["code"] == "UPSTREAM_UNAVAILABLE"


async def test_participant_scope(emulator, upstream):
    store = emulator.state.store
    conv, _ = seed_chat(store, messages=3)
    other = store.create_conversation(friendly_name="private")
    store.create_participant(other.sid, identity="zed")
    gql = runner(upstream)
    query = "query($s: String!) { conversation(sid: $s) { sid messages(last: 3) { edges { node { ticks } } } } }"
    alice = participant_caller("alice", store.default_service.sid)
    ok = await gql(query, {"s": conv.sid}, caller=alice)
    assert ok.errors is None and len(ok.data["conversation"]["messages"]["edges"]) == 3
    with upstream.calls.capture() as calls:
        denied = await gql(query, {"s": other.sid}, caller=alice)
    assert denied.data["conversation"] is None and denied.errors[0].extensions["code"] == "FORBIDDEN"
    assert calls.count() == 1  # the participants list, nothing else
    listed = await gql("{ conversations { edges { node { sid } } } }", caller=alice)
    assert [e["node"]["sid"] for e in listed.data["conversations"]["edges"]] == [conv.sid]
