"""The whole-response cache through `create_app`: hits make no upstream call and execute nothing, callers with
different scopes never share an answer, errors are never cached, mutations and webhooks invalidate exactly what
they change (on every replica), and no answer outlives the resources it was built from.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from delivery_gateway import create_app
from delivery_gateway.kernel.records import DeliveryStatus as S
from tests.app_support import gateway_on_emulator, running_app
from tests.graphql.fake_upstream import FakeConversations
from tests.redis_support import RedisTarget
from tests.security.conftest import API_KEY, CONV_ALICE, CONV_MALLORY, make_settings, make_world, mint

CHAT = """
query Chat($sid: String!) {
  conversation(sid: $sid) {
    sid friendlyName
    messages(last: 20) { edges { node { sid body ticks delivery { total delivered read failed } } } }
  }
}
"""
AS_API_KEY = {"Authorization": f"Bearer {API_KEY}"}


def metric(app: Starlette, result: str) -> float:
    return app.state.gateway.services.metrics.sample(
        "delivery_gateway_response_cache_requests_total", {"result": result}
    )


class Executions:
    """Counts executions of the app's schema (a hit must run none)."""

    def __init__(self, app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
        schema = app.state.gateway.graphql.schema
        original = schema.execute
        self.count = 0

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(schema, "execute", counted)


@pytest.fixture
def fake() -> FakeConversations:
    return make_world()


@pytest.fixture
async def client(fake: FakeConversations) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(), upstream=fake) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


async def post(client: httpx.AsyncClient, headers: dict[str, str], query: str = CHAT, **variables: Any):
    return await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


async def test_a_hit_makes_no_upstream_call_and_executes_nothing(client, fake, monkeypatch):
    app = client.app
    executions = Executions(app, monkeypatch)
    first = await post(client, AS_API_KEY, sid=CONV_ALICE)
    assert first.status_code == 200 and "errors" not in first.json()
    calls = sum(fake.calls.values())
    assert calls > 0 and executions.count == 1
    second = await post(client, AS_API_KEY, sid=CONV_ALICE)
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert sum(fake.calls.values()) == calls and executions.count == 1
    assert metric(app, "hit") == 1 and metric(app, "miss") == 1
    # The same operation in other bytes (spacing, key order) shares the entry: it is parsed, never executed.
    body = json.dumps({"variables": {"sid": CONV_ALICE}, "query": CHAT}, indent=2)
    headers = {**AS_API_KEY, "content-type": "application/json"}
    third = await client.post("/graphql", content=body, headers=headers)
    assert third.content == first.content and executions.count == 1 and metric(app, "hit") == 2
    # GET answers from the same entry once its own bytes are known.
    params = {"query": CHAT, "variables": json.dumps({"sid": CONV_ALICE})}
    for _ in range(2):
        got = await client.get("/graphql", params=params, headers=AS_API_KEY)
        assert got.content == first.content
    assert executions.count == 1 and sum(fake.calls.values()) == calls


async def test_callers_with_different_scopes_never_share_an_entry(client, fake, monkeypatch):
    app = client.app
    executions = Executions(app, monkeypatch)
    alice = {"Authorization": f"Bearer {mint('alice')}"}
    bob = {"Authorization": f"Bearer {mint('bob')}"}
    answers = [await post(client, headers, sid=CONV_ALICE) for headers in (AS_API_KEY, alice, bob)]
    assert all("errors" not in a.json() for a in answers)
    assert executions.count == 3 and metric(app, "hit") == 0
    mallory = await post(client, {"Authorization": f"Bearer {mint('mallory')}"}, sid=CONV_ALICE)
    assert mallory.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert mallory.json()["data"] == {"conversation": None}
    assert executions.count == 4
    again = await post(client, alice, sid=CONV_ALICE)  # a fresh token of the same identity: the same scope
    assert again.content == answers[1].content and executions.count == 4 and metric(app, "hit") == 1


async def test_errors_are_never_cached(client, fake, monkeypatch):
    app = client.app
    executions = Executions(app, monkeypatch)
    missing = "CH" + "99" * 16
    for _ in range(2):
        answer = await post(client, AS_API_KEY, sid=missing)
        assert answer.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert executions.count == 2 and metric(app, "hit") == 0 and metric(app, "uncacheable") == 2


async def test_lists_and_reports_are_never_cached(client, monkeypatch):
    executions = Executions(client.app, monkeypatch)
    query = "{ conversations(first: 5) { edges { node { sid } } } }"
    for _ in range(2):
        answer = await client.post("/graphql", json={"query": query}, headers=AS_API_KEY)
        assert "errors" not in answer.json()
    assert executions.count == 2


