"""Who is calling: the identity and scope every GraphQL operation runs under.

Declares only; never authenticates (that is auth.py's job). Every request and subscription carries one `Caller`,
so anything keyed per caller (response cache, rate limits, access checks) reads it from one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CallerKind(StrEnum):
    INTERNAL = "internal"  # static bearer key: full access
    PARTICIPANT = "participant"  # Twilio Access Token: only conversations the identity is a participant of
    DEMO = "demo"  # `delivery-gateway demo`: no credentials, full access to the emulator's data


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    identity: str | None = None  # participant identity (chat grant), or the key's label for internal callers
    service_sid: str | None = None  # the chat grant's service, for participant callers

    @property
    def full_access(self) -> bool:
        return self.kind in (CallerKind.INTERNAL, CallerKind.DEMO)

    @property
    def scope_key(self) -> str:
        """A stable key for everything cached per caller scope: full-access callers share one scope."""
        if self.full_access:
            return "full"
        return f"participant:{self.service_sid or '-'}:{self.identity}"


DEMO_CALLER = Caller(kind=CallerKind.DEMO, identity="demo")
