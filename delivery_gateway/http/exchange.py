"""The request-level pieces every layer shares: correlation ids and the one bounded body read.

Imports nothing of the origin policy (http/guards.py, which uses Strawberry's origin parser), so the webhook route's
lean path (webhooks/front.py) applies the same rules without depending on anything GraphQL. Never trusts a client's
correlation id unless it is short and plain; never reads a body beyond its limit or its time.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from collections.abc import Generator
from random import getrandbits as _random_bits
from typing import Any

from starlette.types import Message, Receive, Send

CORRELATION_HEADER = b"x-request-id"
CORRELATION_SCOPE_KEY = "correlation_id"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def current_correlation_id() -> str | None:
    """The correlation id of the request this task serves (None outside a request)."""
    return _correlation_id.get()


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    """A guard's own answer: `status` with a GraphQL-shaped body naming `code`."""
    body = json.dumps({"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_too_large(send: Send, limit: int) -> None:
    await send_error(send, 413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes.")


def correlation_id_for(offered: str | None) -> str:
    """A client's `X-Request-ID` when it is 1–64 plain characters, else a fresh random one (32 hex digits).

    From the `random` module (seeded from the OS at start-up and again in a forked child), not `os.urandom`: an
    id labels logs and needs no secrecy, and the system call releases the GIL on every request, which lets the
    ledger's thread take it for a whole switch interval while the event loop waits."""
    if offered and _CLIENT_ID.match(offered):
        return offered
    return f"{_random_bits(128):032x}"


def set_correlation_id(correlation_id: str) -> contextvars.Token[str | None]:
    """`current_correlation_id()` is `correlation_id` until `reset_correlation_id(token)` (logs written meanwhile
    carry it)."""
    return _correlation_id.set(correlation_id)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    _correlation_id.reset(token)


async def read_bounded_body(receive: Receive, send: Send, limit: int, read_timeout: float) -> bytes | None:
    """The whole body, or None when the client left or was answered: 413 beyond `limit` bytes, 408 when it does
    not arrive within `read_timeout` seconds. The one body reader of the guards and of the response cache's hit
    path.

    A small body nearly always arrives with the headers, and then the server's `receive()` completes without
    waiting: that message is taken without arming the deadline (a timer armed and cancelled per request costs
    more CPU than the rest of this read). Only a `receive()` that has to wait, and every later one, runs under
    it, so a client that trickles its body is cut off exactly as before."""
    first = _take_if_ready(receive)
    waiting: _Suspended | None = None
    chunks: list[bytes] = []
    size = 0
    if isinstance(first, _Suspended):
        waiting = first
    else:
        if first["type"] == "http.disconnect":
            return None
        chunk = first.get("body", b"")
        size = len(chunk)
        if size > limit:
            await send_too_large(send, limit)
            return None
        if not first.get("more_body", False):
            return chunk
        chunks.append(chunk)
    try:
        async with asyncio.timeout(read_timeout):
            while True:
                message = await waiting if waiting is not None else await receive()
                waiting = None
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await send_too_large(send, limit)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        await send_error(send, 408, "REQUEST_TIMEOUT", "Request body not received in time.")
        return None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _take_if_ready(receive: Receive) -> Message | _Suspended:
    """`receive()`'s message when it completes without waiting; else the suspended receive, to be awaited."""
    steps = receive().__await__()
    try:
        yielded = steps.send(None)
    except StopIteration as done:
        message: Message = done.value
        return message
    return _Suspended(steps, yielded)


class _Suspended:
    """A `receive()` that stopped at its first wait: awaiting this resumes it where it waits, as `await` would
    have (every wake-up, cancellation included, is passed to it), and gives its message."""

    __slots__ = ("_steps", "_yielded")

    def __init__(self, steps: Generator[Any, Any, Message], yielded: Any) -> None:
        self._steps = steps
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Message]:
        steps, yielded = self._steps, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # a cancellation (the deadline's too): raised where the receive waits
                try:
                    yielded = steps.throw(exc)
                except StopIteration as done:
                    message: Message = done.value
                    return message
            else:
                try:
                    yielded = steps.send(sent)
                except StopIteration as done:
                    message = done.value
                    return message


def replayed(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then the connection's own messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
