"""Forwarded headers from trusted proxies: the scheme, host and client a TLS-terminating proxy saw.

Behind a proxy the gateway receives `http://10.0.3.7:8000/webhooks/twilio` while Twilio called (and signed)
`https://gateway.example.com/webhooks/twilio`. From a peer in DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS this middleware
rewrites the request as the proxy received it: `X-Forwarded-Proto` becomes the scheme, `X-Forwarded-Host` the
`Host` header, `X-Forwarded-For` the client address, so every later layer (webhook signatures, same-origin checks,
logs) sees the public request. Never honours a forwarded header from any other peer: a client that can reach the
gateway directly could otherwise forge the URL a signature is checked against.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from delivery_gateway.kernel.networks import ALL, parse_networks

_SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss"), "ws": ("http", "ws"), "wss": ("https", "wss")}


class TrustedProxies:
    """Which peers may speak for the client: listed addresses and networks, or everyone (`*`)."""

    def __init__(self, entries: Iterable[str]) -> None:
        listed = [entry.strip() for entry in entries]
        self.everyone = ALL in listed
        self.networks = parse_networks(listed)

    def __contains__(self, host: object) -> bool:
        if self.everyone:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False  # a unix socket path or a host name: not a proxy we can name by address
        return any(address in network for network in self.networks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _first(value: str | None) -> str | None:
    """The first entry of a comma list: the value the outermost proxy set (hops after it append)."""
    if value is None:
        return None
    first = value.split(",")[0].strip()
    return first or None


class ForwardedHeadersMiddleware:
    """Applies X-Forwarded-Proto/-Host/-For from trusted peers (see the module docstring); passes others as is."""

    def __init__(self, app: ASGIApp, *, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = TrustedProxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = (scope.get("client") or (None, None))[0]
            if peer in self.trusted:
                scope = self._rewritten(scope)
        await self.app(scope, receive, send)

    def _rewritten(self, scope: Scope) -> Scope:
        scope = dict(scope)
        proto = (_first(_header(scope, b"x-forwarded-proto")) or "").lower()
        if proto in _SCHEMES:
            http_scheme, ws_scheme = _SCHEMES[proto]
            scope["scheme"] = ws_scheme if scope["type"] == "websocket" else http_scheme
        host = _first(_header(scope, b"x-forwarded-host"))
        if host and all(ch.isprintable() and ch not in "/\\@ " for ch in host):
            headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() != b"host"]
            scope["headers"] = [(b"host", host.encode("latin-1")), *headers]
        client = self._client(_header(scope, b"x-forwarded-for"))
        if client is not None:
            scope["client"] = (client, 0)
        return scope

    def _client(self, value: str | None) -> str | None:
        """The nearest address that is not a trusted proxy, walking X-Forwarded-For from the right."""
        if not value:
            return None
        hops = [hop.strip() for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if hop not in self.trusted:
                return hop
        return hops[0] if hops else None
