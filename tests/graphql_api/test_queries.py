"""GraphQL over a fake upstream: paging both ways, errors and codes, access, global IDs, rollup, cache.

Never reaches the network; each test asserts the exact upstream calls its operations cost.
"""

from __future__ import annotations

import base64

import pytest

from delivery_gateway.cache import ResourceCache
from delivery_gateway.context import GatewayServices
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.errors import UpstreamRateLimited, UpstreamUnavailable
from tests.graphql_api.gql_support import CHAT_SCREEN, Runner, build_chat, participant_caller

PAGE = """
query P($sid: String!, $first: Int, $after: String, $last: Int, $before: String) {
  conversation(sid: $sid) {
    messages(first: $first, after: $after, last: $last, before: $before) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { index } }
    }
  }
}
"""


class RecordingCache(ResourceCache):
    """The real memory:// ResourceCache, remembering the TTL each key was last written with."""

    def __init__(self) -> None:
        base = ResourceCache.from_url("memory://", namespace=f"t{id(self)}")
        super().__init__(base.backend, metrics=base.metrics)
        self.ttls: dict[str, float] = {}

    async def set_many(self, items, ttl):
        self.ttls.update(dict.fromkeys(items, ttl))
        await super().set_many(items, ttl)


async def page(gql, sid, **args):
    result = await gql(PAGE, {"sid": sid, **args})
    assert result.errors is None, result.errors
    conn = result.data["conversation"]["messages"]
    return [e["node"]["index"] for e in conn["edges"]], conn["pageInfo"]


async def test_paging_backward_and_forward(gql, fake):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    for i in range(120):
        fake.add_message(conv, alice, f"m{i}")
    sid = conv.record.sid

    idx, info = await page(gql, sid, last=50)
    assert idx == list(range(70, 120)) and info["hasPreviousPage"] and not info["hasNextPage"]
    idx, info = await page(gql, sid, last=50, before=info["startCursor"])
    assert idx == list(range(20, 70)) and info["hasPreviousPage"] and info["hasNextPage"]
    idx, info = await page(gql, sid, last=50, before=info["startCursor"])
    assert idx == list(range(20)) and not info["hasPreviousPage"]
    assert fake.calls["list_messages"] == 3  # a page boundary cursor carries the next page's token
    fake.calls.clear()

    idx, info = await page(gql, sid, first=50)
    assert idx == list(range(50)) and info["hasNextPage"] and not info["hasPreviousPage"]
    idx, info = await page(gql, sid, first=50, after=info["endCursor"])
    assert idx == list(range(50, 100)) and info["hasNextPage"] and info["hasPreviousPage"]
    idx, info = await page(gql, sid, first=50, after=info["endCursor"])
    assert idx == list(range(100, 120)) and not info["hasNextPage"]


async def test_cursors_resume_inside_pages_and_across_orders(gql, fake):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    for i in range(120):
        fake.add_message(conv, alice, f"m{i}")
    sid = conv.record.sid
    _, info = await page(gql, sid, last=50)  # desc cursors
    idx, _ = await page(gql, sid, first=10, after=info["startCursor"])  # forward from index 70
    assert idx == list(range(71, 81))
    idx, _ = await page(gql, sid, first=60, after=info["startCursor"])  # newer, then past the newest page
    assert idx == list(range(71, 120))
    _, info = await page(gql, sid, first=50)  # asc cursors
    idx, _ = await page(gql, sid, last=5, before=info["endCursor"])  # backward from index 49
    assert idx == list(range(44, 49))
    idx, _ = await page(gql, sid, first=7, after=info["startCursor"])
    assert idx == list(range(1, 8))


async def test_latest_page_exact_call_count(gql, fake):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    for i in range(50):
        fake.add_message(conv, alice, f"m{i}")
    idx, info = await page(gql, conv.record.sid, last=50)
    assert idx == list(range(50)) and not info["hasPreviousPage"]
    assert dict(fake.calls) == {"fetch_conversation": 1, "list_messages": 1}


@pytest.mark.parametrize(
    ("query", "variables", "argument"),
    [
        ('{ conversation(sid: "CH123") { sid } }', None, "conversationSid"),
        ('{ conversation(sid: "CH' + "0" * 32 + '", serviceSid: "nope") { sid } }', None, "serviceSid"),
        ('{ message(conversationSid: "CH' + "0" * 32 + '", sid: "XX1") { sid } }', None, "sid"),
        ('{ message(conversationSid: "bad", sid: "IM' + "0" * 32 + '") { sid } }', None, "conversationSid"),
    ],
)
async def test_malformed_sids_rejected_before_upstream(gql, fake, query, variables, argument):
    result = await gql(query, variables)
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    assert result.errors[0].extensions["argument"] == argument
    assert sum(fake.calls.values()) == 0


