"""The ledger's PostgreSQL goes away mid-run (every connection cut, new ones refused), then comes back: webhooks
answer 503 meanwhile (nothing acknowledged that was not committed), readiness says why, and the gateway recovers
by itself: what it acknowledged is applied and published in order, Twilio's retries are accepted.

The outage is a TCP proxy in front of the shared server that this test cuts; PostgreSQL itself is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from delivery_gateway.emulator.config import DEFAULT_AUTH_TOKEN
from delivery_gateway.kernel.settings import Settings
from tests.live.harness import TransportWsClient, serve_gateway
from tests.live.storm import storm_state

pytestmark = pytest.mark.postgres
QUERY = "subscription($c: String!, $a: String) { deliveryUpdates(conversationSid: $c, after: $a) { cursor } }"


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the real server until `cut()`: then every connection is reset and new ones
    are refused (a server that went down), until `restore()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()  # same port


async def eventually(check, attempts: int = 200, pause: float = 0.05):
    for _ in range(attempts):
        if result := await check():
            return result
        await asyncio.sleep(pause)
    raise AssertionError("condition not reached")


async def test_postgres_outage_gives_503_then_recovers_without_losing_or_reordering(postgres_url):
    target = make_url(postgres_url)
    proxy = CuttableProxy(target.host, target.port)
    await proxy.start()
    proxied = postgres_url.replace(f"{target.host}:{target.port}", f"127.0.0.1:{proxy.port}", 1)
    state, events = await storm_state(20, seed=4)
    conversation = next(iter(state.store.conversations))
    mine = [e for e in events if e.get("ConversationSid") == conversation and e["EventType"] == "onDeliveryUpdated"]
    first, rest = mine[: len(mine) // 2], mine[len(mine) // 2 :]
    settings = Settings(_env_file=None, TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN, DELIVERY_GATEWAY_STORE_URL=proxied)
    validator = RequestValidator(DEFAULT_AUTH_TOKEN)
    try:
        async with serve_gateway(settings) as gateway, httpx.AsyncClient(base_url=gateway.base_url) as http:

            async def post(form: dict[str, str]) -> int:
                headers = {"X-Twilio-Signature": validator.compute_signature(gateway.webhook_url, form)}
                return (await http.post("/webhooks/twilio", data=form, headers=headers)).status_code

            async with TransportWsClient.connect(gateway.ws_url) as client:
                await client.subscribe(QUERY, {"c": conversation})
                await asyncio.sleep(0.2)
                assert [await post(form) for form in first] == [200] * len(first)
                await gateway.ingest.drain()

                await proxy.cut()
                assert await post(rest[0]) == 503  # not committed, so not acknowledged: Twilio retries
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["ledger"].startswith("unavailable")

                await proxy.restore()
                await eventually(lambda: _ok(http.get("/readyz")))
                assert [await eventually(lambda form=form: _accepted(post(form))) for form in rest] == [200] * len(rest)
                await gateway.ingest.drain()
                ledger = gateway.ledger
                expected = [
                    c.seq
                    for c in await ledger.changes_after(conversation, 0, limit=10_000)
                    if c.kind.value == "delivery"
                ]
                got = [
                    int((await client.next(wait=10))["payload"]["data"]["deliveryUpdates"]["cursor"]) for _ in expected
                ]
                assert got == expected
                assert await ledger.inbox_pending() == []
    finally:
        if proxy._server is not None:
            await proxy.cut()


async def _ok(request) -> bool:
    return (await request).status_code == 200


async def _accepted(request) -> int | None:
    status = await request
    return status if status == 200 else None
