"""Conversation root fields over a fake upstream: NOT_FOUND per branch, listing conversations, the roll-up.

Never reaches the network; each test asserts the exact upstream calls its operations cost.
"""

from __future__ import annotations

from delivery_gateway.kernel.records import DeliveryStatus as S
from tests.graphql.gql_support import build_chat


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
    assert {u["participant"]["identity"]: u["count"] for u in rollup["unread"]} == {"alice": None, "bob": 0}
    assert fake.calls["list_receipts"] == 2 and fake.calls["list_messages"] == 1
