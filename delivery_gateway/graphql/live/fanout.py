"""Grouped fan-out: subscribers of the same subscription (document, operation, variables, caller scope) share one
execution per event, and one serialised payload.

Each subscriber keeps its own change stream (a resume cursor, a slow consumer or a closed socket stays its own
business); what is shared is the work per event. The first subscriber of a group to reach an event executes it
(with a context of its own, graphql/live/execution.py); the others of the group take that result, and the
WebSocket handler sends each of them the payload serialised once (`payload_text`). Only a group's latest event is
kept, for SHARE_SECONDS at most: a subscriber further behind executes its event again, which is as fresh.

Never shares between callers of different scopes (a participant's identity and service, or full access), never
shares a result with errors (each subscriber's errors are its own to mask and log), and keeps no subscriber's
state: one entry per group with a recent event, whoever subscribed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from graphql import ExecutionResult

SHARE_SECONDS = 5.0


def variables_key(variables: dict[str, Any] | None) -> str:
    """Coerced variables as one canonical string (key order does not matter)."""
    return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"), default=str)


def _ignore(count: float) -> None:
    return None


@dataclass
class SharedEvent:
    """A group's latest event: its result, made once and awaited by the others, serialised once."""

    cursor: str
    result: asyncio.Future[ExecutionResult]
    payload_text: str | None = None
    expiry: asyncio.TimerHandle | None = None


class EventFanout:
    """Per process: each group's latest event (one entry per group, gone SHARE_SECONDS after it was made)."""

    def __init__(self, on_execute: Callable[[], None] | None = None, on_share: Callable[[float], None] | None = None):
        self._events: dict[Hashable, SharedEvent] = {}
        self._by_data: dict[int, SharedEvent] = {}  # id(result.data) -> entry, while the entry lives
        self._on_execute = on_execute or (lambda: None)
        self._on_share: Callable[[float], None] = on_share or _ignore
        self.executions = 0  # events executed (first of their group, or unshareable)
        self.shared = 0  # events served from another subscriber's execution

    def __len__(self) -> int:
        return len(self._events)

    async def run(
        self, group: Hashable, cursor: str, execute: Callable[[], Awaitable[ExecutionResult]]
    ) -> ExecutionResult:
        """The event `cursor`'s result for `group`: executed here unless a subscriber of the group just did."""
        entry = self._events.get(group)
        if entry is not None and entry.cursor == cursor:
            try:
                result = await asyncio.shield(entry.result)
            except asyncio.CancelledError:
                if not entry.result.cancelled():
                    raise  # this subscriber is going away
                return await self._execute(execute)  # the one executing it went away first
            if not result.errors:
                self.shared += 1
                self._on_share(1)
                return result
            return await self._execute(execute)
        if entry is not None:
            self._forget(group, entry)
        loop = asyncio.get_running_loop()
        entry = SharedEvent(cursor, loop.create_future())
        self._events[group] = entry
        entry.expiry = loop.call_later(SHARE_SECONDS, self._forget, group, entry)
        try:
            result = await self._execute(execute)
        except BaseException as error:
            self._forget(group, entry)
            if isinstance(error, asyncio.CancelledError):
                entry.result.cancel()  # waiters execute the event themselves
            else:
                entry.result.set_exception(error)
                entry.result.exception()  # retrieved here: waiters re-raise it, nobody else needs to
            raise
        entry.result.set_result(result)
        if result.errors:
            self._forget(group, entry)
        elif isinstance(result.data, dict) and self._events.get(group) is entry:
            self._by_data[id(result.data)] = entry
        return result

    def note_shared(self, subscribers: int) -> None:
        """`subscribers` more subscribers received an event executed once (a live hub's, graphql/live/hub.py)."""
        if subscribers > 0:
            self.shared += subscribers
            self._on_share(subscribers)

    async def _execute(self, execute: Callable[[], Awaitable[ExecutionResult]]) -> ExecutionResult:
        self.executions += 1
        self._on_execute()
        return await execute()

    def payload_text(self, payload: dict[str, Any], encode: Callable[[object], str]) -> str | None:
        """The `next` payload serialised once per shared result (None: not a shared result; serialise it as usual).
        Only a payload of data alone is shared (errors and extensions are each subscriber's own)."""
        if len(payload) != 1 or "data" not in payload:
            return None
        entry = self._by_data.get(id(payload["data"]))
        if entry is None or not entry.result.done() or entry.result.result().data is not payload["data"]:
            return None
        if entry.payload_text is None:
            entry.payload_text = encode(payload)
        return entry.payload_text

    def _forget(self, group: Hashable, entry: SharedEvent) -> None:
        if self._events.get(group) is entry:
            del self._events[group]
        if entry.expiry is not None:
            entry.expiry.cancel()
        if entry.result.done() and not entry.result.cancelled() and entry.result.exception() is None:
            data = entry.result.result().data
            if self._by_data.get(id(data)) is entry:
                del self._by_data[id(data)]
