"""Message windows over a fake upstream: paging both ways, cursors across pages and orders, exact call counts.

Never reaches the network; each test asserts the exact upstream calls its operations cost.
"""

from __future__ import annotations

from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.kernel.settings import Settings
from tests.graphql.gql_support import Runner

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


async def test_page_sizes_follow_the_setting_above_100(fake):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    for i in range(320):
        fake.add_message(conv, alice, f"m{i}")
    settings = Settings(_env_file=None, DELIVERY_GATEWAY_MAX_PAGE_SIZE=300)
    gql = Runner(GatewayServices(settings=settings, upstream=fake))
    idx, info = await page(gql, conv.record.sid, last=300)
    assert idx == list(range(20, 320)) and info["hasPreviousPage"]
    assert fake.calls["list_messages"] == 6  # 300 messages, 50 per upstream page
    idx, _ = await page(gql, conv.record.sid, first=250, after=info["startCursor"])
    assert idx == list(range(21, 271))
    listed = await gql("{ conversations(first: 150) { edges { node { sid } } } }")
    assert listed.errors is None and len(listed.data["conversations"]["edges"]) == 1


async def test_page_sizes_follow_the_setting_below_100(fake):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    for i in range(30):
        fake.add_message(conv, alice, f"m{i}")
    gql = Runner(GatewayServices(settings=Settings(_env_file=None, DELIVERY_GATEWAY_MAX_PAGE_SIZE=20), upstream=fake))
    idx, info = await page(gql, conv.record.sid)  # nothing given: the default, capped by the setting
    assert idx == list(range(10, 30)) and info["hasPreviousPage"]
    refused = await gql(PAGE, {"sid": conv.record.sid, "first": 21})
    assert refused.data is None and "between 0 and 20" in refused.errors[0].message


async def test_first_zero_is_an_empty_window(gql, fake):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    for i in range(3):
        fake.add_message(conv, alice, f"m{i}")
    idx, info = await page(gql, conv.record.sid, first=0)
    assert idx == [] and info["hasNextPage"]
