"""WebSocket access on the gateway as deployed, over a real socket: connection_init credentials, 4401/4408 closes,
per-identity scoping of subscriptions, origins, the legacy protocol.

Serves `create_app` under uvicorn on an ephemeral port and talks graphql-transport-ws with `websockets`; events
enter the way webhooks do (recorded in the ledger's inbox, then processed), never through a test-only path.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from delivery_gateway.pubsub import conversation_channel
from tests.live.harness import apply_delivery
from tests.security.conftest import API_KEY, CONV_ALICE, CONV_MALLORY, World, gateway_app, make_world, mint

PROTOCOL = "graphql-transport-ws"
SUBSCRIBE = "subscription($c: String!) { deliveryUpdates(conversationSid: $c) { cursor receipt { status } } }"


async def open_socket(world: World, serve, origin: str | None = None, **overrides):
    app = world.build(**overrides)
    host = await serve(app)
    return app, connect(f"ws://{host}/graphql", subprotocols=[PROTOCOL], origin=origin, open_timeout=5)


async def closed_with(ws) -> int:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code


async def init(ws, payload: dict | None) -> dict:
    message = {"type": "connection_init"} | ({"payload": payload} if payload is not None else {})
    await ws.send(json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def subscribe(ws, op_id: str, conversation_sid: str, query: str = SUBSCRIBE) -> None:
    payload = {"query": query, "variables": {"c": conversation_sid}}
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))


async def deliver(app: Starlette, conversation_sid: str, followers: int = 1) -> None:
    """One delivery webhook for the conversation, once `followers` subscriptions listen to it."""
    gateway = app.state.gateway
    channel = conversation_channel(conversation_sid)
    for _ in range(500):
        if gateway.services.pubsub.subscriber_count(channel) >= followers:
            break
        await asyncio.sleep(0.01)
    await apply_delivery(gateway, conversation_sid)


async def next_for(ws, op_id: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message.get("id") == op_id:
            return message


def errors_of(message: dict) -> list[dict]:
    if message["type"] == "error":
        return message["payload"]
    if message["type"] == "next":
        return message["payload"].get("errors") or []
    return []


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {mint(secret='w' * 40)}"}],
)
async def test_missing_or_bad_init_credentials_close_4401(world: World, serve, payload) -> None:
    _, socket = await open_socket(world, serve)
    async with socket as ws:
        message = {"type": "connection_init"} | ({"payload": payload} if payload is not None else {})
        await ws.send(json.dumps(message))
        assert await closed_with(ws) == 4401
    assert world.fake.calls.total() == 0


@pytest.mark.parametrize("frame", ["5", "[]", '"connection_init"', "null"])
async def test_json_that_is_not_an_object_closes_4400(world: World, serve, frame: str) -> None:
    _, socket = await open_socket(world, serve)
    async with socket as ws:
        await ws.send(frame)
        assert await closed_with(ws) == 4400


async def test_expired_token_closes_4401_saying_token_expired(world: World, serve) -> None:
    cases = (
        (mint("alice", ttl=-60), "TOKEN_EXPIRED"),
        (mint("alice", ttl=25 * 3600), "TOKEN_LIFETIME_EXCEEDED"),  # beyond Twilio's 24 h maximum
        ("forged", "UNAUTHENTICATED"),
    )
    for token, reason in cases:
        _, socket = await open_socket(world, serve)
        async with socket as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
            assert await closed_with(ws) == 4401
            assert ws.close_reason == reason  # an app refreshes its Access Token on TOKEN_EXPIRED


async def test_subscribing_to_a_conversation_that_does_not_exist(world: World, serve) -> None:
    """NOT_FOUND at once for full-access callers (not a stream that pings forever); FORBIDDEN for participants."""
    missing = "CH" + "9" * 32
    for credential, code in ((API_KEY, "NOT_FOUND"), (mint("alice"), "FORBIDDEN")):
        _, socket = await open_socket(world, serve)
        async with socket as ws:
            assert (await init(ws, {"Authorization": f"Bearer {credential}"}))["type"] == "connection_ack"
            await subscribe(ws, "1", missing)
            answer = await next_for(ws, "1")
            assert [e["extensions"]["code"] for e in errors_of(answer)] == [code], answer


async def test_subscribe_before_init_closes_4401(world: World, serve) -> None:
    _, socket = await open_socket(world, serve)
    async with socket as ws:
        await subscribe(ws, "1", CONV_ALICE)
        assert await closed_with(ws) == 4401
    assert world.fake.calls.total() == 0


async def test_silent_client_times_out_4408(world: World, serve) -> None:
    _, socket = await open_socket(world, serve, DELIVERY_GATEWAY_WS_INIT_TIMEOUT=0.3)
    async with socket as ws:
        assert await closed_with(ws) == 4408
    legacy = world.build(DELIVERY_GATEWAY_WS_INIT_TIMEOUT=0.3, DELIVERY_GATEWAY_LEGACY_GRAPHQL_WS=True)
    host = await serve(legacy)
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-ws"], open_timeout=5) as ws:
        assert await closed_with(ws) == 4408


async def test_participant_subscribes_to_own_conversation_not_a_strangers(world: World, serve) -> None:
    app, socket = await open_socket(world, serve)
    async with socket as ws:
        assert (await init(ws, {"Authorization": f"Bearer {mint('alice')}"}))["type"] == "connection_ack"
        await subscribe(ws, "other", CONV_MALLORY)
        denied = await next_for(ws, "other")
        assert [e["extensions"]["code"] for e in errors_of(denied)] == ["FORBIDDEN"]
        assert "mallory" not in json.dumps(denied)
        await subscribe(ws, "own", CONV_ALICE)
        await deliver(app, CONV_ALICE)
        own = await next_for(ws, "own")
        assert own["type"] == "next" and own["payload"]["data"]["deliveryUpdates"]["receipt"]["status"] == "DELIVERED"


async def test_internal_key_and_demo_over_websocket(world: World, serve) -> None:
    app, socket = await open_socket(world, serve)
    async with socket as ws:
        assert (await init(ws, {"Authorization": f"Bearer {API_KEY}"}))["type"] == "connection_ack"
        await subscribe(ws, "1", CONV_MALLORY)  # full access
        await deliver(app, CONV_MALLORY)
        assert (await next_for(ws, "1"))["type"] == "next"
    _, socket = await open_socket(world, serve, DELIVERY_GATEWAY_DEMO_MODE=True)
    async with socket as ws:
        assert (await init(ws, {}))["type"] == "connection_ack"


async def test_max_subscriptions_per_connection(world: World, serve) -> None:
    _, socket = await open_socket(world, serve, DELIVERY_GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION=2)
    async with socket as ws:
        await init(ws, {"Authorization": f"Bearer {API_KEY}"})
        for op_id in ("a", "b", "c"):
            await subscribe(ws, op_id, CONV_ALICE)
        third = await next_for(ws, "c")
        assert third["type"] == "error" and "limit" in third["payload"][0]["message"]


async def test_limits_apply_to_subscriptions(world: World, serve) -> None:
    _, socket = await open_socket(world, serve, DELIVERY_GATEWAY_MAX_QUERY_DEPTH=1)
    async with socket as ws:
        await init(ws, {"Authorization": f"Bearer {API_KEY}"})
        await subscribe(ws, "1", CONV_ALICE)  # deliveryUpdates > receipt > status: depth 2
        assert [e["extensions"]["code"] for e in errors_of(await next_for(ws, "1"))] == ["QUERY_TOO_COMPLEX"]
    assert world.fake.calls.total() == 0


async def test_disallowed_origin_refused_configured_one_accepted(world: World, serve) -> None:
    _, socket = await open_socket(world, serve, origin="https://evil.example")
    with pytest.raises(InvalidStatus) as info:
        async with socket:
            pass
    assert info.value.response.status_code == 403
    _, socket = await open_socket(
        world, serve, origin="https://app.example", DELIVERY_GATEWAY_ALLOWED_ORIGINS="https://app.example"
    )
    async with socket as ws:
        assert (await init(ws, {"Authorization": f"Bearer {API_KEY}"}))["type"] == "connection_ack"
    _, socket = await open_socket(world, serve, origin="http://localhost:5173", DELIVERY_GATEWAY_DEMO_MODE=True)
    async with socket as ws:
        assert (await init(ws, {}))["type"] == "connection_ack"


async def test_legacy_graphql_ws_protocol_is_authenticated_too(world: World, serve) -> None:
    app = world.build(DELIVERY_GATEWAY_LEGACY_GRAPHQL_WS=True)
    host = await serve(app)
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-ws"], open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}}))
        assert await closed_with(ws) == 4401
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-ws"], open_timeout=5) as ws:
        assert (await init(ws, {"Authorization": f"Bearer {mint('alice')}"}))["type"] == "connection_ack"
        start = {"query": SUBSCRIBE, "variables": {"c": CONV_ALICE}}
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": start}))
        await deliver(app, CONV_ALICE)
        reply = {"type": "ka"}
        while reply["type"] == "ka":  # legacy keep-alives
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["payload"]["data"]["deliveryUpdates"]["receipt"]["status"] == "DELIVERED", reply
        await ws.send(json.dumps({"id": "2", "type": "start", "payload": {"query": "{ __typename }"}}))
        reply = {"type": "ka"}
        while reply["type"] in ("ka", "data", "complete"):
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["payload"]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"  # not masked as a 500


frames = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.dictionaries(st.sampled_from(["type", "payload", "id"]), st.none() | st.text(max_size=20) | st.integers()).map(
        json.dumps
    ),
    st.fixed_dictionaries(
        {"type": st.just("connection_init")},
        optional={
            "payload": st.none()
            | st.integers()
            | st.text(max_size=20)
            | st.dictionaries(
                st.sampled_from(["Authorization", "authorization", "x"]),
                st.none() | st.integers() | st.text(max_size=40) | st.sampled_from([f"Bearer {API_KEY}", "Bearer "]),
            )
        },
    ).map(json.dumps),
)


_SERVED: dict = {}


@settings(max_examples=30, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames)
async def test_random_first_frames_never_crash(serve, frame) -> None:
    if serve not in _SERVED:  # one server (and one fake upstream) for all examples of this test run
        _SERVED.clear()
        fake = make_world()
        _SERVED[serve] = (await serve(gateway_app(fake)), fake)
    host, fake = _SERVED[serve]
    async with connect(f"ws://{host}/graphql", subprotocols=[PROTOCOL], open_timeout=5) as ws:
        await ws.send(frame)
        try:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed:
            assert ws.close_code in (4400, 4401), ws.close_code
            return
    assert reply["type"] in ("connection_ack", "pong"), reply
    if reply["type"] == "connection_ack":
        assert f"Bearer {API_KEY}" in str(frame)
    assert fake.calls.total() == 0


async def test_hubs_never_mix_caller_scopes_and_admit_each_subscriber_as_itself(world: World, serve) -> None:
    """The same subscription from alice (twice), bob and an API key: one live hub per caller scope (alice's two
    sockets share hers), one stream each; mallory, not a participant, is refused before joining any hub."""
    app = world.build()
    host = await serve(app)
    services = app.state.gateway.services
    credentials = [mint("alice"), mint("alice"), mint("bob"), API_KEY, mint("mallory")]
    sockets = [connect(f"ws://{host}/graphql", subprotocols=[PROTOCOL], open_timeout=5) for _ in credentials]
    opened = [await socket.__aenter__() for socket in sockets]
    try:
        for ws, credential in zip(opened, credentials, strict=True):
            assert (await init(ws, {"Authorization": f"Bearer {credential}"}))["type"] == "connection_ack"
            await subscribe(ws, "1", CONV_ALICE)
        refused = await next_for(opened[-1], "1")
        assert [e["extensions"]["code"] for e in errors_of(refused)] == ["FORBIDDEN"]
        for _ in range(500):
            if services.metrics.subscriptions_active._value.get() == 4:
                break
            await asyncio.sleep(0.01)
        assert sorted(len(hub) for hub in services.hubs.hubs()) == [1, 1, 2]
        assert services.pubsub.subscriber_count(conversation_channel(CONV_ALICE)) == 3
        await deliver(app, CONV_ALICE)
        for ws in opened[:4]:
            assert (await next_for(ws, "1"))["payload"]["data"]["deliveryUpdates"]["receipt"]["status"] == "DELIVERED"
    finally:
        for socket in sockets:
            await socket.__aexit__(None, None, None)