async def test_bad_cursor_and_counts(gql, fake):
    conv = fake.add_conversation()
    for args in ({"after": "garbage", "first": 5}, {"first": 5, "last": 5}):
        result = await gql(PAGE, {"sid": conv.record.sid, **args})
        assert result.errors[0].extensions["code"] == "BAD_USER_INPUT", args
        assert result.data["conversation"]["messages"] is None
    # Over the page-size limit: the whole operation is refused before any resolver runs.
    calls_before = sum(fake.calls.values())
    result = await gql(PAGE, {"sid": conv.record.sid, "last": 500})
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    assert result.data is None
    assert sum(fake.calls.values()) == calls_before
    assert "list_messages" not in fake.calls


async def test_not_found_is_null_with_code_and_siblings_survive(gql, fake):
    conv, *_ = build_chat(fake, messages=3)
    missing = "CH" + "f" * 32
    result = await gql(
        f'{{ gone: conversation(sid: "{missing}") {{ sid }} ok: conversation(sid: "{conv.record.sid}")'
        " { sid participants { sid } } }"
    )
    assert result.data["gone"] is None and result.data["ok"]["sid"] == conv.record.sid
    assert [e.extensions["code"] for e in result.errors] == ["NOT_FOUND"]
    assert result.errors[0].path == ["gone"]


async def test_upstream_failures_keep_their_codes_per_branch(gql, fake):
    conv, *_ = build_chat(fake, messages=6)
    fake.fail["list_receipts"] = UpstreamRateLimited("slow down", status=429, retry_after=2)
    result = await gql(CHAT_SCREEN, {"sid": conv.record.sid})
    nodes = [e["node"] for e in result.data["conversation"]["messages"]["edges"]]
    assert len(nodes) == 6 and all(n["body"] for n in nodes)
    codes = {e.extensions["code"] for e in result.errors}
    assert codes == {"UPSTREAM_RATE_LIMITED"}
    assert result.errors[0].extensions["retryAfter"] == 2
    sms_authored = [n for n in nodes if n["index"] % 3 == 1]
    assert all(n["recipients"] is not None and n["ticks"] for n in sms_authored)  # chat-only: no receipts needed

    fake.fail = {"list_participants": UpstreamUnavailable("down", status=503)}
    result = await gql(
        "query($s: String!) { conversation(sid: $s) { sid participants { sid } } }", {"s": conv.record.sid}
    )
    assert result.data["conversation"]["sid"] == conv.record.sid
    assert result.data["conversation"]["participants"] is None
    assert result.errors[0].extensions["code"] == "UPSTREAM_UNAVAILABLE"


async def test_participant_caller_access(gql, fake):
    conv, *_ = build_chat(fake, messages=3)
    other = fake.add_conversation("other")
    fake.add_chat(other, "zed")
    query = "query($s: String!) { conversation(sid: $s) { sid messages(last: 5) { edges { node { sid } } } } }"

    ok = await gql(query, {"s": conv.record.sid}, caller=participant_caller("alice"))
    assert ok.errors is None and ok.data["conversation"]["sid"] == conv.record.sid

    fake.calls.clear()
    denied = await gql(query, {"s": other.record.sid}, caller=participant_caller("alice"))
    assert denied.data["conversation"] is None
    assert denied.errors[0].extensions["code"] == "FORBIDDEN"
    assert dict(fake.calls) == {"list_participants": 1}  # nothing but the access check reached upstream

    missing = await gql(query, {"s": "CH" + "e" * 32}, caller=participant_caller("alice"))
    assert missing.errors[0].extensions["code"] == "FORBIDDEN"  # existence does not leak

    listed = await gql(
        "{ conversations(first: 10) { edges { node { sid } } pageInfo { hasNextPage } } }",
        caller=participant_caller("alice"),
    )
    assert [e["node"]["sid"] for e in listed.data["conversations"]["edges"]] == [conv.record.sid]
    full = await gql("{ conversations { edges { node { sid } } } }")
    assert len(full.data["conversations"]["edges"]) == 2


