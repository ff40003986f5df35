"""What executing the chat screen costs inside the process, through the assembled app (`create_app`, the HTTP
route, an API key): asyncio tasks, DataLoader.load calls and resolvers with code, counted by bench/counters.py,
pinned exactly like the upstream calls; and a message whose Receipts list fails errs on its own fields only.

Never opens a socket: requests go through httpx's ASGI transport to an app whose lifespan runs in-process.
"""

from __future__ import annotations

import dataclasses

import httpx

from bench.counters import count_operation
from delivery_gateway.cache import keys
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.errors import UpstreamUnavailable
from tests.app_support import running_app
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import assert_message_failed_alone, build_chat, post_chat_screen

API_KEY = "counts-key"


async def chat_screen(app, sid: str) -> dict:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await post_chat_screen(client, sid, API_KEY)


def settings() -> Settings:
    # No response cache: the warm request must execute (what is counted is execution below that cache).
    return Settings(_env_file=None, DELIVERY_GATEWAY_API_KEYS=API_KEY, DELIVERY_GATEWAY_RESPONSE_CACHE=False)


async def test_chat_screen_runs_in_a_handful_of_tasks_and_one_load_per_list():
    fake = FakeConversations()
    conv, *_ = build_chat(fake)
    async with running_app(settings(), fake) as app:
        schema = app.state.gateway.graphql.schema
        with count_operation(schema) as cold:
            first = await chat_screen(app, conv.record.sid)
        with count_operation(schema) as warm:
            second = await chat_screen(app, conv.record.sid)
    assert "errors" not in first and second == first
    edges = first["data"]["conversation"]["messages"]["edges"]
    with_receipts = sum(1 for e in edges if e["node"]["delivery"] is not None)
    assert len(edges) == 50 and with_receipts == 33
    assert dict(fake.calls) == {
        "fetch_conversation": 1,
        "list_participants": 1,
        "list_messages": 1,
        "list_receipts": with_receipts,
    }
    # Loads: the conversation; its participants (started with it, then read by `participants` and by the page's
    # one step); its latest messages page (started with it, then read by the window); one Receipts list per message
    # whose recipients can have receipts. Nothing per field.
    expected_loads = {
        "conversation_loader.<locals>.load": 1,
        "participants_loader.<locals>.load": 3,
        "message_page_loader.<locals>.load": 2,
        "receipts_loader.<locals>.load": with_receipts,
    }
    # Resolvers with code: the three fields with arguments or I/O, and Relay's `id` of each node; every delivery
    # field below the page (ticks, receipts, recipients, their participants and errors) is a plain attribute.
    expected_resolvers = {
        "Query.conversation": 1,
        "Conversation.id": 1,
        "Conversation.participants": 1,
        "Conversation.messages": 1,
        "Participant.id": 3,
        "Message.id": 50,
    }
    for counts in (cold, warm):
        assert dict(counts.loads_by_loader) == expected_loads
        assert dict(counts.resolvers_by_field) == expected_resolvers
        assert counts.async_resolvers == 3
    # Tasks: one per loader batch (conversation, participants, messages page, receipts) and two for the async
    # fields graphql-core awaits together (participants, messages); cold, one more per upstream call made at once.
    assert warm.tasks == 6 and dict(warm.tasks_by_coroutine) == {
        "dispatch_batch": 4,
        "Executor.complete_awaitable_value": 2,
    }
    assert cold.tasks == 6 + sum(fake.calls.values())


def edges_of(result: dict) -> list[dict]:
    return result["data"]["conversation"]["messages"]["edges"]


async def test_warm_answers_built_once_follow_a_rewritten_entry_at_once():
    """Warm requests serve what was built from the in-process cache's shared entries; when a webhook rewrites one
    message's receipts entry (as webhooks/invalidation.py does), the next answer changes for that message alone and
    equals a fresh gateway's answer at that moment."""
    fake = FakeConversations()
    conv, *_ = build_chat(fake)
    sid = conv.record.sid
    async with running_app(settings(), fake) as app:
        first = await chat_screen(app, sid)
        assert await chat_screen(app, sid) == first  # decodes the entries once
        assert await chat_screen(app, sid) == first  # built from the same shared entries
        victim = next(i for i, e in enumerate(edges_of(first)) if e["node"]["ticks"] == "FAILED")
        message_sid = edges_of(first)[victim]["node"]["sid"]
        delivered = [
            dataclasses.replace(r, status=DeliveryStatus.DELIVERED, reported_status="delivered", error_code=None)
            for r in conv.receipts[message_sid]
        ]
        conv.receipts[message_sid] = delivered  # what Twilio now answers
        cache = app.state.gateway.services.cache
        await cache.set_many({keys.receipts(None, sid, message_sid): [r.to_dict() for r in delivered]}, 60)
        calls = dict(fake.calls)
        after = await chat_screen(app, sid)
        assert dict(fake.calls) == calls  # answered from the cache, no upstream call
    async with running_app(settings(), fake) as fresh_app:  # a cold gateway reading Twilio at this moment
        fresh = await chat_screen(fresh_app, sid)
    assert after == fresh
    changed = [i for i, (a, b) in enumerate(zip(edges_of(first), edges_of(after), strict=True)) if a != b]
    assert changed == [victim]
    node = edges_of(after)[victim]["node"]
    assert node["ticks"] == "DELIVERED" and {r["status"] for r in node["receipts"]} == {"DELIVERED"}


class OneMessageFails(FakeConversations):
    """Twilio fails one message's Receipts list (an outage of one call, after retries)."""

    failing: str | None = None

    async def list_receipts(self, conversation_sid, message_sid, *, service_sid=None):
        if message_sid == self.failing:
            self._call("list_receipts")
            raise UpstreamUnavailable("Twilio did not answer")
        return await super().list_receipts(conversation_sid, message_sid, service_sid=service_sid)


async def test_a_failed_receipts_list_errs_on_that_message_alone():
    fake = OneMessageFails()
    conv, *_ = build_chat(fake)
    async with running_app(settings(), fake) as app:
        healthy = await chat_screen(app, conv.record.sid)
    nodes = [e["node"] for e in healthy["data"]["conversation"]["messages"]["edges"]]
    victim = next(i for i, n in enumerate(nodes) if n["delivery"] is not None)
    fake.failing = nodes[victim]["sid"]
    async with running_app(settings(), fake) as app:  # a gateway with a cold cache
        result = await chat_screen(app, conv.record.sid)
    assert_message_failed_alone(result, nodes, victim)
