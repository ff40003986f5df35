"""Read horizons: whether a reported horizon replaces the stored one, and unread messages per chat participant.

Pure: never performs I/O. A participant may move their horizon back (the SDK's "mark unread"; Twilio's
Participant update accepts any LastReadMessageIndex), so the latest report wins, not the highest index. Unread
messages are the messages after the horizon, counted, never an index difference: Twilio's spec says indices "may
skip numbers" (a removed message leaves a gap). A participant with no horizon has an unknown unread count, as
Twilio's SDK reports (null).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from delivery_gateway.delivery.channels import Channel, participant_channel
from delivery_gateway.kernel.records import ParticipantRecord


def horizon_replaces(previous: tuple[int, str | None] | None, index: int, at: str | None) -> bool:
    """Whether a report of horizon `index` at `at` (Twilio's DateUpdated, canonical ISO-8601) replaces the stored
    `(index, at)`: the later report wins, so a horizon moved back applies and a late, older report does not undo a
    newer one. Reports of the same millisecond, or without a date on either side, cannot be ordered: only a
    forward move is trusted then (a replay or a tie must not undo a read)."""
    if previous is None:
        return True
    previous_index, previous_at = previous
    if at and previous_at and at != previous_at:
        return at > previous_at
    return index > previous_index


@dataclass(frozen=True)
class ParticipantUnread:
    participant: ParticipantRecord
    count: int | None  # None: no read horizon, so unknown (the SDK's null)
    last_read_message_index: int | None
    at_least: bool = False  # unread messages may continue before the examined messages: `count` is a lower bound


def unread_counts(
    participants: Iterable[ParticipantRecord], indices: Sequence[int], older_exist: bool
) -> list[ParticipantUnread]:
    """Per chat participant: how many of the examined messages (their `indices`, the latest ones of the
    conversation) lie after the read horizon. `older_exist`: messages older than the examined ones exist, so a
    horizon before all of them leaves the count a lower bound (`at_least`)."""
    first = min(indices, default=None)
    out = []
    for participant in participants:
        if participant_channel(participant) is not Channel.CHAT:
            continue
        horizon = participant.last_read_message_index
        if horizon is None:
            out.append(ParticipantUnread(participant, None, None))
            continue
        count = sum(1 for index in indices if index > horizon)
        at_least = older_exist and (first is None or horizon < first)
        out.append(ParticipantUnread(participant, count, horizon, at_least))
    return out
