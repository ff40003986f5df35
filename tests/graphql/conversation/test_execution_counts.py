"""What executing the chat screen costs inside the process, through the assembled app (`create_app`, the HTTP
route, an API key): asyncio tasks, DataLoader.load calls and resolvers with code, counted by bench/counters.py,
pinned exactly like the upstream calls; and a message whose Receipts list fails errs on its own fields only.

Never opens a socket: requests go through httpx's ASGI transport to an app whose lifespan runs in-process.
"""

from __future__ import annotations

import httpx

from bench.counters import count_operation
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.errors import UpstreamUnavailable
from tests.app_support import running_app
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import CHAT_SCREEN, build_chat

API_KEY = "counts-key"


async def chat_screen(app, sid: str) -> dict:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/graphql",
            json={"query": CHAT_SCREEN, "variables": {"sid": sid}},
            headers={"authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 200, response.text
    return response.json()


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
    errors = result["errors"]
    assert sorted(e["path"][-1] for e in errors) == ["receipts", "recipients", "ticks"]
    assert all(e["path"][:5] == ["conversation", "messages", "edges", victim, "node"] for e in errors)
    assert {e["extensions"]["code"] for e in errors} == {"UPSTREAM_UNAVAILABLE"}
    got = [e["node"] for e in result["data"]["conversation"]["messages"]["edges"]]
    broken = got[victim]
    assert broken["receipts"] is None and broken["recipients"] is None and broken["ticks"] is None
    assert broken["participant"] == nodes[victim]["participant"] and broken["delivery"] == nodes[victim]["delivery"]
    assert got[:victim] + got[victim + 1 :] == nodes[:victim] + nodes[victim + 1 :]