RESEND = """
mutation Resend($c: String!, $m: String!) { resendMessage(conversationSid: $c, messageSid: $m) { sid } }
"""
LINKS = "query Links($c: String!, $m: String!) { message(conversationSid: $c, sid: $m) { sid resentAs { sid } } }"


async def test_a_mutation_invalidates_the_conversations_it_touches(client, fake, monkeypatch):
    conv = fake.conversations[CONV_ALICE]
    sms = next(p for p in conv.participants if p.messaging_binding)
    failed = fake.add_message(conv, conv.participants[0], "lost", {sms.sid: (S.UNDELIVERED, 30003)})
    other = await post(client, AS_API_KEY, sid=CONV_MALLORY)
    before = await post(client, AS_API_KEY, LINKS, c=CONV_ALICE, m=failed.sid)
    assert before.json()["data"]["message"]["resentAs"] == []
    resent = await post(client, AS_API_KEY, RESEND, c=CONV_ALICE, m=failed.sid)
    assert "errors" not in resent.json(), resent.json()
    new_sid = resent.json()["data"]["resendMessage"]["sid"]
    after = await post(client, AS_API_KEY, LINKS, c=CONV_ALICE, m=failed.sid)
    assert after.json()["data"]["message"]["resentAs"] == [{"sid": new_sid}]
    executions = Executions(client.app, monkeypatch)
    assert (await post(client, AS_API_KEY, sid=CONV_MALLORY)).content == other.content  # untouched: still a hit
    assert executions.count == 0


async def test_no_answer_outlives_the_resources_it_was_built_from(fake, monkeypatch):
    settings = make_settings(
        DELIVERY_GATEWAY_TTL_CONVERSATION=0.3,
        DELIVERY_GATEWAY_TTL_PARTICIPANTS=0.3,
        DELIVERY_GATEWAY_TTL_MESSAGES=0.3,
        DELIVERY_GATEWAY_TTL_RECEIPTS=0.3,
        DELIVERY_GATEWAY_TTL_RECEIPTS_TERMINAL=0.3,
    )
    async with running_app(settings, upstream=fake) as app:
        executions = Executions(app, monkeypatch)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            await post(c, AS_API_KEY, sid=CONV_ALICE)
            await post(c, AS_API_KEY, sid=CONV_ALICE)
            assert executions.count == 1
            await asyncio.sleep(0.4)
            await post(c, AS_API_KEY, sid=CONV_ALICE)
            assert executions.count == 2
    uncached = make_settings(DELIVERY_GATEWAY_TTL_MESSAGES=0)  # pages not stored: the answer is not either
    async with running_app(uncached, upstream=fake) as app:
        executions = Executions(app, monkeypatch)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            for _ in range(2):
                await post(c, AS_API_KEY, sid=CONV_ALICE)
        assert executions.count == 2


# -- webhooks, on the emulator -------------------------------------------------------------------------------


def two_conversations(emulator) -> tuple[str, str]:
    store = emulator.state.store
    usable = [
        sid
        for sid, members in store.participants.items()
        if any(p.channel == "chat" for p in members.values()) and any(p.channel != "chat" for p in members.values())
    ]
    return usable[0], usable[1]


async def webhook_drops_exactly_what_it_changes(**settings: Any) -> None:
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True, **settings) as gw:
        app = gw.app
        changed, untouched = two_conversations(gw.emulator)
        async with httpx.AsyncClient(base_url=gw.base_url) as c:
            first = {sid: await post(c, {}, sid=sid) for sid in (changed, untouched)}
            for sid in (changed, untouched):
                assert (await post(c, {}, sid=sid)).content == first[sid].content
            assert metric(app, "hit") == 2
            state = gw.emulator.state
            members = state.store.participants[changed].values()
            author = next(p.identity for p in members if p.channel == "chat")
            message, _ = state.store.create_message(changed, author=author, body="after the cache")
            await state.simulator.idle()
            await state.webhooks.drain()
            await gw.gateway.ingest.drain()
            fresh = await post(c, {}, sid=changed)
            assert metric(app, "hit") == 2  # executed again
            uncached = await post(c, {}, CHAT.replace("query Chat", "query Uncached"), sid=changed)
            assert fresh.json() == uncached.json()
            assert any(
                e["node"]["sid"] == message.sid for e in fresh.json()["data"]["conversation"]["messages"]["edges"]
            )
            assert (await post(c, {}, sid=untouched)).content == first[untouched].content
            assert metric(app, "hit") == 3


async def test_a_webhook_drops_exactly_the_entries_it_changes_in_memory():
    await webhook_drops_exactly_what_it_changes()


