"""Storm helpers: capture the webhooks an emulator would post, then replay them duplicated and shuffled.

Test helpers only; never used by the gateway.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import aiohttp

from delivery_gateway.emulator import EmulatorConfig
from delivery_gateway.emulator.app import EmulatorState
from tests.live.harness import sign


def capture_webhooks(state: EmulatorState) -> list[dict[str, str]]:
    """Every webhook the emulator emits from now on lands in the returned list instead of being posted."""
    captured: list[dict[str, str]] = []

    def emit(service_sid, event_type, params):
        captured.append({"EventType": event_type, **params})
        return True

    state.webhooks.emit = emit  # type: ignore[method-assign]
    return captured


async def storm_state(
    messages: int, *, seed: int = 5, other_service: bool = False
) -> tuple[EmulatorState, list[dict[str, str]]]:
    """An emulator state after `messages` messages ran their whole delivery lives, and their webhooks: two
    conversations of the default service (and, with `other_service`, a third in a service of its own)."""
    config = EmulatorConfig(seed=seed, simulate=False, failure_rate=0.2, chat_read_rate=0.7)
    state = EmulatorState(config)
    events = capture_webhooks(state)
    store = state.store
    conversations = []
    services = [None, None, store.create_service("Another service").sid] if other_service else [None, None]
    for n, service in enumerate(services):
        conversation = store.create_conversation(service_sid=service, friendly_name=f"storm {n}")
        store.create_participant(conversation.sid, identity="agent")
        store.create_participant(conversation.sid, identity="reader")
        store.create_participant(conversation.sid, address=f"+1555000{n}001")
        store.create_participant(conversation.sid, address=f"+1555000{n}002")
        store.create_participant(conversation.sid, address=f"whatsapp:+1555000{n}003")
        conversations.append(conversation)
    for i in range(messages):
        store.create_message(conversations[i % len(conversations)].sid, author="agent", body=f"m{i}")
    await state.simulator.advance_all(flush_webhooks=False)
    return state, events


def duplicated_and_shuffled(events: Sequence[dict[str, str]], *, rate: float = 0.3, seed: int = 1):
    rng = random.Random(seed)
    out = list(events) + [e for e in events if rng.random() < rate]
    rng.shuffle(out)
    return out


async def post_all(
    urls: Sequence[str],
    auth_token: str,
    events: Sequence[dict[str, str]],
    *,
    concurrency: int = 32,
    statuses: list[int] | None = None,
) -> list[int]:
    """POST every event (round-robin over `urls`), signed; each HTTP status (-1: no answer), in order."""
    if statuses is None:
        statuses = []
    statuses[:] = [0] * len(events)  # readable while posting, to watch progress
    pending = iter(range(len(events)))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in pending:
            url = urls[i % len(urls)]
            try:
                headers = sign(auth_token, url, events[i])
                async with session.post(url, data=events[i], headers=headers) as response:
                    await response.read()
                    statuses[i] = response.status
            except (aiohttp.ClientError, OSError, TimeoutError):
                statuses[i] = -1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return statuses
