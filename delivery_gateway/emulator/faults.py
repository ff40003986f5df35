"""Injected misbehaviour of the emulated Twilio: latency, 429s and 5xx, drawn from a seeded Random.

Decides and waits only; never touches the store. Rates are read from the live config on every request.
"""

from __future__ import annotations

import asyncio
import random

from delivery_gateway.emulator.config import EmulatorConfig
from delivery_gateway.emulator.errors import TwilioError, rate_limited, server_error


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
        """The injected error for this request, or None. One draw per configured rate, in a fixed order."""
        if self.config.rate_limit_rate > 0 and self._rng.random() < self.config.rate_limit_rate:
            return rate_limited(self.config.retry_after)
        if self.config.server_error_rate > 0 and self._rng.random() < self.config.server_error_rate:
            return server_error(self.config.server_error_status)
        return None
