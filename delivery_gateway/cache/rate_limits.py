"""The gateway's own rate limits (e.g. resends per message and per caller): fixed-window counters kept in the
cache backend that DELIVERY_GATEWAY_CACHE_URL chooses — memory:// for one process, redis:// so that every
replica counts in the same window.

Never fails open: when the store cannot be reached the check raises `RateLimitUnavailable` (callers refuse the
action), because what these limits guard costs money or reaches people (a resend is a real SMS or WhatsApp).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from delivery_gateway.cache.backend import DEFAULT_OP_TIMEOUT, MemoryBackend, backend_from_url

_logger = logging.getLogger("delivery_gateway.cache")

NAMESPACE = "dg-limits"


class WindowCounter(Protocol):
    """What a rate limit needs of a store (both cache backends provide it)."""

    async def hit_window(self, key: str, window: float) -> tuple[int, float]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Limit:
    """At most `limit` hits per `window` seconds for each subject (`name` keeps the limits' keys apart)."""

    name: str
    limit: int
    window: float


class RateLimitUnavailable(Exception):
    """The counters' store could not be reached: the limited action must not proceed."""


class RateLimiter:
    """Counts hits of several limits at once; `hit` answers None (allowed) or the seconds to wait."""

    def __init__(self, counter: WindowCounter) -> None:
        self.counter = counter

    @classmethod
    def from_url(cls, url: str, *, timeout: float = DEFAULT_OP_TIMEOUT) -> RateLimiter:
        return cls(backend_from_url(url, namespace=NAMESPACE, timeout=timeout))

    @classmethod
    def in_memory(cls) -> RateLimiter:
        return cls(MemoryBackend(NAMESPACE))

    async def hit(self, hits: Sequence[tuple[Limit, str]]) -> int | None:
        """Count one hit of each (limit, subject); None when every one is within its limit, else the whole
        seconds until the furthest exceeded window closes. Every hit counts, refused or not, so hammering a
        limit never shortens the wait."""
        wait = 0.0
        for limit, subject in hits:
            try:
                count, remaining = await self.counter.hit_window(f"{limit.name}:{subject}", limit.window)
            except Exception as exc:  # a store outage, whatever the client library calls it
                _logger.warning("rate limit store unavailable (%s): %r", limit.name, exc)
                raise RateLimitUnavailable(limit.name) from exc
            if count > limit.limit:
                wait = max(wait, remaining)
        return max(1, math.ceil(wait)) if wait > 0 else None

    async def close(self) -> None:
        await self.counter.close()
