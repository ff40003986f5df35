"""The readiness check of the Twilio credentials: one cheap read, its answer kept for a minute.

`/readyz` may be polled every second by every load balancer in front of every replica; this check makes at most
one Twilio call per `interval` (one HTTP attempt, no retry) however often, and however concurrently, it is asked.
Never fails readiness because Twilio is slow or down (the gateway still serves cached reads, subscriptions and
webhooks then): only credentials that Twilio refuses (401/403) make the replica not ready.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from delivery_gateway.upstream.api import ConversationsAPI
from delivery_gateway.upstream.backoff import single_attempt
from delivery_gateway.upstream.errors import UpstreamError, UpstreamUnauthorized

PROBE_INTERVAL = 60.0  # seconds an answer is reused: at most one Twilio call a minute
PROBE_TIMEOUT = 5.0


class CredentialsProbe:
    """`await check()` -> "ok", "degraded: …" (Twilio unreachable: ready anyway) or "unavailable: …"."""

    def __init__(
        self,
        upstream: ConversationsAPI,
        *,
        interval: float = PROBE_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self.calls = 0  # probes sent to Twilio (for tests and /readyz's own accounting)
        self._state: str | None = None
        self._checked_at = 0.0
        self._lock = asyncio.Lock()

    async def check(self) -> str:
        state = self._state
        if state is not None and self._fresh():
            return state
        async with self._lock:  # concurrent /readyz requests wait for one probe instead of sending their own
            state = self._state
            if state is None or not self._fresh():
                state = self._state = await self._probe()
                self._checked_at = self.clock()
            return state

    def _fresh(self) -> bool:
        return self._state is not None and self.clock() - self._checked_at < self.interval

    async def _probe(self) -> str:
        self.calls += 1
        try:
            with single_attempt():
                await asyncio.wait_for(self.upstream.list_conversations(page_size=1), self.timeout)
        except UpstreamUnauthorized as exc:
            return f"unavailable: Twilio refused the credentials (HTTP {exc.status})"
        except UpstreamError as exc:
            return f"degraded: {type(exc).__name__}" + (f" (HTTP {exc.status})" if exc.status else "")
        except TimeoutError:
            return f"degraded: Twilio did not answer within {self.timeout:g} s"
        return "ok"
