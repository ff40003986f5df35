"""Circuit breaker for the upstream: consecutive failures open it for a cool-down, then one probe decides.

Never sleeps or performs I/O: it only answers "may I try now?" and is told how attempts ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls flow
    OPEN = "open"  # calls are refused until the cool-down ends
    HALF_OPEN = "half_open"  # one probe call is in flight; the rest are refused


class CircuitBreaker:
    """closed --(threshold consecutive failures)--> open --(cooldown)--> half-open --(probe ok)--> closed.

    A failed probe re-opens it for another cool-down. Only upstream-health failures count (5xx, timeouts,
    connection errors); 4xx answers (including 429) prove the upstream is alive and reset the count.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._listeners: list[Callable[[BreakerState], None]] = [on_change] if on_change is not None else []
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state  # an open breaker turns half-open on the first allow() after its cool-down

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May an attempt start now? In half-open, exactly one caller gets True (the probe)."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN and self.retry_after() == 0.0:
            self._set(BreakerState.HALF_OPEN)
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (e.g. cancelled): let the next caller probe."""
        if self._state is BreakerState.HALF_OPEN:
            self._opened_at = self._clock() - self.cooldown
            self._set(BreakerState.OPEN)

    def add_listener(self, listener: Callable[[BreakerState], None]) -> None:
        """Call `listener(state)` on every state change (after the ones already registered)."""
        self._listeners.append(listener)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        for listener in self._listeners:
            listener(state)
