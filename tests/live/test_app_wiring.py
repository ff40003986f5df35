"""The real app (`create_app`): auth'd graphql-transport-ws subscriber receives the emulator's webhooks end to end.

Drives the app exactly as deployed; never replaces any of app.py's wiring.
"""

from __future__ import annotations

import asyncio

import httpx

from delivery_gateway.app import create_app
from delivery_gateway.webhooks.install import WEBHOOK_FILTERS
from tests.app_support import serve_app
from tests.live.harness import TransportWsClient
from tests.live.test_end_to_end import DELIVERY_UPDATES, conversation_with_recipients, emulator_config, gateway_settings

KEY = "live-test-key-0123456789"


async def test_create_app_end_to_end(tmp_path):
    from delivery_gateway.emulator import serve_emulator

    async with serve_emulator(emulator_config()) as emulator:
        settings = gateway_settings(emulator, tmp_path, DELIVERY_GATEWAY_API_KEYS=KEY)
        async with serve_app(create_app(settings)) as base:
            emulator.state.set_webhook(post_webhook_url=base + "/webhooks/twilio", filters=WEBHOOK_FILTERS)
            conversation = conversation_with_recipients(emulator)
            ws_url = base.replace("http", "ws", 1) + "/graphql"
            async with TransportWsClient.connect(ws_url, {"Authorization": f"Bearer {KEY}"}) as client:
                await client.subscribe(DELIVERY_UPDATES, {"c": conversation.sid})
                await asyncio.sleep(0.2)
                emulator.state.store.create_message(conversation.sid, author="agent", body="wired")
                first = await client.next(wait=10)
                assert first["type"] == "next", first
                update = first["payload"]["data"]["deliveryUpdates"]
                assert update["receipt"]["status"] == "SENT" and update["previousStatus"] is None
            async with httpx.AsyncClient(base_url=base) as http:
                unsigned = await http.post("/webhooks/twilio", data={"EventType": "onDeliveryUpdated"})
                assert unsigned.status_code == 403


async def test_create_app_serves_subscriptions_over_graphql_sse(tmp_path):
    from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL

    from delivery_gateway.emulator import serve_emulator

    async with serve_emulator(emulator_config()) as emulator:
        settings = gateway_settings(emulator, tmp_path, DELIVERY_GATEWAY_API_KEYS=KEY)
        app = create_app(settings)
        assert GRAPHQL_SSE_PROTOCOL in app.state.gateway.graphql.protocols
        await _sse_round_trip(emulator, app)


async def _sse_round_trip(emulator, app) -> None:
    from tests.live.test_end_to_end import sse_events

    async with serve_app(app) as base:
        emulator.state.set_webhook(post_webhook_url=base + "/webhooks/twilio", filters=WEBHOOK_FILTERS)
        conversation = conversation_with_recipients(emulator)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
            task = asyncio.create_task(sse_events(http, DELIVERY_UPDATES, {"c": conversation.sid}, 1))
            await asyncio.sleep(0.3)
            emulator.state.store.create_message(conversation.sid, author="agent", body="sse")
            (event,) = await asyncio.wait_for(task, 10)
    assert event["data"]["deliveryUpdates"]["receipt"]["status"] == "SENT"
