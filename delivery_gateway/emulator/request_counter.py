"""Counts REST requests served, per route (`GET /v1/Conversations/{ConversationSid}/Messages`).

Bookkeeping only; never rejects or delays a request. Tests and benchmarks read it to assert upstream calls.
"""

from __future__ import annotations

from collections import Counter


class RequestCounter:
    """Requests per route key: the HTTP method and the spec's path template, e.g. `GET /v1/Conversations`."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def record(self, route: str) -> None:
        self._counts[route] += 1

    def count(self, route: str | None = None) -> int:
        """Requests to `route`, or to every route when None."""
        if route is None:
            return sum(self._counts.values())
        return self._counts[route]

    def snapshot(self) -> dict[str, int]:
        return dict(self._counts)

    def reset(self) -> None:
        self._counts.clear()
