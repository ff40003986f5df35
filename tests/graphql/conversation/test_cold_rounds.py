"""The cold chat screen waits for Twilio in two dependent rounds: the conversation with its participants and its
latest messages page (the SID is all they need), then every Receipts list at once, within the default upstream
concurrency. Through the assembled app (`create_app`), with exact call counts.

Never opens a socket to anything but loopback: the first test drives an in-process upstream that answers after a
delay and records when each call ran; the second the emulator, with its latency knob, over real HTTP (rounds are
counted from its requests in flight, not timed: the in-process emulator's own work varies with the machine's load).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.cold import count_waves
from delivery_gateway.kernel.settings import Settings
from tests.app_support import gateway_on_emulator, running_app
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import CHAT_SCREEN, build_chat

LATENCY = 0.05  # seconds per upstream call


class SlowTwilio(FakeConversations):
    """Every read answers after LATENCY; `timeline` holds (start, end) of each call, in loop time."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline: list[tuple[float, float]] = []

    async def _slow(self, call: Any) -> Any:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(LATENCY)
        try:
            return await call
        finally:
            self.timeline.append((started, loop.time()))

    async def fetch_conversation(self, sid, *, service_sid=None):
        return await self._slow(super().fetch_conversation(sid, service_sid=service_sid))

    async def list_participants(self, conversation_sid, *, service_sid=None):
        return await self._slow(super().list_participants(conversation_sid, service_sid=service_sid))

    async def list_messages(self, conversation_sid, **kwargs):
        return await self._slow(super().list_messages(conversation_sid, **kwargs))

    async def list_receipts(self, conversation_sid, message_sid, *, service_sid=None):
        return await self._slow(super().list_receipts(conversation_sid, message_sid, service_sid=service_sid))


async def test_a_cold_chat_screen_is_two_rounds_of_upstream_calls():
    fake = SlowTwilio()
    conv, *_ = build_chat(fake)
    settings = Settings(_env_file=None, DELIVERY_GATEWAY_API_KEYS="rounds-key")
    async with running_app(settings, fake) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.post(
                "/graphql",
                json={"query": CHAT_SCREEN, "variables": {"sid": conv.record.sid}},
                headers={"authorization": "Bearer rounds-key"},
            )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    with_receipts = sum(1 for e in body["data"]["conversation"]["messages"]["edges"] if e["node"]["delivery"])
    assert dict(fake.calls) == {
        "fetch_conversation": 1,
        "list_participants": 1,
        "list_messages": 1,
        "list_receipts": with_receipts,
    }
    starts = sorted(start for start, _ in fake.timeline)
    first_round, second_round = starts[:3], starts[3:]
    assert max(first_round) - min(first_round) < LATENCY / 2  # conversation, participants, page: together
    assert min(second_round) - min(first_round) >= LATENCY  # receipts wait for the page (and participants)
    assert max(second_round) - min(second_round) < LATENCY / 2  # ... then all at once
    assert count_waves([[s, e] for s, e in fake.timeline], gap=LATENCY / 4) == 2


async def test_the_default_upstream_concurrency_takes_a_whole_receipts_wave_from_the_emulator():
    latency = 0.5
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True, emulator={"latency": latency}) as gw:
        store = gw.emulator.state.store
        sid = max(store.messages, key=lambda s: len(store.messages[s]))
        latest = sorted(store.messages[sid].values(), key=lambda m: m.index)[-50:]
        with_receipts = sum(1 for m in latest if store.receipts_of(m.sid))
        assert with_receipts > 32  # more than the former default of 32 in flight
        requests = gw.emulator.state.requests
        requests.reset()
        rounds = 0

        async def watch() -> None:
            """Count the times Twilio goes from idle to busy: one per dependent round (a round split by the
            concurrency limit never goes idle in between). A starved watcher can only miss an idle moment."""
            nonlocal rounds
            busy = False
            while True:
                if requests.in_flight and not busy:
                    rounds += 1
                busy = requests.in_flight > 0
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        try:
            async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as client:
                started = time.perf_counter()
                response = await client.post("/graphql", json={"query": CHAT_SCREEN, "variables": {"sid": sid}})
                elapsed = time.perf_counter() - started
        finally:
            watcher.cancel()
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        assert requests.count() == 3 + with_receipts
        assert requests.max_in_flight == with_receipts  # the receipts wave, whole
        assert 1 <= rounds <= 2 and elapsed >= 2 * latency  # two rounds of Twilio latency, not three
