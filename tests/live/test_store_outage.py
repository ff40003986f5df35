"""The ledger's PostgreSQL goes away mid-run (every connection cut, new ones refused), then comes back: webhooks
answer 503 meanwhile (nothing acknowledged that was not committed), readiness says why, and the gateway recovers
by itself: what it acknowledged is applied and published in order, Twilio's retries are accepted.

The outage is a TCP proxy (tests/tcp_proxy.py) in front of the shared server, cut and refusing for a while;
PostgreSQL itself is never touched.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from delivery_gateway.emulator.config import DEFAULT_AUTH_TOKEN
from delivery_gateway.kernel.settings import Settings
from tests.live.harness import TransportWsClient, serve_gateway
from tests.live.storm import storm_state
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres
QUERY = "subscription($c: String!, $a: String) { deliveryUpdates(conversationSid: $c, after: $a) { cursor } }"


async def eventually(check, attempts: int = 200, pause: float = 0.05):
    for _ in range(attempts):
        if result := await check():
            return result
        await asyncio.sleep(pause)
    raise AssertionError("condition not reached")


async def test_postgres_outage_gives_503_then_recovers_without_losing_or_reordering(postgres_url):
    target = make_url(postgres_url)
    assert target.host == "127.0.0.1" and target.port, "the proxy forwards to loopback only"
    state, events = await storm_state(20, seed=4)
    conversation = next(iter(state.store.conversations))
    mine = [e for e in events if e.get("ConversationSid") == conversation and e["EventType"] == "onDeliveryUpdated"]
    first, rest = mine[: len(mine) // 2], mine[len(mine) // 2 :]
    validator = RequestValidator(DEFAULT_AUTH_TOKEN)
    async with TcpProxy.serving(target.port) as proxy:
        proxied = postgres_url.replace(f"127.0.0.1:{target.port}", f"127.0.0.1:{proxy.port}", 1)
        settings = Settings(_env_file=None, TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN, DELIVERY_GATEWAY_STORE_URL=proxied)
        async with serve_gateway(settings) as gateway, httpx.AsyncClient(base_url=gateway.base_url) as http:

            async def post(form: dict[str, str]) -> int:
                headers = {"X-Twilio-Signature": validator.compute_signature(gateway.webhook_url, form)}
                return (await http.post("/webhooks/twilio", data=form, headers=headers)).status_code

            async with TransportWsClient.connect(gateway.ws_url) as client:
                await client.subscribe(QUERY, {"c": conversation})
                await asyncio.sleep(0.2)
                assert [await post(form) for form in first] == [200] * len(first)
                await gateway.ingest.drain()

                proxy.refuse()  # PostgreSQL goes down: open connections reset, new ones refused
                proxy.drop()
                assert await post(rest[0]) == 503  # not committed, so not acknowledged: Twilio retries
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["ledger"].startswith("unavailable")

                proxy.accept()  # back
                await eventually(lambda: _ok(http.get("/readyz")))
                statuses = [await eventually(lambda form=form: _accepted(post(form))) for form in rest]
                assert statuses == [200] * len(rest)
                await gateway.ingest.drain()
                ledger = gateway.ledger
                changes = await ledger.changes_after(conversation, 0, limit=10_000)
                expected = [c.seq for c in changes if c.kind.value == "delivery"]
                got = [
                    int((await client.next(wait=10))["payload"]["data"]["deliveryUpdates"]["cursor"]) for _ in expected
                ]
                assert got == expected
                assert await ledger.inbox_pending() == []


async def _ok(request) -> bool:
    return (await request).status_code == 200


async def _accepted(request) -> int | None:
    status = await request
    return status if status == 200 else None
