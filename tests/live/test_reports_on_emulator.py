"""deliveryReport and failedMessages answer for a storm whose outcome is known: the emulator delivers a few hundred
messages (failures, WhatsApp reads, webhooks duplicated, reordered and posted concurrently) to app.py's
`create_app`, and the GraphQL answers equal the counts derived from the emulator's final state — per status,
error code, channel and day, for the default service (left out) and another one (named), on SQLite and PostgreSQL.

Everything through HTTP as an internal service would call it (an API key); only 127.0.0.1 servers started here.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from delivery_gateway.emulator.store import CHAT
from delivery_gateway.webhooks.install import WEBHOOK_FILTERS
from tests.app_support import gateway_on_emulator

KEY = "reports-test-key"
KNOBS = {
    "seed_data": False,
    "failure_rate": 0.3,
    "whatsapp_read_rate": 0.6,
    "chat_read_rate": 0.5,
    "webhook_duplicate_rate": 0.2,
    "webhook_reorder_rate": 0.2,
    "webhook_concurrency": 4,
}
REPORT = """
query($since: DateTime!, $until: DateTime!, $by: [DeliveryReportDimension!], $service: String) {
  deliveryReport(since: $since, until: $until, groupBy: $by, serviceSid: $service) {
    serviceSid total rows { count status errorCode error { name retryable } channel day }
  }
}
"""
FAILED = """
query($since: DateTime!, $until: DateTime!, $after: String, $service: String) {
  failedMessages(since: $since, until: $until, first: 100, after: $after, serviceSid: $service) {
    edges { node {
      receiptSid messageSid conversationSid status errorCode failedAt error { name }
      conversation { sid } recipient { channel participant { sid address } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request) -> str:
    return "memory://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


class Outcome:
    """What the emulator's final state says the reports must answer, per service."""

    def __init__(self, store, service_sid: str) -> None:
        conversations = {sid for sid, c in store.conversations.items() if c.service_sid == service_sid}
        channel_of = {
            p.sid: p.channel for sid in conversations for p in store.participants[sid].values() if p.channel != CHAT
        }
        self.reached: Counter[tuple[str, int | None, str]] = Counter()
        self.failures: list[tuple[datetime, str, str, int | None, str]] = []
        for message_sid, receipts in store.receipts.items():
            for receipt in receipts.values():
                if receipt.conversation_sid not in conversations:
                    continue
                assert not receipt.planned, "the storm is not over"
                channel = channel_of[receipt.participant_sid]
                final = receipt.status in ("failed", "undelivered")
                for status in receipt.reached:  # every status its webhooks reported, once each
                    code = receipt.error_code if final and status == receipt.status else None
                    self.reached[status, code, channel] += 1
                if final:
                    # Twilio's DateUpdated, or DateCreated for a receipt created failed (never updated), to the second
                    at = (receipt.date_updated or receipt.date_created).replace(microsecond=0)
                    self.failures.append((at, receipt.sid, receipt.status, receipt.error_code, message_sid))
        self.failures.sort(key=lambda f: (f[0], f[1]), reverse=True)  # newest first, ties by receipt SID


async def test_reports_equal_the_outcome_of_a_delivery_storm(store_url):
    async with gateway_on_emulator(
        emulator=KNOBS, DELIVERY_GATEWAY_API_KEYS=KEY, DELIVERY_GATEWAY_STORE_URL=store_url
    ) as env:
        state = env.emulator.state
        store = state.store
        other = store.create_service("Support").sid
        state.set_webhook(
            post_webhook_url=f"{env.base_url}/webhooks/twilio", filters=WEBHOOK_FILTERS, service_sid=other
        )
        conversations = []
        for n, service in enumerate((None, None, None, other)):
            conversation = store.create_conversation(service_sid=service, friendly_name=f"storm {n}")
            store.create_participant(conversation.sid, identity="agent")
            store.create_participant(conversation.sid, identity="reader")
            store.create_participant(conversation.sid, address=f"+1555300{n}001")
            store.create_participant(conversation.sid, address=f"whatsapp:+1555300{n}002")
            conversations.append(conversation)
        for i in range(240):
            store.create_message(conversations[i % 4].sid, author="agent", body=f"m{i}")
        await state.simulator.idle()
        assert state.webhooks.abandoned == 0
        await env.gateway.ingest.drain()

        since = datetime.now(UTC) - timedelta(days=1)
        window = {"since": since.isoformat(), "until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
        async with httpx.AsyncClient(base_url=env.base_url, headers={"Authorization": f"Bearer {KEY}"}) as client:

            async def gql(query: str, variables: dict) -> dict:
                answer = await client.post("/graphql", json={"query": query, "variables": variables}, timeout=30)
                body = answer.json()
                assert answer.status_code == 200 and "errors" not in body, body
                return body["data"]

            for service, name in ((None, "default"), (other, "named")):
                outcome = Outcome(store, service or state.default_service_sid)
                assert sum(outcome.reached.values()) > 200 and len(outcome.failures) > 10, name
                variables = {**window, "service": service}

                by = ["STATUS", "ERROR_CODE", "CHANNEL"]
                report = (await gql(REPORT, {**variables, "by": by}))["deliveryReport"]
                assert report["serviceSid"] == (service or state.default_service_sid)
                got = Counter(
                    {(r["status"].lower(), r["errorCode"], r["channel"].lower()): r["count"] for r in report["rows"]}
                )
                assert got == outcome.reached, name
                assert report["total"] == sum(outcome.reached.values())
                assert all((r["error"] is None) == (r["errorCode"] is None) for r in report["rows"])

                days = (await gql(REPORT, {**variables, "by": ["DAY"]}))["deliveryReport"]["rows"]
                assert sum(r["count"] for r in days) == report["total"] and 1 <= len(days) <= 2

                items, after = [], None
                while True:
                    page = (await gql(FAILED, {**variables, "after": after}))["failedMessages"]
                    items += [edge["node"] for edge in page["edges"]]
                    if not page["pageInfo"]["hasNextPage"]:
                        break
                    after = page["pageInfo"]["endCursor"]
                assert [(n["receiptSid"], n["status"].lower(), n["errorCode"]) for n in items] == [
                    (sid, status, code) for _, sid, status, code, _ in outcome.failures
                ], name
                assert [datetime.fromisoformat(n["failedAt"]) for n in items] == [f[0] for f in outcome.failures]
                for node, failure in zip(items, outcome.failures, strict=True):
                    assert node["messageSid"] == failure[4] and node["conversation"] == {"sid": node["conversationSid"]}
                    assert node["error"]["name"] and node["recipient"]["participant"]["address"]
                    assert node["recipient"]["participant"]["address"].startswith("whatsapp:") == (
                        node["recipient"]["channel"] == "WHATSAPP"
                    )
