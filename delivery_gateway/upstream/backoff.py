"""How long to wait before retrying an upstream attempt: exponential backoff, full jitter, Retry-After, and
the rate-limit budget for 429s that name no Retry-After.

Never sleeps and never decides *whether* a call is idempotent: it only computes delays.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_single_attempt: contextvars.ContextVar[bool] = contextvars.ContextVar("upstream_single_attempt", default=False)


@contextlib.contextmanager
def single_attempt() -> Iterator[None]:
    """Calls made inside the block get one HTTP attempt and no retry (a probe must cost exactly one call)."""
    token = _single_attempt.set(True)
    try:
        yield
    finally:
        _single_attempt.reset(token)


def retries_allowed() -> bool:
    return not _single_attempt.get()


def is_retryable_status(status: int) -> bool:
    """429 Too Many Requests and every 5xx are worth another try (for idempotent calls)."""
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class RetryPolicy:
    """Delay before retry number `attempt + 1`: uniform(0, min(cap, base * 2**attempt)) ("full jitter").

    A Retry-After from the server wins over the computed delay, unless it exceeds `max_retry_after`: then
    `delay()` returns None and the caller should give up at once rather than hold a GraphQL request hostage.
    """

    max_retries: int = 3
    base: float = 0.1
    cap: float = 2.0
    max_retry_after: float = 5.0
    rng: Callable[[float, float], float] = field(default=random.uniform, repr=False)
    # A 429 without Retry-After (Twilio's Conversations API sends none: its 20429 page only says to back off
    # exponentially, https://www.twilio.com/docs/api/errors/20429) is retried for up to `rate_limit_budget`
    # seconds, not `max_retries` times: Twilio's limits count per second (Conversations' "Actions Per Second",
    # https://www.twilio.com/en-us/changelog/increasing-actions-per-second-for-conversations-), so a few retries
    # within the same second would all be refused again.
    rate_limit_budget: float = 3.0
    rate_limit_base: float = 0.25
    rate_limit_cap: float = 2.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self.rng(0.0, min(self.cap, self.base * (2**attempt)))

    def rate_limit_delay(self, attempt: int, elapsed: float) -> float | None:
        """Delay before retry `attempt + 1` of a 429 without Retry-After, `elapsed` seconds after the first try;
        None once the wait would end past the budget (give up now rather than sleep for nothing).

        "Equal jitter": half of min(cap, base * 2**attempt) fixed, half uniform. The fixed half bounds the calls a
        budget can cost (no run of near-zero waits), the random half spreads the replicas that hit the limit
        together, so they do not all come back in the same instant.
        """
        ceiling = min(self.rate_limit_cap, self.rate_limit_base * (2**attempt))
        wait = ceiling / 2 + self.rng(0.0, ceiling / 2)
        return wait if elapsed + wait <= self.rate_limit_budget else None

    def rate_limit_calls(self) -> int:
        """The most HTTP attempts one call can make while answered 429 without Retry-After (the first included):
        every wait at its shortest, counted until the budget is spent."""
        attempts, spent = 1, 0.0
        while True:
            shortest = min(self.rate_limit_cap, self.rate_limit_base * (2 ** (attempts - 1))) / 2
            if spent + shortest > self.rate_limit_budget:
                return attempts
            spent += shortest
            attempts += 1
