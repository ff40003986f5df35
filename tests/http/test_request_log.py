"""The request log of the app as deployed: one line per request with what it cost, and never a secret.

The gateway runs in-process on an ephemeral port against the emulator (no simulated traffic, so every upstream
call belongs to a request); log records are captured from the `delivery_gateway.requests` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Iterator

import httpx
import websockets
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from delivery_gateway.http.request_log import REQUEST_LOGGER, RequestLogMiddleware
from delivery_gateway.kernel import request_stats
from delivery_gateway.ops.logs import JsonFormatter, TextFormatter
from tests.app_support import gateway_on_emulator
from tests.live.harness import sign

API_KEY = "log-test-internal-key-0123456789"
KEY_SID, KEY_SECRET = "SK" + "c3" * 16, "log-test-signing-secret-0123456789"
SERVICE = "IS" + "e5" * 16
SCREEN = """query Screen($sid: String!) {
  conversation(sid: $sid) { friendlyName participants { sid } messages(last: 5) { edges { node { sid ticks } } } }
}"""


@contextlib.contextmanager
def captured() -> Iterator[tuple[list[dict], io.StringIO]]:
    """JSON entries of the request log, and the text rendering of everything the gateway's process (its own
    loggers and uvicorn's, not the test's clients) logged at INFO meanwhile."""
    entries: list[dict] = []
    text = io.StringIO()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line = JsonFormatter().format(record)
            text.write(line + "\n" + TextFormatter().format(record) + "\n")
            if record.name == REQUEST_LOGGER:
                entries.append(json.loads(line))

    handler = Collect(logging.INFO)
    loggers = [logging.getLogger(name) for name in ("delivery_gateway", "uvicorn", "twilio", "aiohttp")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield entries, text
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def a_conversation(emulator) -> str:
    store = emulator.state.store
    return next(c.sid for c in store.conversations.values() if c.service_sid == store.default_service.sid)


def on_emulator(**settings):
    return gateway_on_emulator(
        emulator={"simulate": False, "api_keys": {KEY_SID: KEY_SECRET}},
        DELIVERY_GATEWAY_API_KEYS=API_KEY,
        TWILIO_API_KEY=KEY_SID,
        TWILIO_API_SECRET=KEY_SECRET,
        DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS=f"{KEY_SID}:{KEY_SECRET}",
        **settings,
    )


async def test_one_line_per_request_with_id_caller_operation_and_costs():
    async with on_emulator(DELIVERY_GATEWAY_RESPONSE_CACHE=False) as g:  # the warm request reads the resource cache
        conversation = a_conversation(g.emulator)
        body = {"query": SCREEN, "variables": {"sid": conversation}, "operationName": "Screen"}
        headers = {"Authorization": f"Bearer {API_KEY}", "X-Request-ID": "req-cold"}
        with captured() as (entries, _):
            async with httpx.AsyncClient(base_url=g.base_url) as client:
                with g.gateway.services.upstream.calls.capture() as cold_calls:
                    cold = await client.post("/graphql", json=body, headers=headers)
                warm = await client.post("/graphql", json=body, headers={**headers, "X-Request-ID": "req-warm"})
            await asyncio.sleep(0.05)  # the line is written as the response completes
        assert cold.status_code == warm.status_code == 200 and "errors" not in cold.json()
        first, second = entries
        assert first["request_id"] == "req-cold" and second["request_id"] == "req-warm"
        assert first["method"] == "POST" and first["path"] == "/graphql" and first["status"] == 200
        assert first["caller"] == "internal"
        assert (first["operation"], first["operation_type"]) == ("Screen", "query")
        assert first["upstream_calls"] == len(cold_calls) >= 3
        assert first["cache_misses"] > 0 and first["cache_hits"] == 0
        assert second["upstream_calls"] == 0 and second["cache_hits"] > first["cache_hits"]
        assert first["duration_ms"] > 0 and first["client"] == "127.0.0.1"
        assert "response_cache" not in first


async def test_a_response_cache_hit_is_logged_with_its_operation_and_no_cost():
    async with on_emulator() as g:
        conversation = a_conversation(g.emulator)
        body = {"query": SCREEN, "variables": {"sid": conversation}, "operationName": "Screen"}
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with captured() as (entries, _):
            async with httpx.AsyncClient(base_url=g.base_url) as client:
                for _ in range(2):
                    assert (await client.post("/graphql", json=body, headers=headers)).status_code == 200
            await asyncio.sleep(0.05)
        first, second = entries
        assert first["response_cache"] == "miss" and first["upstream_calls"] >= 3
        assert second["response_cache"] == "hit"
        assert (second["operation"], second["operation_type"]) == ("Screen", "query")
        assert second["upstream_calls"] == second["cache_hits"] == second["cache_misses"] == 0


async def test_no_key_token_secret_or_variable_reaches_the_log():
    async with on_emulator() as g:
        account = g.settings.twilio_account_sid
        jwt = AccessToken(account, KEY_SID, KEY_SECRET, identity="alice", ttl=600)
        jwt.add_grant(ChatGrant(service_sid=SERVICE))
        token = jwt.to_jwt()
        secret_variable = "variable-secret-0123456789"
        webhook_url = g.base_url + "/webhooks/twilio"
        form = {"EventType": "onConversationAdded", "AccountSid": account, "ConversationSid": "CH" + "0" * 32}
        with captured() as (entries, text):
            async with httpx.AsyncClient(base_url=g.base_url) as client:
                await client.post(
                    "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {API_KEY}"}
                )
                await client.post(
                    "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {token}"}
                )
                await client.post(
                    "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {API_KEY}x"}
                )
                await client.get(
                    "/graphql",
                    params={
                        "query": "query Q($s: String!) { conversation(sid: $s) { sid } }",
                        "variables": json.dumps({"s": secret_variable}),
                    },
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                await client.post("/webhooks/twilio", data=form, headers=sign(g.settings.auth_token, webhook_url, form))
            async with websockets.connect(g.ws_url, subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL]) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
            await asyncio.sleep(0.1)
        output = text.getvalue()
        for secret in (API_KEY, token, token.split(".")[2], KEY_SECRET, g.settings.auth_token, secret_variable):
            assert secret not in output
        by_path = [(e["method"], e["path"], e["status"], e["caller"]) for e in entries]
        assert by_path == [
            ("POST", "/graphql", 200, "internal"),
            ("POST", "/graphql", 200, "participant"),
            ("POST", "/graphql", 401, None),
            ("GET", "/graphql", 200, "internal"),
            ("POST", "/webhooks/twilio", 200, None),
            ("WEBSOCKET", "/graphql", 101, "participant"),
        ]


async def test_webhook_lines_name_the_event_and_its_outcome():
    async with on_emulator() as g:
        account = g.settings.twilio_account_sid
        url = g.base_url + "/webhooks/twilio"
        form = {
            "EventType": "onDeliveryUpdated",
            "AccountSid": account,
            "ConversationSid": a_conversation(g.emulator),
            "MessageSid": "IM" + "1" * 32,
            "DeliveryReceiptSid": "DY" + "2" * 32,
            "ParticipantSid": "MB" + "3" * 32,
            "Status": "delivered",
            "DateCreated": "2026-01-01T00:00:00Z",
            "DateUpdated": "2026-01-01T00:00:05Z",
        }
        with captured() as (entries, _):
            async with httpx.AsyncClient(base_url=g.base_url) as client:
                accepted = await client.post(
                    "/webhooks/twilio", data=form, headers=sign(g.settings.auth_token, url, form)
                )
                forged = await client.post("/webhooks/twilio", data=form, headers={"X-Twilio-Signature": "forged"})
            await asyncio.sleep(0.05)
        assert (accepted.status_code, forged.status_code) == (200, 403)
        assert [(e["event_type"], e["outcome"], e["status"]) for e in entries] == [
            ("onDeliveryUpdated", "accepted", 200),
            ("onDeliveryUpdated", "rejected", 403),
        ]


async def test_a_websocket_is_logged_once_when_it_closes_with_its_operations():
    async with on_emulator() as g:
        subscription = "subscription Ticks($c: String!) { deliveryUpdates(conversationSid: $c) { cursor } }"
        with captured() as (entries, _):
            async with websockets.connect(g.ws_url, subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL]) as ws:
                await ws.send(
                    json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {API_KEY}"}})
                )
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                payload = {"query": subscription, "variables": {"c": a_conversation(g.emulator)}}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                await asyncio.sleep(0.2)
                assert entries == []  # nothing until the socket closes
                await ws.close(code=1000)
            await asyncio.sleep(0.2)
        (entry,) = entries
        assert (entry["method"], entry["status"], entry["close_code"], entry["caller"]) == (
            "WEBSOCKET",
            101,
            1000,
            "internal",
        )
        assert (entry["operation"], entry["operation_type"], entry["operations"]) == ("Ticks", "subscription", 1)


async def test_a_filtered_out_level_costs_no_record_and_no_line():
    seen: list[object] = []

    async def app(scope, receive, send):
        seen.append(request_stats.current())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    logger = logging.getLogger("tests.request_log.quiet")
    logger.setLevel(logging.WARNING)
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record)  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=RequestLogMiddleware(app, logger=logger))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/x")).status_code == 204
        assert seen == [None]  # no per-request record was opened and nothing was logged
        logger.setLevel(logging.INFO)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/x?token=abc")
        assert isinstance(seen[1], request_stats.RequestStats) and isinstance(seen[2], logging.LogRecord)
        assert seen[2].fields["path"] == "/x"  # type: ignore[attr-defined]
    finally:
        logger.removeHandler(handler)
