"""Webhooks behind a TLS-terminating proxy: Twilio signs `https://public-host/webhooks/twilio`, the gateway receives
`http://its-own-address/webhooks/twilio`.

From an address in DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS the proxy's X-Forwarded-Proto/-Host name the URL Twilio
called, and the signature verifies; from any other address the same headers count for nothing (403), or a client
could pick the URL its forged signature is checked against. In-process through `create_app`, then a live `serve`
process behind a small reverse proxy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from delivery_gateway.emulator import EmulatorConfig
from delivery_gateway.emulator.server import serve_emulator
from delivery_gateway.kernel.settings import Settings
from tests.app_support import serve_app
from tests.live.harness import ingest_app, sign
from tests.test_cli_operators import ACCOUNT, AUTH_TOKEN, _receipt_in, serve_env, serve_process

PUBLIC = "https://gateway.example.com"
SIGNED_URL = PUBLIC + "/webhooks/twilio"
PROXY_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gateway.example.com"}


def delivery_form() -> dict[str, str]:
    return {
        "EventType": "onDeliveryUpdated",
        "AccountSid": ACCOUNT,
        "ConversationSid": "CH" + "1" * 32,
        "MessageSid": "IM" + "2" * 32,
        "DeliveryReceiptSid": "DY" + "3" * 32,
        "ParticipantSid": "MB" + "4" * 32,
        "ChannelMessageSid": "SM" + "5" * 32,
        "Status": "delivered",
        "DateCreated": "2026-01-01T00:00:00.000Z",
        "DateUpdated": "2026-01-01T00:00:05.000Z",
        "Source": "API",
    }


@contextlib.asynccontextmanager
async def webhook_poster(tmp_path, peer: str, **settings: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `create_app` whose requests arrive from `peer` (the address uvicorn would report)."""
    values = {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "DELIVERY_GATEWAY_STORE_URL": f"sqlite:///{tmp_path}/ledger.sqlite3",
        **settings,
    }
    async with ingest_app(Settings(_env_file=None, **values)) as gateway:
        transport = httpx.ASGITransport(app=gateway.app, client=(peer, 41000))
        async with httpx.AsyncClient(transport=transport, base_url="http://10.0.3.7:8000") as client:
            yield client


async def post_signed(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    form = delivery_form()
    return await client.post("/webhooks/twilio", data=form, headers={**sign(AUTH_TOKEN, SIGNED_URL, form), **headers})


async def test_forwarded_headers_from_a_listed_proxy_name_the_url_twilio_signed(tmp_path):
    async with webhook_poster(tmp_path, "10.0.0.7", DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS="10.0.0.0/8") as client:
        assert (await post_signed(client, PROXY_HEADERS)).status_code == 200
        assert (await post_signed(client, {})).status_code == 403  # the URL as received is not the one signed
        # A proxy chain appends: the first value is what the outermost proxy (the one Twilio called) saw.
        chained = {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "gateway.example.com, 10.0.3.7:8000"}
        assert (await post_signed(client, chained)).status_code == 200


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("203.0.113.9", "10.0.0.0/8"),  # not a listed proxy
        ("10.0.0.7", None),  # no proxy listed at all: forwarded headers are ignored
    ],
)
async def test_forwarded_headers_from_anyone_else_count_for_nothing(tmp_path, peer: str, allowed: str | None):
    settings = {"DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS": allowed} if allowed else {}
    async with webhook_poster(tmp_path, peer, **settings) as client:
        response = await post_signed(client, PROXY_HEADERS)
        assert response.status_code == 403
        assert response.json() == {"error": "X-Twilio-Signature does not match"}


@pytest.mark.parametrize(
    ("allowed", "forwarded_for", "client"),
    [
        ("10.0.0.0/8", "198.51.100.4, 10.0.0.9", "198.51.100.4"),  # the nearest hop that is not a listed proxy
        ("10.0.0.0/8", "198.51.100.4, 203.0.113.7", "203.0.113.7"),  # a hop it does not list may have lied before
        ("10.0.0.0/8, fd00::/8", "198.51.100.4, fd00::2", "198.51.100.4"),
        ("*", "198.51.100.4, 203.0.113.7", "198.51.100.4"),  # everyone trusted: the first address named
    ],
)
async def test_the_request_log_names_the_client_the_proxy_saw(
    tmp_path, caplog, allowed: str, forwarded_for: str, client: str
):
    caplog.set_level(logging.INFO, logger="delivery_gateway.requests")
    async with webhook_poster(tmp_path, "10.0.0.7", DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS=allowed) as client_:
        response = await post_signed(client_, {**PROXY_HEADERS, "X-Forwarded-For": forwarded_for})
    assert response.status_code == 200
    [line] = [r for r in caplog.records if r.name == "delivery_gateway.requests"]
    assert line.fields["client"] == client  # type: ignore[attr-defined]


async def test_public_url_wins_over_forwarded_headers(tmp_path):
    settings = {"DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS": "*", "DELIVERY_GATEWAY_PUBLIC_URL": PUBLIC}
    async with webhook_poster(tmp_path, "10.0.0.7", **settings) as client:
        assert (await post_signed(client, {})).status_code == 200
        forged = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example"}
        assert (await post_signed(client, forged)).status_code == 200  # signed for PUBLIC, checked against PUBLIC


def reverse_proxy(upstream: str) -> Starlette:
    """What nginx does with `proxy_pass` plus X-Forwarded-Proto/-Host: TLS ended here (so https), `Host` rewritten
    to the upstream's address, path, query and body passed on untouched."""

    async def forward(request: Request) -> Response:
        headers = {
            key: value
            for key, value in request.headers.items()
            if key.lower() not in ("host", "content-length", "connection")
        }
        headers["X-Forwarded-Proto"] = "https"
        headers["X-Forwarded-Host"] = request.headers["host"]
        headers["X-Forwarded-For"] = request.client.host if request.client else ""
        async with httpx.AsyncClient(base_url=upstream) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=request.url.query,
                content=await request.body(),
                headers=headers,
            )
        return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])


@pytest.mark.parametrize(("allowed", "status"), [("127.0.0.1", 200), ("10.1.2.3", 403)])
async def test_serve_behind_a_tls_terminating_proxy(tmp_path, allowed: str, status: int):
    config = EmulatorConfig(account_sid=ACCOUNT, auth_token=AUTH_TOKEN, seed=7, seed_data=True, simulate=False)
    async with serve_emulator(config) as emulator:
        _conversation, form = _receipt_in(emulator)
        env = serve_env(
            DELIVERY_GATEWAY_TWILIO_BASE_URL=emulator.base_url,
            DELIVERY_GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/ledger.sqlite3",
            DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS=allowed,
        )
        async with serve_process(env) as gateway, serve_app(reverse_proxy(gateway.base_url)) as proxy:
            # Twilio calls https://gateway.example.com/webhooks/twilio; the proxy's listener gets that Host.
            async with httpx.AsyncClient(base_url=proxy) as twilio:
                response = await twilio.post(
                    "/webhooks/twilio",
                    data=form,
                    headers={"Host": "gateway.example.com", **sign(AUTH_TOKEN, SIGNED_URL, form)},
                )
            assert response.status_code == status, response.text
    banner = next(line for line in gateway.lines if "public URL:" in line)
    assert banner.endswith(
        "from the proxy: webhook signatures are checked against the URL its forwarded headers name; "
        f"X-Forwarded-Proto/-Host/-For honoured from {allowed}"
    )
