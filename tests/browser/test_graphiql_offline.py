"""GraphiQL at /graphql in a real browser with every non-loopback request blocked: it loads from the package's own
assets, runs a query, and runs a subscription over WebSocket (with the Headers tab's token outside demo mode).

Drives only 127.0.0.1 servers started here.
"""

from __future__ import annotations

import json

from playwright.async_api import Page, expect

from tests.app_support import gateway_on_emulator
from tests.browser.test_demo_page import KNOBS, SECOND, order_conversation

SUBSCRIPTION = """subscription Live($c: String!) {
  deliveryUpdates(conversationSid: $c) { cursor receipt { sid status } message { sid ticks } }
}"""
QUERY = "query Names { conversations(first: 10) { edges { node { uniqueName } } } }"


async def set_editor(page: Page, selector: str, text: str) -> None:
    """Types into one of GraphiQL's CodeMirror editors through its own API (keystrokes would be auto-closed)."""
    await page.locator(selector).first.wait_for(state="attached")
    await page.evaluate("([s, t]) => document.querySelectorAll(s)[0].CodeMirror.setValue(t)", [selector, text])
    await page.wait_for_timeout(400)  # GraphiQL re-parses the document (operation name) after a short debounce


async def result_text(page: Page) -> str:
    return await page.evaluate("document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()")


async def run(page: Page) -> None:
    await page.click(".graphiql-execute-button")


async def wait_for_result(page: Page, needle: str, seconds: float = 15) -> dict:
    await expect(page.locator(".graphiql-response")).to_contain_text(needle, timeout=seconds * SECOND)
    return json.loads(await result_text(page))


async def open_graphiql(browser, base_url: str) -> Page:
    page = await browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await page.goto(f"{base_url}/graphql")
    await expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible(timeout=15 * SECOND)
    await expect(page.locator(".graphiql-query-editor")).to_contain_text("query Conversations")
    assert all(url.startswith(base_url) or url.startswith("data:") for url in requests), requests
    return page


async def test_graphiql_loads_offline_runs_a_query_and_a_subscription(browser, artifacts):
    async with gateway_on_emulator(emulator=KNOBS, DELIVERY_GATEWAY_DEMO_MODE=True) as env:
        sid, _ = order_conversation(env)
        page = await open_graphiql(browser, env.base_url)

        await set_editor(page, ".graphiql-query-editor .CodeMirror", QUERY)
        await run(page)
        names = await wait_for_result(page, "order-1042")
        assert {"node": {"uniqueName": "order-1042"}} in names["data"]["conversations"]["edges"]

        await set_editor(page, ".graphiql-query-editor .CodeMirror", SUBSCRIPTION)
        await set_editor(page, ".graphiql-editor-tool .CodeMirror", json.dumps({"c": sid}))
        await run(page)
        await page.wait_for_timeout(500)  # the subscription is being set up over WebSocket
        message, _ = env.emulator.state.store.create_message(sid, author="agent.alice", body="Hello GraphiQL")
        event = await wait_for_result(page, message.sid)
        assert event["data"]["deliveryUpdates"]["message"]["sid"] == message.sid
        await page.screenshot(path=str(artifacts / "graphiql-subscription.png"))
        assert browser.external == []
        assert browser.problems == []


async def test_graphiql_outside_demo_mode_sends_the_headers_tab_over_http_and_in_connection_init(browser):
    key = "graphiql-test-key-0123456789"
    async with gateway_on_emulator(emulator=KNOBS, DELIVERY_GATEWAY_API_KEYS=key) as env:
        sid, _ = order_conversation(env)
        page = await open_graphiql(browser, env.base_url)  # the page itself needs no credentials

        await set_editor(page, ".graphiql-query-editor .CodeMirror", QUERY)
        await run(page)
        refused = await wait_for_result(page, "UNAUTHENTICATED")
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        await page.evaluate(  # the Headers tab's editor: the last of the editor tools
            "t => { const all = document.querySelectorAll('.graphiql-editor-tool .CodeMirror');"
            " all[all.length - 1].CodeMirror.setValue(t); }",
            json.dumps({"Authorization": f"Bearer {key}"}),
        )
        await page.wait_for_timeout(400)
        await run(page)
        names = await wait_for_result(page, "order-1042")
        assert names["data"]["conversations"]["edges"]

        await set_editor(page, ".graphiql-query-editor .CodeMirror", SUBSCRIPTION)
        await set_editor(page, ".graphiql-editor-tool .CodeMirror", json.dumps({"c": sid}))
        await run(page)
        await page.wait_for_timeout(500)
        message, _ = env.emulator.state.store.create_message(sid, author="agent.alice", body="Hello with a key")
        event = await wait_for_result(page, message.sid)
        assert event["data"]["deliveryUpdates"]["receipt"]["status"] == "SENT"
        assert browser.external == []
        assert all("401" in problem for problem in browser.problems), browser.problems
