"""The chat screen every HTTP row measures: README's ChatScreen query, its request body, and reads of /metrics.

Never talks to anything but the loopback gateway and emulator processes the bench started.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import aiohttp

from bench.gateway import API_KEY

CONVERSATION = "order-1042"  # the seeded 64-message conversation with chat, SMS and WhatsApp participants
OPERATION = "ChatScreen"


def _readme_chat_screen() -> str:
    """README.md's ChatScreen example, read from README itself so the bench always measures what README shows."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for block in re.findall(r"```graphql\n(.*?)```", readme, flags=re.S):
        if block.startswith(f"query {OPERATION}("):
            return "\n" + block
    raise RuntimeError(f"README.md has no `query {OPERATION}(` example")


# README.md's example query (50 messages, ~54 KB response on the seeded conversation).
CHAT_SCREEN_QUERY = _readme_chat_screen()

UPSTREAM_METRIC = "delivery_gateway_upstream_requests_total"


def chat_screen_query(operation: str = OPERATION) -> str:
    """The query under another operation name: a different document, so no response cache can answer it."""
    return CHAT_SCREEN_QUERY.replace(f"query {OPERATION}(", f"query {operation}(", 1)


def request_body(conversation_sid: str, operation: str = OPERATION) -> bytes:
    return json.dumps(
        {"query": chat_screen_query(operation), "operationName": operation, "variables": {"sid": conversation_sid}}
    ).encode()


AUTH_HEADERS = {"authorization": f"Bearer {API_KEY}"}
JSON_HEADERS = {"content-type": "application/json", **AUTH_HEADERS}


async def metric_total(session: aiohttp.ClientSession, gateway_url: str, name: str, **labels: str) -> float:
    """Sum of one metric's samples on the gateway's /metrics (only samples carrying every given label value)."""
    async with session.get(gateway_url + "/metrics") as resp:
        text = await resp.text()
    total = 0.0
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(w in line for w in wanted):
                total += float(line.rsplit(" ", 1)[1])
    return total


async def upstream_calls(session: aiohttp.ClientSession, gateway_url: str) -> int:
    """Sum of the gateway's upstream-attempt counter."""
    return int(await metric_total(session, gateway_url, UPSTREAM_METRIC))


async def post_query(session: aiohttp.ClientSession, gateway_url: str, body: bytes) -> tuple[bytes, float]:
    """POST the chat screen; its bytes and wall time in ms. Raises on anything but a complete answer."""
    started = time.perf_counter()
    async with session.post(gateway_url + "/graphql", data=body, headers=JSON_HEADERS) as r:
        data = await r.read()
        status = r.status
    elapsed = (time.perf_counter() - started) * 1000
    payload = json.loads(data)
    if status != 200 or payload.get("errors") or not (payload.get("data") or {}).get("conversation"):
        raise RuntimeError(f"chat-screen query failed ({status}): {data[:300]!r}")
    return data, elapsed
