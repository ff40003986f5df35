"""Unread messages per chat participant, from their read horizon (no 1,000 cap, unlike Twilio's SDK).

Pure: never performs I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from delivery_gateway.delivery.channels import Channel, participant_channel
from delivery_gateway.kernel.records import ParticipantRecord


@dataclass(frozen=True)
class ParticipantUnread:
    participant: ParticipantRecord
    count: int
    last_read_message_index: int | None


def unread_counts(participants: Iterable[ParticipantRecord], last_index: int | None) -> list[ParticipantUnread]:
    """Per chat participant: messages past their read horizon, by index.

    A participant who never read anything has every message unread (index + 1, counting from index 0).
    """
    out = []
    for participant in participants:
        if participant_channel(participant) is not Channel.CHAT:
            continue
        horizon = participant.last_read_message_index
        if last_index is None:
            count = 0
        else:
            count = max(0, last_index - (horizon if horizon is not None else -1))
        out.append(ParticipantUnread(participant, count, horizon))
    return out