async def test_a_webhook_drops_exactly_the_entries_it_changes_on_redis(redis_target: RedisTarget):
    await webhook_drops_exactly_what_it_changes(DELIVERY_GATEWAY_RESPONSE_CACHE_URL=redis_target.url)
    assert [key for key in redis_target.keys() if "dg:responses:e:" in key]  # the untouched entry, in Redis


async def test_a_webhook_on_one_replica_invalidates_the_other(redis_target: RedisTarget):
    shared = {
        "DELIVERY_GATEWAY_CACHE_URL": redis_target.url,
        "DELIVERY_GATEWAY_PUBSUB_URL": redis_target.url,
        "DELIVERY_GATEWAY_RESPONSE_CACHE_URL": "memory://",  # each replica's own entries: only pub/sub reaches B
    }
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True, **shared) as a:
        changed, _ = two_conversations(a.emulator)
        replica_b = create_app(a.settings.model_copy(update={"public_url": "http://replica-b.invalid"}))
        gateway_b = replica_b.state.gateway
        await gateway_b.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=replica_b), base_url="http://b") as b:
                first = await post(b, {}, sid=changed)
                assert (await post(b, {}, sid=changed)).content == first.content
                assert metric(replica_b, "hit") == 1
                state = a.emulator.state
                author = next(p.identity for p in state.store.participants[changed].values() if p.channel == "chat")
                message, _ = state.store.create_message(changed, author=author, body="seen on B")
                await state.simulator.idle()
                await state.webhooks.drain()
                await a.gateway.ingest.drain()
                invalidations = "delivery_gateway_response_cache_invalidations_total"
                for _ in range(200):
                    if gateway_b.services.metrics.sample(invalidations, {"reason": "replica"}):
                        break
                    await asyncio.sleep(0.02)
                fresh = await post(b, {}, sid=changed)
                assert metric(replica_b, "hit") == 1
                edges = fresh.json()["data"]["conversation"]["messages"]["edges"]
                assert any(e["node"]["sid"] == message.sid for e in edges)
        finally:
            await gateway_b.close()


async def test_a_remembered_access_token_is_refused_once_it_expires(fake):
    async with running_app(make_settings(DELIVERY_GATEWAY_TOKEN_LEEWAY=0), upstream=fake) as app:
        headers = {"Authorization": f"Bearer {mint('alice', ttl=1)}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            assert "errors" not in (await post(c, headers, sid=CONV_ALICE)).json()
            assert (await post(c, headers, sid=CONV_ALICE)).status_code == 200  # remembered, and a cache hit
            await asyncio.sleep(1.3)
            expired = await post(c, headers, sid=CONV_ALICE)
            assert expired.status_code == 401
            assert expired.json()["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED"


async def test_a_hit_carries_the_headers_of_the_full_stack_and_its_guards(fake):
    settings = make_settings(DELIVERY_GATEWAY_ALLOWED_ORIGINS="https://chat.example")
    async with running_app(settings, upstream=fake) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            for origin in ("https://chat.example", "https://evil.example", None):
                headers = {**AS_API_KEY, "X-Request-ID": "req-1"} | ({"Origin": origin} if origin else {})
                miss, hit = [await post(c, headers, sid=CONV_ALICE) for _ in range(2)]
                assert hit.content == miss.content
                assert hit.headers == miss.headers, origin  # CORS, Vary, X-Request-ID, type and length alike
            allowed = (await post(c, {**AS_API_KEY, "Origin": "https://chat.example"}, sid=CONV_ALICE)).headers
            assert allowed["access-control-allow-origin"] == "https://chat.example"
            assert allowed["x-request-id"] and allowed["x-request-id"] != "req-1"  # a fresh id per request
            # The guards still hold on a cached request: bad credentials, two of them, none, an oversize body.
            refused = await post(c, {"Authorization": "Bearer wrong"}, sid=CONV_ALICE)
            assert refused.status_code == 401
            assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert (await post(c, {}, sid=CONV_ALICE)).status_code == 401
            doubled = httpx.Headers([("authorization", f"Bearer {API_KEY}"), ("authorization", f"Bearer {API_KEY}")])
            body = json.dumps({"query": CHAT, "variables": {"sid": CONV_ALICE}})
            assert (await c.post("/graphql", content=body, headers=doubled)).status_code == 401
            padded = json.dumps({"query": CHAT + " " * settings.max_body_bytes, "variables": {"sid": CONV_ALICE}})
            assert (await c.post("/graphql", content=padded, headers=AS_API_KEY)).status_code == 413
        assert metric(app, "hit") == 6  # the answer does not depend on the Origin: one miss, then hits only
