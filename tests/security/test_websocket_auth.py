"""WebSocket access over a real socket: connection_init credentials, 4401/4408 closes, per-identity scoping.

Runs the toy app under uvicorn on an ephemeral port and talks graphql-transport-ws with `websockets`.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.security import toy
from tests.security.conftest import API_KEY, CONV_ALICE, CONV_BOB, make_settings, mint

PROTOCOL = "graphql-transport-ws"


async def open_socket(serve, origin: str | None = None, **overrides):
    host = await serve(toy.build_app(make_settings(**overrides)))
    return connect(f"ws://{host}/graphql", subprotocols=[PROTOCOL], origin=origin, open_timeout=5)


async def closed_with(ws) -> int:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    return ws.close_code


async def init(ws, payload: dict | None) -> dict:
    message = {"type": "connection_init"} | ({"payload": payload} if payload is not None else {})
    await ws.send(json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def subscribe(ws, op_id: str, sid: str) -> None:
    query = f'subscription {{ conversationEvents(sid: "{sid}") }}'
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query}}))


async def collect(ws, op_id: str) -> list[dict]:
    messages = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message.get("id") == op_id:
            messages.append(message)
            if message["type"] in ("complete", "error"):
                return messages


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
async def test_missing_or_bad_init_credentials_close_4401(serve, payload) -> None:
    async with await open_socket(serve) as ws:
        message = {"type": "connection_init"} | ({"payload": payload} if payload is not None else {})
        await ws.send(json.dumps(message))
        assert await closed_with(ws) == 4401
    assert toy.UPSTREAM_CALLS == []


async def test_subscribe_before_init_closes_4401(serve) -> None:
    async with await open_socket(serve) as ws:
        await subscribe(ws, "1", CONV_ALICE)
        assert await closed_with(ws) == 4401
    assert toy.UPSTREAM_CALLS == []


async def test_silent_client_times_out_4408(serve) -> None:
    async with await open_socket(serve, DELIVERY_GATEWAY_WS_INIT_TIMEOUT=0.3) as ws:
        assert await closed_with(ws) == 4408


async def test_participant_subscribes_to_own_conversation_not_a_strangers(serve) -> None:
    async with await open_socket(serve) as ws:
        assert (await init(ws, {"Authorization": f"Bearer {mint('alice')}"}))["type"] == "connection_ack"
        await subscribe(ws, "own", CONV_ALICE)
        own = await collect(ws, "own")
        assert [m["payload"]["data"]["conversationEvents"] for m in own if m["type"] == "next"] == [
            f"{CONV_ALICE}:{i}" for i in range(3)
        ]
        await subscribe(ws, "other", CONV_BOB)
        other = await collect(ws, "other")
        errors = [e for m in other for e in errors_of(m)]
        assert errors and all(e["extensions"]["code"] == "FORBIDDEN" for e in errors)
        assert CONV_BOB + ":" not in json.dumps(other)


async def test_internal_key_and_demo_over_websocket(serve) -> None:
    async with await open_socket(serve) as ws:
        assert (await init(ws, {"Authorization": f"Bearer {API_KEY}"}))["type"] == "connection_ack"
        await subscribe(ws, "1", CONV_BOB)
        assert [m["type"] for m in await collect(ws, "1")] == ["next", "next", "next", "complete"]
    async with await open_socket(serve, DELIVERY_GATEWAY_DEMO_MODE=True) as ws:
        assert (await init(ws, {}))["type"] == "connection_ack"


async def test_max_subscriptions_per_connection(serve) -> None:
    async with await open_socket(serve, DELIVERY_GATEWAY_MAX_SUBSCRIPTIONS_PER_CONNECTION=2) as ws:
        await init(ws, {"Authorization": f"Bearer {API_KEY}"})
        for op_id in ("a", "b", "c"):
            payload = {"query": "subscription { forever }"}
            await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        third = await collect(ws, "c")
        assert third[-1]["type"] == "error" and "limit" in third[-1]["payload"][0]["message"]


async def test_limits_apply_to_subscriptions(serve) -> None:
    async with await open_socket(serve, DELIVERY_GATEWAY_MAX_QUERY_COST=1) as ws:  # the subscription costs 2
        await init(ws, {"Authorization": f"Bearer {API_KEY}"})
        await subscribe(ws, "1", CONV_ALICE)
        errors = errors_of((await collect(ws, "1"))[0])
        assert errors[0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert toy.UPSTREAM_CALLS == []


async def test_disallowed_origin_refused_configured_one_accepted(serve) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with await open_socket(serve, origin="https://evil.example"):
            pass
    assert info.value.response.status_code == 403
    ws_cm = await open_socket(
        serve, origin="https://app.example", DELIVERY_GATEWAY_ALLOWED_ORIGINS="https://app.example"
    )
    async with ws_cm as ws:
        assert (await init(ws, {"Authorization": f"Bearer {API_KEY}"}))["type"] == "connection_ack"
    demo = await open_socket(serve, origin="http://localhost:5173", DELIVERY_GATEWAY_DEMO_MODE=True)
    async with demo as ws:
        assert (await init(ws, {}))["type"] == "connection_ack"


async def test_legacy_graphql_ws_protocol_is_authenticated_too(serve) -> None:
    host = await serve(toy.build_app(make_settings(DELIVERY_GATEWAY_LEGACY_GRAPHQL_WS=True)))
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-ws"], open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}}))
        assert await closed_with(ws) == 4401
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-ws"], open_timeout=5) as ws:
        assert (await init(ws, {"Authorization": f"Bearer {mint('alice')}"}))["type"] == "connection_ack"
        query = f'subscription {{ conversationEvents(sid: "{CONV_ALICE}") }}'
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": query}}))
        reply = {"type": "ka"}
        while reply["type"] == "ka":  # legacy keep-alives
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["payload"]["data"] == {"conversationEvents": f"{CONV_ALICE}:0"}, reply
        await ws.send(json.dumps({"id": "2", "type": "start", "payload": {"query": "{ whoami }"}}))
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
    if serve not in _SERVED:  # one server for all examples of this test run
        _SERVED.clear()
        _SERVED[serve] = await serve(toy.build_app(make_settings()))
    host = _SERVED[serve]
    async with connect(f"ws://{host}/graphql", subprotocols=[PROTOCOL], open_timeout=5) as ws:
        await ws.send(frame)
        try:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed:
            assert ws.close_code in (4400, 4401), ws.close_code
            return
    assert reply["type"] == "connection_ack"
    assert f"Bearer {API_KEY}" in str(frame)
    assert toy.UPSTREAM_CALLS == []
