"""The chat-screen query against a fake upstream: exact upstream call counts, shapes, and ticks end to end.

Never talks to the network; the emulator-backed version lives in test_emulator.py.
"""

from __future__ import annotations

from tests.graphql.gql_support import CHAT_SCREEN, build_chat


async def test_chat_screen_cold_then_warm_call_counts(gql, fake):
    conv, *_ = build_chat(fake)
    result = await gql(CHAT_SCREEN, {"sid": conv.record.sid})
    assert result.errors is None, result.errors
    edges = result.data["conversation"]["messages"]["edges"]
    assert len(edges) == 50
    assert [e["node"]["index"] for e in edges] == list(range(10, 60))
    page_info = result.data["conversation"]["messages"]["pageInfo"]
    assert page_info["hasPreviousPage"] is True and page_info["hasNextPage"] is False
    with_receipts = sum(1 for e in edges if e["node"]["delivery"] is not None)
    assert dict(fake.calls) == {
        "fetch_conversation": 1,
        "list_messages": 1,
        "list_participants": 1,
        "list_receipts": with_receipts,
    }
    failed = [e["node"] for e in edges if e["node"]["ticks"] == "FAILED"]
    assert failed and all(n["receipts"][0]["error"]["code"] == 30003 for n in failed)
    assert failed[0]["receipts"][0]["error"]["name"] == "Unreachable destination handset"
    assert failed[0]["receipts"][0]["channel"] == "SMS"
    sms_authored = [e["node"] for e in edges if e["node"]["index"] % 3 == 1]
    assert all(n["receipts"] == [] and n["delivery"] is None for n in sms_authored)
    assert all(len(n["recipients"]) == 2 for n in sms_authored)
