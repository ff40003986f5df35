"""Injected misbehaviour of the emulated Twilio: latency, 429s, 5xx and dropped connections, from a seeded Random.

Decides and waits only; never touches the store. Rates are read from the live config on every request.
"""

from __future__ import annotations

import asyncio
import logging
import random

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from delivery_gateway.emulator.config import EmulatorConfig
from delivery_gateway.emulator.errors import TwilioError, rate_limited, server_error


class ConnectionDropped(Exception):
    """Raised by `DroppedConnection` after a partial body, so the server closes the socket mid-response."""


class HideDroppedConnections(logging.Filter):
    """Keeps uvicorn from logging a traceback for each connection the emulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


HIDE_DROPPED_CONNECTIONS = HideDroppedConnections()


class DroppedConnection:
    """An ASGI response that breaks off: `response`'s status and headers with a Content-Length larger than the
    body, half the body, then an exception (uvicorn closes the connection). Clients see a payload/connection
    error, never a status they could act on."""

    def __init__(self, response: Response) -> None:
        self.response = response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.response.body)
        headers = [(k, v) for k, v in self.response.raw_headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body) + 1024).encode()))
        await send({"type": "http.response.start", "status": self.response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise ConnectionDropped("emulator: injected connection reset")


class FaultInjector:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.reseed(config.seed)

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(f"{seed}/faults") if seed is not None else random.Random()

    async def delay(self) -> None:
        """Sleep the configured latency (plus jitter), if any."""
        seconds = self.config.latency
        if self.config.latency_jitter > 0:
            seconds += self._rng.uniform(0, self.config.latency_jitter)
        if seconds > 0:
            await asyncio.sleep(seconds)

    def failure(self) -> TwilioError | None:
        """The injected error for this request, or None. A pending `rate_limit_next` refusal first (no draw), then
        one draw per configured rate, in a fixed order."""
        if self.config.rate_limit_next > 0:
            self.config.rate_limit_next -= 1
            return rate_limited(self.config.retry_after)
        if self.config.rate_limit_rate > 0 and self._rng.random() < self.config.rate_limit_rate:
            return rate_limited(self.config.retry_after)
        if self.config.server_error_rate > 0 and self._rng.random() < self.config.server_error_rate:
            return server_error(self.config.server_error_status)
        return None

    def connection_reset(self) -> bool:
        """Whether this request's connection drops mid-response. Drawn only when the rate is set, after `failure()`,
        so configs without it keep their exact fault sequence."""
        rate = self.config.connection_reset_rate
        return rate > 0 and self._rng.random() < rate
