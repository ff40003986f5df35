"""A Python client of delivery-gateway with `gql`: the chat screen over HTTP, and delivery updates over WebSocket that
survive disconnects by storing each event's cursor and resuming from it.

    pip install "gql[aiohttp,websockets]"
    python delivery_client.py --url http://127.0.0.1:8000 --conversation CH… [--token …] [--cursor-file cursor.txt]

The operations are the .graphql files of docs/operations/. Never logs the token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.websockets import WebsocketsTransport

OPERATIONS = Path(__file__).resolve().parents[2] / "operations"


def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text()


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def chat_screen(base_url: str, conversation_sid: str, *, token: str | None = None) -> dict[str, Any]:
    """The chat screen of one conversation (docs/operations/chat-screen.graphql) over HTTP."""
    transport = AIOHTTPTransport(url=f"{base_url}/graphql", headers=_auth(token))
    async with Client(transport=transport) as session:
        request = GraphQLRequest(operation("chat-screen"), variable_values={"sid": conversation_sid})
        result = await session.execute(request)
    return result["conversation"]


class CursorFile:
    """Where the last cursor is kept between runs: written after each handled event, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            return self.path.read_text().strip() or None
        return None

    def save(self, cursor: str) -> None:
        partial = self.path.with_suffix(self.path.suffix + ".partial")
        partial.write_text(cursor)
        os.replace(partial, self.path)


async def follow_delivery_updates(
    base_url: str,
    conversation_sid: str,
    on_event: Callable[[dict[str, Any]], Awaitable[None] | None],
    cursors: CursorFile,
    *,
    token: str | None = None,
    retry_delay: float = 1.0,
    max_retry_delay: float = 30.0,
    on_reconnect: Callable[[str | None], None] | None = None,
) -> None:
    """Calls `on_event` for every delivery update, forever. The cursor is stored only after `on_event` returns, so an
    event is handled at least once even if the process dies; after a disconnect the subscription resumes from the
    stored cursor, so nothing is missed and nothing handled is sent again."""
    ws_url = base_url.replace("http", "ws", 1) + "/graphql"
    delay = retry_delay
    first = True
    while True:
        after = cursors.load()
        if not first and on_reconnect is not None:
            on_reconnect(after)
        first = False
        transport = WebsocketsTransport(
            url=ws_url,
            init_payload=_auth(token),  # the gateway reads a WebSocket's credentials from connection_init
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            ping_interval=10,  # notice a dead connection within ~20 s
            pong_timeout=10,
        )
        try:
            async with Client(transport=transport) as session:
                request = GraphQLRequest(
                    operation("delivery-updates"), variable_values={"sid": conversation_sid, "after": after}
                )
                async for result in session.subscribe(request):
                    update = result["deliveryUpdates"]
                    handled = on_event(update)
                    if asyncio.iscoroutine(handled):
                        await handled
                    cursors.save(update["cursor"])
                    delay = retry_delay
        except TransportQueryError:
            raise  # the gateway refused the operation (FORBIDDEN, CURSOR_EXPIRED...): retrying will not help
        except (TransportError, OSError, TimeoutError):
            pass  # the connection failed or dropped: resume from the stored cursor after a pause
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_retry_delay)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway's base URL")
    parser.add_argument("--conversation", required=True, help="a conversation SID (CH…)")
    parser.add_argument("--token", default=os.environ.get("DELIVERY_GATEWAY_TOKEN"), help="API key or Access Token")
    parser.add_argument("--cursor-file", type=Path, default=Path("delivery-cursor.txt"))
    args = parser.parse_args()

    conversation = await chat_screen(args.url, args.conversation, token=args.token)
    for edge in conversation["messages"]["edges"]:
        message = edge["node"]
        print(f"#{message['index']:<4} {message['ticks'] or '':<9} {message['author']}: {message['body']}")

    def show(update: dict[str, Any]) -> None:
        print(json.dumps(update, separators=(",", ":")), flush=True)

    await follow_delivery_updates(
        args.url,
        args.conversation,
        show,
        CursorFile(args.cursor_file),
        token=args.token,
        on_reconnect=lambda cursor: print(f"reconnecting, resuming after cursor {cursor}", flush=True),
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
