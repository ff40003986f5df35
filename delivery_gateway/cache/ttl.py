"""How long each kind of cached resource lives, from settings; final receipts live longer.

Never reads the environment (takes Settings) and never performs I/O. A TTL of 0 means "do not cache".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from delivery_gateway.cache import keys
from delivery_gateway.delivery.statuses import receipts_final
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.kernel.settings import Settings

GENERATION_TTL = 86400.0  # must outlive every page TTL (see keys.messages_generation)
# The account's default Conversation Service changes rarely (an operator's console action); an hour bounds how
# long a changed default takes to reach tokens that name no service.
CONFIGURATION_TTL = 3600.0


@dataclass(frozen=True)
class TtlPolicy:
    conversation: float = 60.0
    participants: float = 60.0
    messages: float = 30.0  # message entries and message pages
    receipts: float = 30.0
    receipts_final: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TtlPolicy:
        return cls(
            conversation=settings.ttl_conversation,
            participants=settings.ttl_participants,
            messages=settings.ttl_messages,
            receipts=settings.ttl_receipts,
            receipts_final=settings.ttl_receipts_terminal,
        )

    def for_kind(self, kind: str) -> float:
        return {
            keys.CONVERSATION: self.conversation,
            keys.PARTICIPANTS: self.participants,
            keys.MESSAGE: self.messages,
            keys.MESSAGES_PAGE: self.messages,
            keys.RECEIPTS: self.receipts,
            keys.MESSAGES_GENERATION: GENERATION_TTL,
            keys.CONFIGURATION: CONFIGURATION_TTL,
        }[kind]

    def for_receipts(self, receipts: Iterable[ReceiptRecord]) -> float:
        """A message's receipts whose every status is final (read/failed/undelivered) cannot change again."""
        return self.receipts_final if receipts_final(receipts) else self.receipts
