"""The webhook route's lean path (webhooks/front.py), through `create_app`: a signed URL-encoded POST answered by
one layer gets exactly the answer the full middleware stack gives (status, body, CORS headers, correlation id),
carries its correlation id into the request log, and leaves everything else to the full stack; the cache work after
a commit group reads the resource cache once per run of deliveries, with the outcome of the events one by one.

In-process (httpx ASGI transport) on the SQLite default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from delivery_gateway.cache import keys
from delivery_gateway.http.request_log import REQUEST_LOGGER
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.webhooks.endpoint import TwilioWebhookEndpoint
from tests.live.harness import Gateway, ingest_app, sign

TOKEN = "front-test-auth-token"
ACCOUNT = "AC" + "0" * 32
BASE = "http://testserver"
URL = BASE + "/webhooks/twilio"
ORIGIN = "https://app.example.com"
CONVERSATION = "CH" + "a1" * 16
SERVICE = "IS" + "b2" * 16
MESSAGE = "IM" + "c3" * 16
URLENCODED = "application/x-www-form-urlencoded"


def delivery(receipt: int, status: str, *, second: int = 0, **changes: str) -> dict[str, str]:
    form = {
        "EventType": "onDeliveryUpdated",
        "AccountSid": ACCOUNT,
        "ChatServiceSid": SERVICE,
        "ConversationSid": CONVERSATION,
        "MessageSid": MESSAGE,
        "DeliveryReceiptSid": f"DY{receipt:032x}",
        "ParticipantSid": f"MB{receipt:032x}",
        "Status": status,
        "DateCreated": "2026-01-01T00:00:00Z",
        "DateUpdated": f"2026-01-01T00:00:{second:02d}Z",
    }
    return {**form, **changes}


@contextlib.asynccontextmanager
async def gateway(tmp_path) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway]]:
    settings = Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_ACCOUNT_SID=ACCOUNT,
        DELIVERY_GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/ledger.sqlite3",
        DELIVERY_GATEWAY_ALLOWED_ORIGINS=ORIGIN,
    )
    async with ingest_app(settings) as g:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=g.app), base_url=BASE) as client:
            yield client, g


@pytest.fixture
def route_calls(monkeypatch) -> list[str]:
    """The content types the Starlette route (the full stack's end) was called with."""
    calls: list[str] = []
    handle = TwilioWebhookEndpoint.handle

    async def counted(self, request):
        calls.append(request.headers.get("content-type", ""))
        return await handle(self, request)

    monkeypatch.setattr(TwilioWebhookEndpoint, "handle", counted)
    return calls


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked): the lean path leaves it to the full stack."""
    yield body[: len(body) // 2]
    yield body[len(body) // 2 :]


CASES = {
    "accepted": (delivery(1, "sent"), None),
    "forged signature": (delivery(2, "sent"), "forged"),
    "signed for another URL": (delivery(3, "sent"), "other-url"),
    "malformed SID": (delivery(4, "sent", MessageSid="IM123"), None),
    "untracked event": ({"EventType": "onConversationAdded", "ConversationSid": CONVERSATION}, None),
    "another account": (delivery(5, "sent", AccountSid="AC" + "9" * 32), None),
    "unknown status": (delivery(6, "queued-somewhere"), None),
    "more fields than a form may have": ({f"F{n}": "x" for n in range(1001)}, None),
}


async def test_the_lean_path_answers_exactly_as_the_full_stack(tmp_path, route_calls):
    async with gateway(tmp_path) as (client, _):
        for name, (form, signing) in CASES.items():
            if signing == "forged":
                signature = {"X-Twilio-Signature": "c2lnbmVkIGJ5IG5vYm9keQ=="}
            elif signing == "other-url":
                signature = sign(TOKEN, "https://elsewhere.example.com/webhooks/twilio", form)
            else:
                signature = sign(TOKEN, URL, form)
            body = str(httpx.QueryParams(form)).encode()
            headers = {
                **signature,
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": ORIGIN,
                "X-Request-ID": f"case-{len(route_calls)}",
            }
            before = len(route_calls)
            lean = await client.post("/webhooks/twilio", content=body, headers=headers)
            assert len(route_calls) == before, f"{name}: a signed URL-encoded form never reaches the route"
            full = await client.post("/webhooks/twilio", content=chunked(body), headers=headers)
            assert len(route_calls) == before + 1, f"{name}: a chunked body goes through the full stack"
            assert (name, lean.status_code, lean.json()) == (name, full.status_code, full.json())
            assert lean.headers.items() == full.headers.items(), name
            assert lean.headers["x-request-id"] == headers["X-Request-ID"]
            assert lean.headers["access-control-allow-origin"] == ORIGIN


async def test_each_outcome_of_the_lean_path(tmp_path, route_calls):
    async with gateway(tmp_path) as (client, g):
        answers = {}
        for name, (form, signing) in CASES.items():
            headers = (
                {"X-Twilio-Signature": "forged"}
                if signing == "forged"
                else sign(TOKEN, "https://elsewhere.example.com/webhooks/twilio" if signing else URL, form)
            )
            response = await client.post("/webhooks/twilio", data=form, headers=headers)
            answers[name] = (response.status_code, response.json().get("status"))
        await g.ingest.drain()
        assert answers == {
            "accepted": (200, "accepted"),
            "forged signature": (403, None),
            "signed for another URL": (403, None),
            "malformed SID": (400, None),
            "untracked event": (200, "ignored"),
            "another account": (200, "ignored"),
            "unknown status": (200, "ignored"),
            "more fields than a form may have": (400, None),
        }
        assert route_calls == []
        assert [r.status.value for r in await g.ledger.receipts_for_message(MESSAGE)] == ["sent"]


async def test_what_the_lean_path_leaves_to_the_full_stack(tmp_path, route_calls):
    form = delivery(7, "delivered")
    signed = sign(TOKEN, URL, form)
    async with gateway(tmp_path) as (client, g):
        multipart = await client.post("/webhooks/twilio", files={k: (None, v) for k, v in form.items()}, headers=signed)
        unsigned = await client.post("/webhooks/twilio", data=form)
        oversize = await client.post(
            "/webhooks/twilio", content=b"a=" + b"x" * 70_000, headers={**signed, "Content-Type": URLENCODED}
        )
        preflight = await client.options(
            "/webhooks/twilio", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        wrong_method = await client.get("/webhooks/twilio")
        await g.ingest.drain()
        assert (multipart.status_code, multipart.json()) == (200, {"status": "accepted"})
        assert unsigned.status_code == 403 and unsigned.json() == {"error": "missing X-Twilio-Signature"}
        assert oversize.status_code == 413
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
        assert wrong_method.status_code == 405
        assert route_calls == [multipart.request.headers["content-type"], URLENCODED]
        assert [r.status.value for r in await g.ledger.receipts_for_message(MESSAGE)] == ["delivered"]


async def test_the_request_log_line_carries_the_answered_correlation_id(tmp_path):
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(REQUEST_LOGGER)
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with gateway(tmp_path) as (client, _):
            answers = []
            for n in range(3):
                form = delivery(10 + n, "sent")
                answers.append(await client.post("/webhooks/twilio", data=form, headers=sign(TOKEN, URL, form)))
            mine = await client.post(
                "/webhooks/twilio", data=form, headers={**sign(TOKEN, URL, form), "X-Request-ID": "twilio-retry.7"}
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == 3
    assert mine.headers["x-request-id"] == "twilio-retry.7"
    lines = [r.fields for r in records]  # type: ignore[attr-defined]
    assert [(f["request_id"], f["status"], f["outcome"]) for f in lines] == [
        *((i, 200, "accepted") for i in ids),
        ("twilio-retry.7", 200, "accepted"),
    ]


async def test_a_commit_group_reads_the_cache_once_and_ends_as_its_events_one_by_one(tmp_path):
    async with gateway(tmp_path) as (client, g):
        cache = g.services.cache
        assert cache is not None
        lists = [keys.receipts(scope, CONVERSATION, MESSAGE) for scope in keys.scopes(SERVICE)]
        cached = [
            ReceiptRecord.from_dict(
                {"sid": f"DY{n:032x}", "conversation_sid": CONVERSATION, "message_sid": MESSAGE, "status": "sent"}
            ).to_dict()
            for n in (1, 2)
        ]
        await cache.set_many(dict.fromkeys(lists, cached), 600)
        reads: list[int] = []
        get_many = cache.get_many

        async def counted_get_many(wanted):
            wanted = list(wanted)
            reads.append(len(wanted))
            return await get_many(wanted)

        cache.get_many = counted_get_many  # type: ignore[method-assign]
        # Hold the first batch in its transaction so the next webhooks queue up behind it: one commit group.
        ledger, entered, release = g.ledger, asyncio.Event(), asyncio.Event()
        apply_many = ledger.apply_many

        async def held_apply_many(events, **kwargs):
            if not entered.is_set():
                entered.set()
                await release.wait()
            return await apply_many(events, **kwargs)

        ledger.apply_many = held_apply_many  # type: ignore[method-assign]
        forms = [
            delivery(1, "delivered", second=1),
            delivery(2, "delivered", second=2),
            delivery(1, "read", second=3),
            delivery(3, "delivered", second=4),  # a receipt the cached lists lack: appended
            delivery(2, "failed", second=5, ErrorCode="30008"),
        ]
        first = await client.post("/webhooks/twilio", data=forms[0], headers=sign(TOKEN, URL, forms[0]))
        await asyncio.wait_for(entered.wait(), 5)
        rest = await asyncio.gather(
            *(client.post("/webhooks/twilio", data=f, headers=sign(TOKEN, URL, f)) for f in forms[1:])
        )
        assert [r.status_code for r in (first, *rest)] == [200] * 5
        release.set()
        await g.ingest.drain()
        assert len(reads) == 2  # one read for the held event, one for the four queued behind it
        stored = await get_many(lists)
        assert set(stored) == set(lists)
        for key in lists:
            assert {r["sid"][-1]: r["status"] for r in stored[key]} == {"1": "read", "2": "failed", "3": "delivered"}
        in_ledger = {r.sid[-1]: r.status.value for r in await ledger.receipts_for_message(MESSAGE)}
        assert in_ledger == {"1": "read", "2": "failed", "3": "delivered"}
