"""/demo in a real browser against a live gateway and emulator: ticks, recipients' errors and read horizons change on
screen without a reload while the emulator advances deliveries; after a dropped connection the page resumes from
its last cursor; outside demo mode it works with a pasted bearer token.

Drives only 127.0.0.1 servers started here; keeps a screenshot in test-artifacts/.
"""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.app_support import GatewayOnEmulator, gateway_on_emulator
from tests.tcp_proxy import TcpProxy

# Deterministic deliveries: nothing moves until the test calls advance_all(); nothing fails unless it says so.
KNOBS = {"simulate": False, "failure_rate": 0.0, "whatsapp_read_rate": 1.0, "chat_read_rate": 0.0}
SECOND = 1000  # Playwright timeouts are in milliseconds
MESSAGE_STATE = """query State($sid: String!) { conversation(sid: $sid) {
  participants { sid lastReadMessageIndex }
  messages(last: 50) { edges { node { sid ticks recipients { participant { sid } status error { code name } } } } }
} }"""


def order_conversation(env: GatewayOnEmulator) -> tuple[str, dict[str, str]]:
    """The seeded conversation with a chat agent, an SMS and a WhatsApp participant; its participants by name."""
    store = env.emulator.state.store
    conversation = next(c for c in store.conversations.values() if c.unique_name == "order-1042")
    people = {p.identity or p.address: p.sid for p in store.participants[conversation.sid].values()}
    return conversation.sid, people


async def fresh_state(env: GatewayOnEmulator, sid: str, headers: dict[str, str] | None = None) -> dict:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{env.base_url}/graphql", json={"query": MESSAGE_STATE, "variables": {"sid": sid}}, headers=headers or {}
        )
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]["conversation"]


async def assert_page_matches_a_fresh_query(page: Page, env: GatewayOnEmulator, sid: str, **kwargs) -> None:
    """What the page shows (fed by subscriptions) equals what a fresh query answers now."""
    state = await fresh_state(env, sid, **kwargs)
    for edge in state["messages"]["edges"]:
        node = edge["node"]
        bubble = page.locator(f'li.message[data-sid="{node["sid"]}"]')
        await expect(bubble).to_have_count(1)
        await expect(bubble).to_have_attribute("data-ticks", node["ticks"])
        for recipient in node["recipients"]:
            row = bubble.locator(f'li.recipient[data-participant="{recipient["participant"]["sid"]}"]')
            await expect(row).to_have_attribute("data-status", recipient["status"])
            if recipient["error"]:
                await expect(row.locator(".error")).to_contain_text(recipient["error"]["name"])


