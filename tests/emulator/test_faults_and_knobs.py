"""Auth, injected faults (429 with and without Retry-After, 5xx, latency), the per-route request counter, seeding,
and the emulator's independence from the gateway.

In-process ASGI client; knobs are changed at runtime through `state.config`, as other suites will do.
"""

from __future__ import annotations

import time

import httpx

from delivery_gateway.emulator import EmulatorState, create_emulator_app
from tests.emulator.conftest import fast_config

LIST_CONVERSATIONS = "GET /v1/Conversations"


async def test_basic_auth_is_required(app, client):
    config = app.state.emulator.config
    attempts = [
        {"headers": {"Authorization": "Bearer token"}, "auth": None},
        {"auth": (config.account_sid, "wrong")},
        {"auth": ("AC" + "f" * 32, config.auth_token)},
    ]
    for attempt in attempts:
        response = await client.get("/v1/Conversations", **attempt)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert response.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
    config.api_keys["SK" + "1" * 32] = "key-secret"
    assert (await client.get("/v1/Conversations", auth=("SK" + "1" * 32, "key-secret"))).status_code == 200


async def test_rate_limit_knob_answers_429_without_retry_after_by_default(app, client):
    """Twilio's 20429 page asks for exponential backoff and documents no Retry-After for Conversations."""
    state = app.state.emulator
    state.config.rate_limit_rate = 1.0
    response = await client.get("/v1/Conversations")
    assert (response.status_code, response.json()["code"]) == (429, 20429)
    assert "Retry-After" not in response.headers


async def test_rate_limit_knob_answers_429_with_retry_after(app, client):
    state = app.state.emulator
    state.config.rate_limit_rate = 1.0
    state.config.retry_after = 3
    response = await client.get("/v1/Conversations")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["code"] == 20429
    state.config.rate_limit_rate = 0.0
    assert (await client.get("/v1/Conversations")).status_code == 200


async def test_server_error_knob(app, client):
    state = app.state.emulator
    state.config.server_error_rate = 1.0
    assert (await client.get("/v1/Conversations")).status_code == 503
    state.config.server_error_status = 500
    response = await client.get("/v1/Conversations")
    assert (response.status_code, response.json()["code"]) == (500, 20500)


async def test_partial_rates_are_probabilistic_and_seeded():
    async def statuses(seed: int) -> list[int]:
        app = create_emulator_app(fast_config(seed=seed, rate_limit_rate=0.3, server_error_rate=0.2))
        state = app.state.emulator
        auth = (state.config.account_sid, state.config.auth_token)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://e", auth=auth) as http:
            return [(await http.get("/v1/Conversations")).status_code for _ in range(40)]

    first, again, other = await statuses(11), await statuses(11), await statuses(12)
    assert first == again != other
    assert set(first) == {200, 429, 503}


async def test_latency_knob(app, client):
    app.state.emulator.config.latency = 0.05
    started = time.perf_counter()
    assert (await client.get("/v1/Conversations")).status_code == 200
    assert time.perf_counter() - started >= 0.05


async def test_request_counter_counts_per_spec_route(app, client):
    state = app.state.emulator
    conversation = next(iter(state.store.conversations.values()))
    await client.get("/v1/Conversations")
    await client.get("/v1/Conversations", auth=("x", "y"))  # failed calls count too: they reached "Twilio"
    await client.get(f"/v1/Conversations/{conversation.sid}/Messages")
    await client.get(f"/v1/Services/{conversation.service_sid}/Conversations/{conversation.sid}/Messages")
    assert state.requests.count(LIST_CONVERSATIONS) == 2
    assert state.requests.count("GET /v1/Conversations/{ConversationSid}/Messages") == 1
    assert state.requests.count("GET /v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Messages") == 1
    assert state.requests.count() == 4
    state.requests.reset()
    assert state.requests.count() == 0


async def test_same_seed_same_world():
    def world(seed: int):
        state = EmulatorState(fast_config(seed=seed, seed_data=True))
        return [
            (r.sid, r.status, r.error_code, r.channel_message_sid)
            for per_message in state.store.receipts.values()
            for r in per_message.values()
        ] + [(c.sid, c.unique_name) for c in state.store.conversations.values()]

    assert world(3) == world(3)
    assert world(3) != world(4)


async def test_default_service_is_reachable_in_service_scope(app, client):
    state = app.state.emulator
    default = state.default_service_sid
    listed = (await client.get(f"/v1/Services/{default}/Conversations")).json()["conversations"]
    assert {c["sid"] for c in listed} == {c.sid for c in state.store.conversations_in(default)}
    other = next(c for c in state.store.conversations.values() if c.service_sid != default)
    assert (await client.get(f"/v1/Conversations/{other.sid}")).status_code == 404
    assert (await client.get(f"/v1/Services/{other.service_sid}/Conversations/{other.sid}")).status_code == 200
    by_unique_name = await client.get(f"/v1/Services/{other.service_sid}/Conversations/{other.unique_name}")
    assert by_unique_name.json()["sid"] == other.sid


async def test_dropped_connections_break_the_response_without_logging_a_traceback(caplog):
    import asyncio
    import logging

    import httpx

    from delivery_gateway.emulator import serve_emulator

    from .conftest import fast_config

    uvicorn_errors = logging.getLogger("uvicorn.error")
    config = fast_config(connection_reset_rate=1.0)
    async with serve_emulator(config) as running, httpx.AsyncClient(base_url=running.base_url) as client:
        # Attached once the server runs: configuring uvicorn's logging strips the logger's handlers.
        uvicorn_errors.addHandler(caplog.handler)
        try:
            response = await client.get("/v1/Conversations", auth=(config.account_sid, config.auth_token))
            response.read()
            broke = False
        except httpx.HTTPError:
            broke = True
        finally:
            await asyncio.sleep(0.05)  # the server logs after the client saw the break
            uvicorn_errors.removeHandler(caplog.handler)
    assert broke
    assert not [r for r in caplog.records if r.name == "uvicorn.error" and r.exc_info]


def test_the_emulator_imports_nothing_of_the_gateway():
    """The emulator is the gateway's stand-in for Twilio: it must not share the gateway's code (or assumptions)."""
    import ast
    from pathlib import Path

    import delivery_gateway.emulator as package

    offenders = []
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.level == 0 else []
            for name in names:
                if name.split(".")[0] == "delivery_gateway" and not name.startswith("delivery_gateway.emulator"):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
