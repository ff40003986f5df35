"""http/websocket.py's parts: `text_frame` builds the bytes websockets' own framing writes for a server's text
message, and the receive queue and "writable" flag behave as the asyncio Queue and Event uvicorn uses (order,
wake-ups, cancellation) while holding no container when idle. Served end to end: tests/live/test_frame_writes.py.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Frame, Opcode

from delivery_gateway.http.websocket import _Received, _Writable, frame_writer, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_websockets_writes_for_it(size: int) -> None:
    payload = ("é" * size).encode()[:size]  # any bytes: the frame does not look inside
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == expected


def test_a_scope_without_the_gateway_protocol_has_no_frame_writer() -> None:
    assert frame_writer({"type": "websocket", "extensions": {}}) is None
    assert frame_writer({"type": "websocket"}) is None


async def test_the_receive_queue_keeps_order_and_wakes_its_getter() -> None:
    queue = _Received()
    assert queue.empty()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await getter == 1
    assert not queue.empty() and await queue.get() == 2
    assert queue.empty() and queue._items is None and queue._waiters is None  # nothing held while empty


async def test_a_cancelled_getter_passes_its_item_on() -> None:
    queue = _Received()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("item")  # wakes the first getter...
    first.cancel()  # ...which is cancelled before it runs: the item goes to the second
    assert await second == "item"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert queue.empty() and queue._waiters is None


async def test_the_writable_flag_holds_writers_until_set() -> None:
    writable = _Writable()
    assert writable.is_set() and await writable.wait()  # set: no wait at all
    writable.clear()
    waiters = [asyncio.ensure_future(writable.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    writable.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    writable.clear()
    cancelled = asyncio.ensure_future(writable.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert writable._waiters is None  # a cancelled waiter is forgotten
    writable.set()
    assert writable.is_set()
