"""In-process log of upstream HTTP attempts, so tests assert exact call counts per GraphQL operation.

Never stores URLs, bodies or credentials: only (method, templated route, status). Memory stays bounded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from delivery_gateway.kernel.request_stats import note_upstream_call


@dataclass(frozen=True)
class UpstreamCall:
    method: str  # "GET", "POST", ...
    route: str  # templated, e.g. "/v1/Conversations/{ConversationSid}/Messages"
    status: str  # HTTP status code ("200") or "timeout" / "connection_error"


class _Tally:
    """Counting queries over a multiset of calls."""

    def __init__(self) -> None:
        self._counts: Counter[UpstreamCall] = Counter()

    def _add(self, call: UpstreamCall) -> None:
        self._counts[call] += 1

    def count(self, route: str | None = None, method: str | None = None, status: str | None = None) -> int:
        """Attempts matching every given filter (all attempts when none given)."""
        return sum(
            n
            for call, n in self._counts.items()
            if (route is None or call.route == route)
            and (method is None or call.method == method.upper())
            and (status is None or call.status == str(status))
        )

    def by_route(self) -> dict[str, int]:
        """{route: attempts}, all methods and statuses together."""
        out: Counter[str] = Counter()
        for call, n in self._counts.items():
            out[call.route] += n
        return dict(out)

    def by_call(self) -> dict[tuple[str, str, str], int]:
        """{(method, route, status): attempts}."""
        return {(c.method, c.route, c.status): n for c, n in self._counts.items()}

    def __len__(self) -> int:
        return self.count()


class CallCapture(_Tally):
    """Attempts recorded while a `capture()` block was open (and only those)."""

    def __repr__(self) -> str:
        return f"CallCapture({self.by_call()!r})"


class UpstreamCallLog(_Tally):
    """Running totals of upstream attempts, plus any open captures.

    >>> with client.calls.capture() as calls:
    ...     await run_query(...)
    >>> assert calls.count() == 2
    >>> assert calls.count("/v1/Conversations/{ConversationSid}/Messages") == 1
    """

    def __init__(self) -> None:
        super().__init__()
        self._captures: list[CallCapture] = []

    def record(self, method: str, route: str, status: int | str) -> None:
        call = UpstreamCall(method.upper(), route, str(status))
        self._add(call)
        note_upstream_call()
        for capture in self._captures:
            capture._add(call)

    def reset(self) -> None:
        """Forget the running totals (open captures keep theirs)."""
        self._counts.clear()

    @contextmanager
    def capture(self) -> Iterator[CallCapture]:
        """Collect attempts made inside the block; the capture stays readable afterwards."""
        capture = CallCapture()
        self._captures.append(capture)
        try:
            yield capture
        finally:
            self._captures.remove(capture)