async def test_demo_page_shows_deliveries_live_and_resumes_after_a_dropped_connection(browser, artifacts):
    async with gateway_on_emulator(emulator=KNOBS, DELIVERY_GATEWAY_DEMO_MODE=True) as env:
        gateway_port = int(env.base_url.rsplit(":", 1)[1])
        async with TcpProxy.serving(gateway_port) as proxy:
            emulator = env.emulator.state
            sid, people = order_conversation(env)
            page = await browser.new_page()
            await page.goto(f"{proxy.url}/demo#{sid}")
            connection = page.locator("#connection")
            await expect(connection).to_have_attribute("data-state", "live", timeout=15 * SECOND)
            await expect(page.locator("li.message").first).to_be_visible(timeout=15 * SECOND)
            await expect(page.locator("#chat-header h1")).to_have_text("Order #1042 delivery")
            await page.evaluate("window.__loadedOnce = true")  # gone if the page reloads

            # A new message: both receipts start SENT, then the emulator delivers (SMS) and reads (WhatsApp).
            message, receipts = emulator.store.create_message(
                sid, author="agent.alice", body="Browser test: on the way"
            )
            bubble = page.locator(f'li.message[data-sid="{message.sid}"]')
            await expect(bubble).to_have_attribute("data-ticks", "SENT", timeout=15 * SECOND)
            await expect(bubble.locator(".body")).to_have_text("Browser test: on the way")
            assert await emulator.simulator.advance_all() == len(receipts) + 1  # SMS: delivered; WhatsApp: +read
            await expect(bubble).to_have_attribute("data-ticks", "DELIVERED", timeout=15 * SECOND)
            whatsapp = bubble.locator(f'li.recipient[data-participant="{people["whatsapp:+15551230002"]}"]')
            await expect(whatsapp).to_have_attribute("data-status", "READ")
            sms = bubble.locator(f'li.recipient[data-participant="{people["+15551230001"]}"]')
            await expect(sms).to_have_attribute("data-status", "DELIVERED")

            # The customer writes; the agent reads it: her read horizon moves on screen.
            emulator.config.chat_read_rate = 1.0
            incoming, _ = emulator.store.create_message(sid, author="whatsapp:+15551230002", body="Thanks!")
            await expect(page.locator(f'li.message[data-sid="{incoming.sid}"]')).to_be_visible(timeout=15 * SECOND)
            await emulator.simulator.advance_all()
            alice = page.locator(f'#participants li[data-participant="{people["agent.alice"]}"]')
            await expect(alice).to_have_attribute("data-horizon", str(incoming.index), timeout=15 * SECOND)
            await expect(alice).to_contain_text(f"read up to #{incoming.index}")
            emulator.config.chat_read_rate = 0.0

            # The network drops; while the page is away a message is sent and fails; then the network returns.
            last_seen = await page.locator("#events li.event-delivery").first.get_attribute("data-cursor")
            proxy.refuse()
            proxy.drop()
            await expect(connection).to_have_attribute("data-state", re.compile("reconnecting|connecting"))
            emulator.config.failure_rate = 1.0
            failed, receipts = emulator.store.create_message(sid, author="agent.alice", body="Sent while you were away")
            await emulator.simulator.advance_all()
            emulator.config.failure_rate = 0.0
            proxy.accept()
            await expect(connection).to_have_attribute("data-state", "live", timeout=20 * SECOND)
            assert await connection.get_attribute("data-resumed-after") == last_seen
            assert int(await connection.get_attribute("data-reconnects")) >= 1
            failed_bubble = page.locator(f'li.message[data-sid="{failed.sid}"]')
            await expect(failed_bubble).to_have_attribute("data-ticks", "FAILED", timeout=15 * SECOND)
            await expect(failed_bubble.locator(".recipient .error")).to_have_count(len(receipts))

            await assert_page_matches_a_fresh_query(page, env, sid)
            assert await page.evaluate("window.__loadedOnce === true"), "the page reloaded"
            await page.screenshot(path=str(artifacts / "demo-page.png"))
            assert browser.external == []
            # Only the outage's failed connections were logged (Chromium names a connection cut mid-handshake
            # ERR_SOCKET_NOT_CONNECTED or ERR_EMPTY_RESPONSE, one refused or reset ERR_CONNECTION_*).
            outage = (
                "WebSocket connection",
                "net::ERR_CONNECTION",
                "net::ERR_SOCKET_NOT_CONNECTED",
                "net::ERR_EMPTY_RESPONSE",
            )
            assert [p for p in browser.problems if not any(o in p for o in outage)] == []


async def test_demo_page_outside_demo_mode_works_with_a_pasted_bearer_token(browser, artifacts):
    key = "demo-page-test-key-0123456789"
    async with gateway_on_emulator(
        emulator=KNOBS, DELIVERY_GATEWAY_DEMO_PAGE=True, DELIVERY_GATEWAY_API_KEYS=key
    ) as env:
        sid, _ = order_conversation(env)
        page = await browser.new_page()
        await page.goto(f"{env.base_url}/demo#{sid}")
        await expect(page.locator("#token-form")).to_be_visible()
        await expect(page.locator("#notice")).to_contain_text("Paste a bearer token")
        await expect(page.locator("li.message")).to_have_count(0)

        await page.fill("#token", "not-the-key")
        await page.click("#token-form button")
        await expect(page.locator("#notice")).to_contain_text("UNAUTHENTICATED", timeout=10 * SECOND)

        await page.fill("#token", f"Bearer {key}")
        await page.click("#token-form button")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15 * SECOND)
        message, _ = env.emulator.state.store.create_message(sid, author="agent.alice", body="With a token")
        bubble = page.locator(f'li.message[data-sid="{message.sid}"]')
        await expect(bubble).to_have_attribute("data-ticks", "SENT", timeout=15 * SECOND)
        await env.emulator.state.simulator.advance_all()
        await expect(bubble).to_have_attribute("data-ticks", "DELIVERED", timeout=15 * SECOND)
        await assert_page_matches_a_fresh_query(page, env, sid, headers={"Authorization": f"Bearer {key}"})
        await page.screenshot(path=str(artifacts / "demo-page-token.png"))
        assert browser.external == []
        # the refused token's 401 is the only error the browser logged
        assert all("401" in problem for problem in browser.problems), browser.problems
