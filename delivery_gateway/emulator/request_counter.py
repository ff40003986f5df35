"""Counts REST requests served, per route (`GET /v1/Conversations/{ConversationSid}/Messages`), and in flight.

Bookkeeping only; never rejects or delays a request. Tests and benchmarks read it to assert upstream calls.
"""

from __future__ import annotations

from collections import Counter


class RequestCounter:
    """Requests per route key: the HTTP method and the spec's path template, e.g. `GET /v1/Conversations`."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self.in_flight = 0  # requests being handled right now (injected latency included)
        self.max_in_flight = 0  # high-water mark of in_flight since the last reset()

    def record(self, route: str) -> None:
        self._counts[route] += 1

    def started(self) -> None:
        """A request entered its handling; pair with `finished()`."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finished(self) -> None:
        self.in_flight -= 1

    def count(self, route: str | None = None) -> int:
        """Requests to `route`, or to every route when None."""
        if route is None:
            return sum(self._counts.values())
        return self._counts[route]

    def snapshot(self) -> dict[str, int]:
        return dict(self._counts)

    def reset(self) -> None:
        """Forget the counts and the high-water mark (requests still in flight stay counted as such)."""
        self._counts.clear()
        self.max_in_flight = self.in_flight
