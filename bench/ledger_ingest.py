"""Webhook ingest throughput of the ledger: `inbox_add_many` and `apply_many` by batch size, on SQLite and
PostgreSQL, and signed webhooks through the real app in-process (signature, form, inbox, batched apply).

Run by itself: `python -m bench.ledger_ingest [--events 20000] [--engine sqlite|postgresql|both]`.
The reference measured in the same run is one event per call (batch 1). Never asserts thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from twilio.request_validator import RequestValidator

from bench.ledger_report import events as delivery_events
from bench.ledger_store import fresh_store
from delivery_gateway.app import create_app
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import create_ledger

TOKEN = "bench-auth-token"
PUBLIC = "http://gateway.bench"


async def ledger_rates(engine: str, count: int) -> None:
    events = [e for batch in delivery_events(count, seed=7) for e in batch][:count]
    bodies = [f'{{"EventType":"onDeliveryUpdated","n":"{n}"}}' for n in range(count)]
    for batch in (1, 50, 200, 1000):
        n = min(count, 2000) if batch == 1 else count  # one by one is slow: fewer, same rate
        async with fresh_store(engine) as url:
            ledger = create_ledger(url)
            await ledger.start()
            try:
                started = time.perf_counter()
                for i in range(0, n, batch):
                    await ledger.inbox_add_many(bodies[i : i + batch])
                inbox = n / (time.perf_counter() - started)
                started = time.perf_counter()
                for i in range(0, n, batch):
                    await ledger.apply_many(events[i : i + batch])
                applied = n / (time.perf_counter() - started)
                started = time.perf_counter()
                ids = [entry_id for entry_id, _ in await ledger.inbox_pending(limit=n)]
                for i in range(0, n, batch):
                    await ledger.inbox_done_many(ids[i : i + batch])
                done = n / (time.perf_counter() - started)
            finally:
                await ledger.close()
        print(
            f"  [{engine}] batch {batch:5d}: inbox_add_many {inbox:8.0f}/s   apply_many {applied:7.0f} events/s"
            f"   inbox_done_many {done:8.0f}/s"
        )


def signed_forms(count: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    validator = RequestValidator(TOKEN)
    url = PUBLIC + "/webhooks/twilio"
    out = []
    for batch in delivery_events(count, seed=9):
        for e in batch:
            form = {
                "EventType": "onDeliveryUpdated",
                "AccountSid": "AC" + "0" * 32,
                "ChatServiceSid": e.service_sid,
                "ConversationSid": e.conversation_sid,
                "MessageSid": e.message_sid,
                "DeliveryReceiptSid": e.receipt_sid,
                "ParticipantSid": e.participant_sid,
                "ChannelMessageSid": e.channel_message_sid,
                "Status": e.status.value,
                "ErrorCode": str(e.error_code or 0),
                "DateCreated": e.date_updated,
                "DateUpdated": e.date_updated,
            }
            out.append((form, {"X-Twilio-Signature": validator.compute_signature(url, form)}))
    return out[:count]


async def webhook_rate(engine: str, count: int, concurrency: int = 64) -> None:
    forms = signed_forms(count)
    async with fresh_store(engine) as url:
        settings = Settings(
            _env_file=None,
            TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            TWILIO_AUTH_TOKEN=TOKEN,
            DELIVERY_GATEWAY_PUBLIC_URL=PUBLIC,
            DELIVERY_GATEWAY_STORE_URL=url,
            DELIVERY_GATEWAY_TWILIO_BASE_URL="http://127.0.0.1:9",  # never called
        )
        app = create_app(settings)
        gateway = app.state.gateway
        await gateway.start()
        try:
            pending = iter(forms)
            statuses: list[int] = []
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:

                async def worker() -> None:
                    for form, headers in pending:
                        response = await client.post("/webhooks/twilio", data=form, headers=headers)
                        statuses.append(response.status_code)

                started = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                acknowledged = time.perf_counter() - started
                await gateway.ingest.drain()
                processed = time.perf_counter() - started
            assert set(statuses) == {200}, set(statuses)
            assert await gateway.services.ledger.inbox_pending() == []
        finally:
            await gateway.close()
    print(
        f"  [{engine}] {count} signed webhooks in-process ({concurrency} concurrent, client cost included): "
        f"acknowledged {count / acknowledged:.0f}/s, processed (applied, published) {count / processed:.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    for engine in engines:
        asyncio.run(ledger_rates(engine, args.events))
    for engine in engines:
        asyncio.run(webhook_rate(engine, min(args.events, 10_000)))


if __name__ == "__main__":
    main()
