"""The assembled app (`create_app`): its endpoints, its middleware order and its wiring, driven over real HTTP.

Never reaches into components: everything is observed from outside, as an operator or a client would.
"""

from __future__ import annotations

import httpx
from twilio.request_validator import RequestValidator

from tests.app_support import free_port, gateway_on_emulator

CHAT_SCREEN = """
query ChatScreen($sid: String!) {
  conversation(sid: $sid) {
    friendlyName
    participants { sid identity channel address lastReadMessageIndex }
    messages(last: 50) {
      edges { node {
        sid index ticks
        delivery { total sent delivered read failed undelivered }
        receipts { sid status errorCode error { name } participant { sid address } }
        recipients { participant { sid } status source }
      } }
    }
  }
}
"""


def upstream_calls(metrics_text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("delivery_gateway_upstream_requests_total{")
    )


def busiest_conversation(emulator) -> str:
    store = emulator.state.store
    return max(store.messages, key=lambda sid: len(store.messages[sid]))


async def test_health_readiness_and_metrics_endpoints():
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True) as gw, httpx.AsyncClient(base_url=gw.base_url) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        ready = await c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"started": "ok", "ledger": "ok", "pubsub": "ok", "cache": "ok"}
        metrics = await c.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "delivery_gateway_upstream_requests_total" in metrics.text
        assert "delivery_gateway_cache_requests_total" in metrics.text


async def test_chat_screen_costs_exactly_its_upstream_calls_cold_and_none_warm():
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True) as gw, httpx.AsyncClient(base_url=gw.base_url) as c:
        sid = busiest_conversation(gw.emulator)
        store = gw.emulator.state.store
        latest = sorted(store.messages[sid].values(), key=lambda m: m.index)[-50:]
        with_receipts = sum(1 for m in latest if store.receipts_of(m.sid))
        gw.emulator.state.requests.reset()

        before = upstream_calls((await c.get("/metrics")).text)
        cold = await c.post("/graphql", json={"query": CHAT_SCREEN, "variables": {"sid": sid}})
        assert cold.status_code == 200 and "errors" not in cold.json(), cold.text
        after_cold = upstream_calls((await c.get("/metrics")).text)
        assert after_cold - before == 3 + with_receipts
        assert gw.emulator.state.requests.count() == 3 + with_receipts

        warm = await c.post("/graphql", json={"query": CHAT_SCREEN, "variables": {"sid": sid}})
        assert warm.json() == cold.json()
        assert upstream_calls((await c.get("/metrics")).text) == after_cold
        assert 'result="hit"' in (await c.get("/metrics")).text


async def test_graphql_needs_credentials_outside_demo_mode_and_accepts_an_api_key():
    async with (
        gateway_on_emulator(DELIVERY_GATEWAY_API_KEYS="internal-key-1") as gw,
        httpx.AsyncClient(base_url=gw.base_url) as c,
    ):
        query = {"query": "{ conversations(first: 1) { edges { node { sid } } } }"}
        anonymous = await c.post("/graphql", json=query)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        wrong = await c.post("/graphql", json=query, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await c.post("/graphql", json=query, headers={"Authorization": "Bearer internal-key-1"})
        assert ok.status_code == 200 and ok.json()["data"]["conversations"]["edges"]
        # Health endpoints stay open to probes.
        assert (await c.get("/healthz")).status_code == 200


async def test_webhook_route_checks_signatures_against_the_public_url():
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True) as gw, httpx.AsyncClient(base_url=gw.base_url) as c:
        store = gw.emulator.state.store
        sid = busiest_conversation(gw.emulator)
        message = max(store.messages[sid].values(), key=lambda m: m.index)
        params = {
            "EventType": "onMessageUpdated",
            "ConversationSid": sid,
            "MessageSid": message.sid,
            "AccountSid": store.account_sid,
            "Index": str(message.index),
            "Body": "edited",
        }
        url = gw.base_url + "/webhooks/twilio"
        unsigned = await c.post("/webhooks/twilio", data=params)
        assert unsigned.status_code == 403
        forged = await c.post("/webhooks/twilio", data=params, headers={"X-Twilio-Signature": "AAAA"})
        assert forged.status_code == 403
        signature = RequestValidator(gw.settings.auth_token).compute_signature(url, params)
        signed = await c.post("/webhooks/twilio", data=params, headers={"X-Twilio-Signature": signature})
        assert signed.status_code == 200, signed.text


async def test_an_unreachable_cache_degrades_readiness_but_not_service():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = {"DELIVERY_GATEWAY_DEMO_MODE": True, "DELIVERY_GATEWAY_CACHE_URL": dead}
    async with gateway_on_emulator(**settings) as gw, httpx.AsyncClient(base_url=gw.base_url) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["cache"].startswith("degraded")
        answer = await c.post("/graphql", json={"query": "{ conversations(first: 1) { edges { node { sid } } } }"})
        assert answer.status_code == 200 and answer.json()["data"]["conversations"]["edges"]


HISTORY = """
query($c: String!, $m: String!) {
  message(conversationSid: $c, sid: $m) {
    ticks
    receipts { sid status errorCode history { status errorCode changedStatus source } }
  }
}
"""


async def test_receipt_history_records_every_status_the_simulator_sent_through_signed_webhooks():
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True) as gw, httpx.AsyncClient(base_url=gw.base_url) as c:
        state = gw.emulator.state
        store = state.store

        def external(members) -> int:
            return sum(p.channel != "chat" for p in members.values())

        conversation_sid = next(
            sid
            for sid, members in store.participants.items()
            if any(p.channel == "chat" for p in members.values()) and external(members) >= 2
        )
        author = next(p.identity for p in store.participants[conversation_sid].values() if p.channel == "chat")
        message, receipts = store.create_message(conversation_sid, author=author, body="history please")
        await state.simulator.idle()
        await state.webhooks.drain()
        await gw.gateway.ingest.drain()

        variables = {"c": conversation_sid, "m": message.sid}
        answer = await c.post("/graphql", json={"query": HISTORY, "variables": variables})
        body = answer.json()
        assert "errors" not in body, body
        got = {r["sid"]: r for r in body["data"]["message"]["receipts"]}
        assert set(got) == {r.sid for r in receipts}
        order = ["sent", "delivered", "read"]
        for receipt in receipts:
            entry = got[receipt.sid]
            assert entry["status"] == receipt.status.upper()
            statuses = [h["status"].lower() for h in entry["history"] if h["changedStatus"]]
            assert statuses, entry
            assert statuses[-1] == receipt.status  # the ledger ends where Twilio ends
            moving = [s for s in statuses if s in order]
            assert moving == sorted(moving, key=order.index)  # never backwards
