"""Templated routes of Twilio URLs (`/v1/Conversations/{ConversationSid}/Messages`), for metrics labels.

Pure string functions; never performs I/O and never lets a SID or query string into a label (cardinality).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from delivery_gateway.kernel.sids import is_sid

# Parent collection -> the placeholder Twilio's OpenAPI spec uses for its SID when not the last segment.
_PARENT_PLACEHOLDER = {
    "Services": "ChatServiceSid",
    "Conversations": "ConversationSid",
    "Messages": "MessageSid",
    "Participants": "ParticipantSid",
    "Users": "UserSid",
    "Roles": "RoleSid",
    "Credentials": "CredentialSid",
    "Receipts": "ReceiptSid",
    "Webhooks": "WebhookSid",
}


def _placeholder(parent: str) -> str:
    if parent in _PARENT_PLACEHOLDER:
        return _PARENT_PLACEHOLDER[parent]
    singular = parent[:-1] if parent.endswith("s") else parent
    return f"{singular}Sid"


@lru_cache(maxsize=1024)
def _template_path(path: str) -> str:
    segments = path.split("/")
    last = len(segments) - 1
    out = []
    for i, segment in enumerate(segments):
        if is_sid(segment):
            out.append("{Sid}" if i == last else "{" + _placeholder(segments[i - 1] if i else "") + "}")
        else:
            out.append(segment)
    return "/".join(out)


def route_of(url: str) -> str:
    """The spec-style path template of an absolute or relative URL: SIDs replaced, query and host dropped.

    `/v1/Services/IS../Conversations/CH../Messages` -> `/v1/Services/{ChatServiceSid}/Conversations/
    {ConversationSid}/Messages`; a SID in the last segment is `{Sid}`, as in Twilio's OpenAPI paths.
    """
    path = urlsplit(url).path or "/"
    if path != "/" and path.endswith("/"):
        path = path.rstrip("/")
    return _template_path(path)
