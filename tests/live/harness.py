"""The live tests' gateway: app.py's `create_app` served on an ephemeral port (or run in-process), plus a
graphql-transport-ws client and webhook signing.

Test helper only: never imported by the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import websockets
from starlette.applications import Starlette
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from twilio.request_validator import RequestValidator

from delivery_gateway.app import create_app
from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.kernel.sids import MESSAGE, RECEIPT, new_sid
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.webhooks import WEBHOOK_PATH, WebhookIngest
from tests.app_support import NO_UPSTREAM, running_app, serve_app


@dataclass
class Gateway:
    """One served gateway (app.py's `create_app`, as deployed) and handles on its parts for assertions."""

    app: Starlette
    base_url: str = ""

    @property
    def services(self) -> GatewayServices:
        return self.app.state.gateway.services

    @property
    def ingest(self) -> WebhookIngest:
        return self.app.state.gateway.ingest

    @property
    def ledger(self):
        return self.services.ledger

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/graphql"


def demo(settings: Settings) -> Settings:
    """The live suite tests delivery, not auth (tests/security does): its callers need no credentials."""
    return settings.model_copy(update={"demo_mode": True})


@contextlib.asynccontextmanager
async def serve_gateway(settings: Settings, upstream: Any = NO_UPSTREAM) -> AsyncIterator[Gateway]:
    """`create_app(settings)` served by uvicorn on an ephemeral port. `upstream=None`: the real UpstreamClient."""
    app = create_app(demo(settings), upstream=upstream)
    async with serve_app(app, websocket_compression=settings.websocket_compression) as base_url:
        yield Gateway(app, base_url)


@contextlib.asynccontextmanager
async def ingest_app(settings: Settings, upstream: Any = NO_UPSTREAM) -> AsyncIterator[Gateway]:
    """`create_app(settings)` in-process (lifespan run by hand), for httpx.ASGITransport clients."""
    async with running_app(demo(settings), upstream) as app:
        yield Gateway(app)


def sign(auth_token: str, url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, params)}


class TransportWsClient:
    """A minimal graphql-transport-ws client over `websockets` (the protocol Apollo and urql speak)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self._ids = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, payload: dict | None = None, *, close_timeout: float = 10.0, compression: str | None = "deflate"
    ) -> AsyncIterator[TransportWsClient]:
        """`close_timeout`: how long leaving waits for the server's close frame (small: a client that just drops).
        `compression`: what the client offers (websockets' default, permessage-deflate; None: nothing)."""
        async with websockets.connect(
            url, subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL], close_timeout=close_timeout, compression=compression
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack["type"] == "connection_ack", ack
            yield cls(ws)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        op_id = str(self._ids)
        payload = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        return op_id

    async def next(self, wait: float = 5.0) -> dict[str, Any]:
        """The next message other than a ping (answered)."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def complete(self, op_id: str) -> None:
        await self.ws.send(json.dumps({"id": op_id, "type": "complete"}))

    async def collect(self, out: list[Any], stop: asyncio.Event, convert: Callable[[dict[str, Any]], Any]) -> None:
        """`convert(message)` of each message into `out` until `stop` is set and nothing more arrives for a second."""
        while True:
            try:
                out.append(convert(await self.next(wait=1.0)))
            except TimeoutError:
                if stop.is_set():
                    return


async def apply_delivery(gateway: Any, conversation_sid: str) -> None:
    """A new receipt's DELIVERED change for the conversation, recorded and applied as a webhook's would be (through
    the inbox and the processor: ledger, cache, pub/sub), without Twilio or a signature."""
    event = DeliveryEvent(
        conversation_sid=conversation_sid,
        message_sid=new_sid(MESSAGE),
        receipt_sid=new_sid(RECEIPT),
        status=DeliveryStatus.DELIVERED,
        date_updated=datetime.now(UTC).isoformat(),
    )
    entry = await gateway.services.ledger.inbox_add("{}")
    await gateway.ingest.processor.process(entry, event)