async def test_conversations_paging(gql, fake):
    for i in range(7):
        fake.add_conversation(f"c{i}")
    q = (
        "query($a: String) { conversations(first: 3, after: $a) { edges { node { friendlyName } } "
        "pageInfo { hasNextPage endCursor } } }"
    )
    names, after = [], None
    while True:
        data = (await gql(q, {"a": after})).data["conversations"]
        names += [e["node"]["friendlyName"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert names == [f"c{i}" for i in range(7)]


async def test_global_ids_round_trip(gql, fake):
    conv, *_ = build_chat(fake, messages=2)
    result = await gql(
        "query($s: String!) { conversation(sid: $s) { id participants { id identity } "
        "messages(last: 1) { edges { node { id sid } } } } }",
        {"s": conv.record.sid},
    )
    data = result.data["conversation"]
    ids = [data["id"], data["participants"][0]["id"], data["messages"]["edges"][0]["node"]["id"]]
    node = (
        "query($id: ID!) { node(id: $id) { __typename id ... on Conversation { sid } "
        "... on Participant { identity } ... on Message { sid } } }"
    )
    typenames = []
    for gid in ids:
        r = await gql(node, {"id": gid})
        assert r.errors is None, r.errors
        assert r.data["node"]["id"] == gid
        typenames.append(r.data["node"]["__typename"])
    assert typenames == ["Conversation", "Participant", "Message"]
    denied = await gql(node, {"id": ids[2]}, caller=participant_caller("mallory"))
    assert denied.data["node"] is None and denied.errors[0].extensions["code"] == "FORBIDDEN"


async def test_rollup(gql, fake):
    conv = fake.add_conversation()
    alice, bob = fake.add_chat(conv, "alice", last_read=None), fake.add_chat(conv, "bob")
    sms = fake.add_binding(conv, "sms", "+15550001")
    fake.add_message(conv, alice, "a", {sms.sid: (S.DELIVERED, None)})
    fake.add_message(conv, alice, "b", {sms.sid: (S.UNDELIVERED, 30005)})
    fake.add_message(conv, sms, "c")
    fake.set_read(conv, bob, 2)
    result = await gql(
        "query($s: String!) { conversation(sid: $s) { rollup { window messages lastMessageIndex "
        "ticks { pending sent delivered read failed } failed { index } "
        "unread { participant { identity } count lastReadMessageIndex } } } }",
        {"s": conv.record.sid},
    )
    assert result.errors is None, result.errors
    rollup = result.data["conversation"]["rollup"]
    assert rollup["messages"] == 3 and rollup["lastMessageIndex"] == 2
    assert rollup["ticks"] == {"pending": 0, "sent": 0, "delivered": 2, "read": 0, "failed": 1}
    assert rollup["failed"] == [{"index": 1}]
    assert {u["participant"]["identity"]: u["count"] for u in rollup["unread"]} == {"alice": 3, "bob": 0}
    assert fake.calls["list_receipts"] == 2 and fake.calls["list_messages"] == 1


async def test_introspection_switch(fake):
    off = Runner(GatewayServices(Settings(_env_file=None, DELIVERY_GATEWAY_INTROSPECTION=False), upstream=fake))
    result = await off("{ __schema { queryType { name } } }")
    assert result.errors
    on = Runner(GatewayServices(Settings(_env_file=None), upstream=fake))
    assert (await on("{ __schema { queryType { name } } }")).data["__schema"]["queryType"]["name"] == "Query"


async def test_cache_in_batch_functions_makes_warm_query_free(fake, settings):
    conv, *_ = build_chat(fake)
    cache = RecordingCache()
    gql = Runner(GatewayServices(settings=settings, upstream=fake, cache=cache))
    cold = await gql(CHAT_SCREEN, {"sid": conv.record.sid})
    cold_calls = sum(fake.calls.values())
    fake.calls.clear()
    warm = await gql(CHAT_SCREEN, {"sid": conv.record.sid})
    assert warm.errors is None and warm.data == cold.data
    assert sum(fake.calls.values()) == 0 and cold_calls > 3
    page_keys = [k for k in cache.ttls if k.startswith("messages_page:")]
    assert len(page_keys) == 1
    entry = (await cache.get_many(page_keys))[page_keys[0]]
    assert len(entry["sids"]) == 50 and "body" not in str(entry)  # SIDs + tokens only
    receipt_ttls = {ttl for k, ttl in cache.ttls.items() if k.startswith("receipts:")}
    assert receipt_ttls == {settings.ttl_receipts, settings.ttl_receipts_terminal}  # failed ones are final


@pytest.mark.parametrize(
    "gid",
    [
        "garbage",
        base64.b64encode(b"Nope:1").decode(),
        base64.b64encode(b"Conversation:x/y/z").decode(),
        base64.b64encode(b"Message:-/CHbad/IMbad").decode(),
    ],
)
async def test_malformed_global_ids(gql, fake, gid):
    result = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": gid})
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    assert sum(fake.calls.values()) == 0
