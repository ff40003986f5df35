"""The demo's request summary: counts by kind and status class, resets per window, logs no path detail or secret."""

from __future__ import annotations

import httpx

from delivery_gateway.http.access_summary import AccessSummary
from delivery_gateway.kernel.settings import Settings
from tests.app_support import running_app


async def test_summary_counts_requests_by_kind_and_status_class_then_starts_over():
    settings = Settings(_env_file=None, DELIVERY_GATEWAY_STORE_URL="memory://", DELIVERY_GATEWAY_API_KEYS="k" * 24)
    async with running_app(settings) as app:
        summary = AccessSummary(app)
        transport = httpx.ASGITransport(app=summary)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            assert summary.line() is None
            await client.get("/healthz")
            await client.post("/graphql?secret=1", json={"query": "{ __typename }"})  # 401: no credentials
            await client.post("/webhooks/twilio", data={"EventType": "onDeliveryUpdated"})  # 403: unsigned
            await client.get("/static/demo/demo.js")
        line = summary.line()
        assert line == "1 graphql 4xx, 1 other, 1 page, 1 webhook 4xx"
        assert "secret" not in line
        assert summary.line() is None and summary.total == 4
