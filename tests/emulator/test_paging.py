"""Twilio's paging envelope: PageSize bounds, next/previous URLs with PageToken, stable cursors, Order.

Pure slicing tests plus HTTP walks over the seeded 64-message conversation.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from delivery_gateway.emulator.errors import TwilioError
from delivery_gateway.emulator.paging import PageRequest, PageToken, parse_page_request, slice_page


def test_tokens_round_trip_and_reject_garbage():
    token = PageToken("a", 41)
    assert PageToken.decode(token.encode()) == token
    for garbage in ("PT", "PTzz", "XXYTQx", "PT" + "!" * 4):
        with pytest.raises(TwilioError):
            PageToken.decode(garbage)


def test_page_size_defaults_and_bounds():
    assert parse_page_request({}, 50).page_size == 50
    assert parse_page_request({"PageSize": "100"}, 100).page_size == 100
    for bad in ({"PageSize": "0"}, {"PageSize": "51"}, {"PageSize": "x"}, {"Page": "-1"}):
        with pytest.raises(TwilioError) as error:
            parse_page_request(bad, 50)
        assert error.value.status == 400


def test_cursor_pages_survive_inserts_in_desc_order():
    items = list(range(10))[::-1]  # 9..0, newest first
    first = slice_page(items, int, PageRequest(4, 0, None), descending=True)
    assert first.items == [9, 8, 7, 6]
    items = [10, *items]  # a new message arrives while paging
    second = slice_page(items, int, PageRequest(4, 1, first.next_token), descending=True)
    assert second.items == [5, 4, 3, 2]
    back = slice_page(items, int, PageRequest(4, 0, second.previous_token), descending=True)
    assert back.items == [9, 8, 7, 6]
    last = slice_page(items, int, PageRequest(4, 2, second.next_token), descending=True)
    assert last.items == [1, 0] and last.next_token is None


async def test_walking_next_and_previous_page_urls(app, client):
    store = app.state.emulator.store
    long_one = max(store.conversations.values(), key=lambda c: c.next_index)
    url = f"/v1/Conversations/{long_one.sid}/Messages?Order=desc&PageSize=20"
    seen, pages = [], []
    while url:
        body = (await client.get(url)).json()
        pages.append(body["meta"])
        seen += [m["index"] for m in body["messages"]]
        url = body["meta"]["next_page_url"]
    indices = sorted((m.index for m in store.messages[long_one.sid].values()), reverse=True)
    assert seen == indices and len(seen) == 63  # index 30 was deleted: the walk skips it
    assert [meta["page"] for meta in pages] == [0, 1, 2, 3]
    assert pages[0]["previous_page_url"] is None and pages[-1]["next_page_url"] is None
    query = parse_qs(urlsplit(pages[1]["next_page_url"]).query)
    assert query["Order"] == ["desc"] and query["PageSize"] == ["20"] and query["PageToken"][0].startswith("PT")
    previous = (await client.get(pages[2]["previous_page_url"])).json()
    assert [m["index"] for m in previous["messages"]] == seen[20:40]
    assert previous["meta"]["page"] == 1
