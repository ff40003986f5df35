"""Who is calling: the identity every GraphQL operation runs under, and what kind of access it has.

Declares only; never authenticates (auth/ does) and never decides access to a conversation (graphql/access.py
does). Every request and subscription carries one `Caller`.
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
    def scope(self) -> str:
        """Who may be given the same answer: every full-access caller alike; a participant by identity and service.
        The one rule behind every answer shared between callers (the response cache, grouped subscriptions)."""
        if self.full_access:
            return "full"
        return f"participant:{self.service_sid or '-'}:{self.identity or '-'}"


DEMO_CALLER = Caller(kind=CallerKind.DEMO, identity="demo")
