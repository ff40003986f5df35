"""The one bounded body read (http/exchange.read_bounded_body): a body already there is taken at once, one that has
to be waited for is still held to the deadline and the limit, and a cancellation reaches the waiting receive."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from delivery_gateway.http.exchange import read_bounded_body


class Connection:
    """A server's `receive` fed by the test: waits on a queue, as uvicorn's waits on its message event."""

    def __init__(self, *ready: Message) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        for message in ready:
            self.queue.put_nowait(message)
        self.sent: list[Message] = []
        self.cancelled_while_waiting = False

    async def receive(self) -> Message:
        try:
            return await self.queue.get()
        except asyncio.CancelledError:
            self.cancelled_while_waiting = True
            raise

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)


def chunk(body: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_already_received_is_returned_as_is() -> None:
    conn = Connection(chunk(b'{"query": "{ a }"}'))
    assert await read_bounded_body(conn.receive, conn.send, 100, 1.0) == b'{"query": "{ a }"}'
    assert conn.sent == []


async def test_a_body_that_arrives_later_is_awaited_and_joined() -> None:
    conn = Connection(chunk(b"ab", more=True))
    reading = asyncio.create_task(read_bounded_body(conn.receive, conn.send, 100, 5.0))
    await asyncio.sleep(0.05)
    conn.queue.put_nowait(chunk(b"cd", more=True))
    await asyncio.sleep(0.05)
    conn.queue.put_nowait(chunk(b"ef"))
    assert await reading == b"abcdef"


async def test_a_body_that_has_to_be_waited_for_from_its_first_byte_is_read() -> None:
    conn = Connection()
    reading = asyncio.create_task(read_bounded_body(conn.receive, conn.send, 100, 5.0))
    await asyncio.sleep(0.05)
    assert not reading.done()
    conn.queue.put_nowait(chunk(b"late"))
    assert await reading == b"late"


@pytest.mark.parametrize("first", [None, chunk(b"{", more=True)], ids=["nothing-yet", "first-chunk-only"])
async def test_a_body_that_stops_arriving_is_answered_408_at_the_deadline(first: Message | None) -> None:
    conn = Connection(*([first] if first else []))
    started = asyncio.get_running_loop().time()
    assert await read_bounded_body(conn.receive, conn.send, 100, 0.2) is None
    elapsed = asyncio.get_running_loop().time() - started
    assert conn.status() == 408
    assert conn.cancelled_while_waiting
    assert 0.15 < elapsed < 2.0


async def test_limits_apply_to_a_first_chunk_and_to_the_sum() -> None:
    conn = Connection(chunk(b"x" * 11))
    assert await read_bounded_body(conn.receive, conn.send, 10, 1.0) is None
    assert conn.status() == 413
    conn = Connection(chunk(b"x" * 6, more=True))
    reading = asyncio.create_task(read_bounded_body(conn.receive, conn.send, 10, 1.0))
    await asyncio.sleep(0.01)
    conn.queue.put_nowait(chunk(b"x" * 6))
    assert await reading is None
    assert conn.status() == 413


async def test_a_client_that_leaves_gives_none() -> None:
    conn = Connection({"type": "http.disconnect"})
    assert await read_bounded_body(conn.receive, conn.send, 100, 1.0) is None
    conn = Connection()
    reading = asyncio.create_task(read_bounded_body(conn.receive, conn.send, 100, 1.0))
    await asyncio.sleep(0.01)
    conn.queue.put_nowait({"type": "http.disconnect"})
    assert await reading is None
    assert conn.sent == []


async def test_cancelling_the_request_reaches_the_waiting_receive() -> None:
    conn = Connection()
    reading = asyncio.create_task(read_bounded_body(conn.receive, conn.send, 100, 5.0))
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert conn.cancelled_while_waiting
    assert conn.sent == []
