"""A socket that does not read, under a live hub: writes to the others complete at once (no task, no queue), its own
frames queue behind its waiting write up to the bound, and past it its hub subscriptions end with SLOW_CONSUMER and
`complete` while the hub goes on for the others.

The sockets are ASGI sends: one completes at once (a socket that keeps up), one waits until released (a socket whose
transport paused writing: the peer does not read), as uvicorn's does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.live.hub import HubConnection, HubMember, SubscriptionRequest
from delivery_gateway.graphql.live.outbox import Outbox
from delivery_gateway.kernel.settings import Settings
from tests.graphql.gql_support import FULL


class Socket:
    """An ASGI send that records frames; `stuck` makes each write wait until `release()`."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.frames: list[str] = []
        self.stuck = stuck
        self._open: asyncio.Event = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if self.stuck:
            await self._open.wait()
        self.frames.append(message["text"])

    def release(self) -> None:
        self.stuck = False
        self._open.set()


async def test_a_socket_that_keeps_up_is_written_at_once_without_a_task():
    socket = Socket()
    outbox = Outbox(socket.send, limit=4)
    tasks = len(asyncio.all_tasks())
    for i in range(10):
        assert outbox.put(f"frame {i}")
    assert socket.frames == [f"frame {i}" for i in range(10)]  # written within put, in order
    assert len(asyncio.all_tasks()) == tasks and outbox.waiting == 0


async def test_a_socket_that_does_not_read_queues_up_to_its_bound_in_order():
    socket = Socket(stuck=True)
    outbox = Outbox(socket.send, limit=3)
    assert outbox.put("a")  # its write waits for the socket
    assert [outbox.put(f) for f in ("b", "c", "d")] == [True, True, True]
    assert outbox.put("e") is False  # the bound: the owner decides (a hub ends the socket's subscriptions)
    outbox.force("last")  # an ending subscription's final frame goes in whatever the bound
    socket.release()
    for _ in range(10):
        await asyncio.sleep(0)
    assert socket.frames == ["a", "b", "c", "d", "last"]
    assert outbox.waiting == 0 and outbox.put("f") and socket.frames[-1] == "f"


async def test_a_write_that_waits_while_its_task_runs_goes_out_once_the_socket_drains():
    """The write's task starts waiting before the socket is released (a transport paused for a while): the write
    and what queued behind it still go out, in order, none lost."""
    socket = Socket(stuck=True)
    outbox = Outbox(socket.send, limit=3)
    assert outbox.put("a") and outbox.put("b")
    for _ in range(5):
        await asyncio.sleep(0)  # the task waits for the socket now
    assert socket.frames == [] and outbox.waiting == 1
    socket.release()
    for _ in range(10):
        await asyncio.sleep(0)
    assert socket.frames == ["a", "b"] and outbox.waiting == 0


async def test_past_its_bound_a_socket_leaves_its_hub_with_slow_consumer_and_the_others_go_on(fake):
    services = GatewayServices(settings=Settings(_env_file=None), upstream=fake)
    hubs = services.hubs
    request = SubscriptionRequest("subscription { x }", None, None, json.dumps)
    hub = hubs.hub_for("group", None, request)  # type: ignore[arg-type]
    forgotten: list[str] = []
    context = RequestContext(services, FULL)
    fast, slow = Socket(), Socket(stuck=True)
    reader = HubConnection(context, fast.send, 2, json.dumps, forgotten.append)
    stalled = HubConnection(context, slow.send, 2, json.dumps, forgotten.append)
    members = [HubMember(reader, "r", hub), HubMember(stalled, "s1", hub), HubMember(stalled, "s2", hub)]
    for member in members:
        member.connection.members[member.id] = member
        hub.members[id(member)] = member

    class Result:
        data: dict[str, Any]
        extensions = None

    for n in range(4):
        result = Result()
        result.data = {"n": n}
        hub._deliver(result)  # type: ignore[arg-type]
        # The reader has each event as soon as it is delivered, whatever the stalled socket does.
        assert json.loads(fast.frames[-1]) == {"id": "r", "type": "next", "payload": {"data": {"n": n}}}
    assert len(hub) == 1 and set(forgotten) == {"s1", "s2"} and not stalled.members
    slow.release()
    for _ in range(20):
        await asyncio.sleep(0)
    frames = [json.loads(f) for f in slow.frames]
    # The write that was waiting goes out; what queued behind it is dropped (it resumes with `after`); then each
    # subscription's end.
    assert frames[0] == {"id": "s1", "type": "next", "payload": {"data": {"n": 0}}}
    ends = frames[1:]
    assert [(f["id"], f["type"]) for f in ends] == [
        ("s1", "next"),
        ("s1", "complete"),
        ("s2", "next"),
        ("s2", "complete"),
    ]
    assert ends[0]["payload"]["errors"][0]["extensions"]["code"] == "SLOW_CONSUMER"
    assert fast.frames and len(fast.frames) == 4
