"""A cold chat screen completes each message as its own Receipts list arrives, not the whole page after the last
list: through the assembled app (`create_app`), with a Twilio whose Receipts answers the test releases one by one.

What is pinned: the fields graphql-core has executed before the last list is released (every message but the held
one), the answer (equal to one read all at once), the tasks of the cold request (one more per message whose list was
awaited) and of the warm one after it (unchanged), and a list that fails late erring on its own message alone.

Never opens a socket: requests go through httpx's ASGI transport to an app whose lifespan runs in-process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bench.counters import count_fields, count_tasks
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.errors import UpstreamUnavailable
from tests.app_support import running_app
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import assert_message_failed_alone, build_chat, post_chat_screen

API_KEY = "streaming-key"


class GatedTwilio(FakeConversations):
    """Each Receipts list answers when the test opens its gate (`release`); `asked` holds the messages asked for,
    in order. A message in `failing` answers its gate with an outage instead."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, asyncio.Event] = {}
        self.asked: list[str] = []
        self.failing: set[str] = set()
        self.gated = False

    async def list_receipts(self, conversation_sid, message_sid, *, service_sid=None):
        if self.gated:
            self.asked.append(message_sid)
            await self.gates.setdefault(message_sid, asyncio.Event()).wait()
            if message_sid in self.failing:
                self._call("list_receipts")
                raise UpstreamUnavailable("Twilio did not answer")
        return await super().list_receipts(conversation_sid, message_sid, service_sid=service_sid)

    def release(self, message_sid: str) -> None:
        self.gates.setdefault(message_sid, asyncio.Event()).set()


def settings() -> Settings:
    return Settings(_env_file=None, DELIVERY_GATEWAY_API_KEYS=API_KEY, DELIVERY_GATEWAY_RESPONSE_CACHE=False)


async def post(client: httpx.AsyncClient, sid: str) -> dict:
    return await post_chat_screen(client, sid, API_KEY)


async def settled(counts: Any) -> int:
    """The fields executed once the loop has nothing left to do without another answer (bounded)."""
    last, stable = -1, 0
    for _ in range(2000):
        await asyncio.sleep(0)
        stable = stable + 1 if counts.fields == last else 0
        last = counts.fields
        if stable == 20:
            return last
    raise AssertionError("execution never settled")


def fields_in(value: Any) -> int:
    """Field executions behind a JSON value: one per key, nested objects and list items included."""
    if isinstance(value, dict):
        return sum(1 + fields_in(v) for v in value.values())
    if isinstance(value, list):
        return sum(fields_in(v) for v in value)
    return 0


async def reference(fake: GatedTwilio, sid: str) -> dict:
    """The chat screen read with every list answering at once (a fresh gateway, nothing cached)."""
    fake.gated = False
    async with running_app(settings(), fake) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            return await post(client, sid)


async def gated_chat() -> tuple[GatedTwilio, str, dict, list[dict]]:
    """A fake Twilio holding a chat, its conversation SID, the chat screen read ungated (`reference`) and that
    answer's message nodes."""
    fake = GatedTwilio()
    conv, *_ = build_chat(fake)
    sid = conv.record.sid
    expected = await reference(fake, sid)
    return fake, sid, expected, [e["node"] for e in expected["data"]["conversation"]["messages"]["edges"]]


async def test_each_message_completes_as_its_receipts_list_arrives():
    fake, sid, expected, nodes = await gated_chat()
    fake.gated, fake.calls = True, type(fake.calls)()
    async with running_app(settings(), fake) as app:
        schema = app.state.gateway.graphql.schema
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            with count_fields(schema) as counts, count_tasks(counts):
                request = asyncio.create_task(post(client, sid))
                await settled(counts)
                asked = list(fake.asked)
                held = asked[len(asked) // 2]  # a list from the middle of the wave answers last
                for message_sid in reversed(asked):  # the others answer in another order than they were asked
                    if message_sid != held:
                        fake.release(message_sid)
                before_last = await settled(counts)
                assert not request.done()
                fake.release(held)
                cold = await asyncio.wait_for(request, 10)
            cold_tasks = counts.tasks
            with count_tasks() as warm:
                assert await post(client, sid) == cold
    assert cold == expected and "errors" not in cold
    assert len(asked) == 33 and fake.calls["list_receipts"] == 33
    # Every message but the held one was completed before its list arrived: what remained was that node's fields.
    held_node = next(n for n in nodes if n["sid"] == held)
    assert counts.fields - before_last == fields_in(held_node)
    # Cold: the test's own request task, the six tasks of a warm request, one per upstream call, and one per message
    # whose list it awaited.
    assert cold_tasks == 1 + 6 + 3 + 33 + 33
    assert warm.tasks == 6  # a warm page is plain values: no task per message


async def test_a_receipts_list_failing_after_others_arrived_errs_on_its_message_alone():
    fake, sid, _, nodes = await gated_chat()
    fake.gated = True
    async with running_app(settings(), fake) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            request = asyncio.create_task(post(client, sid))
            for _ in range(1000):
                if len(fake.asked) == 33:
                    break
                await asyncio.sleep(0)
            asked = list(fake.asked)
            victim_sid = asked[len(asked) // 2]
            fake.failing.add(victim_sid)
            for message_sid in asked:  # the failing list answers in the middle of the wave
                fake.release(message_sid)
                await asyncio.sleep(0)
            result = await asyncio.wait_for(request, 10)
    victim = next(i for i, n in enumerate(nodes) if n["sid"] == victim_sid)
    assert_message_failed_alone(result, nodes, victim)
