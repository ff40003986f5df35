"""The one place that names resource-cache keys, so readers and webhook invalidation hit the same entries.

Pure functions; never performs I/O, and no other module may build a key by hand.
"""

from __future__ import annotations

from collections.abc import Iterable

# Key layout: `{kind}:{scope}:{sid...}` (the backend adds its `[prefix]namespace:` in front). `scope` is the
# Conversation Service SID the resource was read through, or `default` for the account's default-scope URLs
# (`service_sid=None`). The same conversation read through both scopes has two entries, so invalidation from
# a webhook (which always names the real ChatServiceSid) must clear both: the `invalidation_keys_*` and
# `generation_keys` functions below return the keys of both scopes.

DEFAULT_SCOPE = "default"

# Kinds: the first key segment, and the `kind` label of cache metrics.
CONVERSATION = "conversation"
MESSAGE = "message"
MESSAGES_PAGE = "messages_page"
MESSAGES_GENERATION = "messages_gen"
PARTICIPANTS = "participants"
RECEIPTS = "receipts"
CONFIGURATION = "configuration"

KINDS = (CONVERSATION, MESSAGE, MESSAGES_PAGE, MESSAGES_GENERATION, PARTICIPANTS, RECEIPTS, CONFIGURATION)

_NO_TOKEN = "-"


def sids_of(key: str) -> tuple[str | None, str | None]:
    """(conversation SID, message SID) a key names, either None: what a response built from it depends on."""
    parts = key.split(":")
    kind = parts[0]
    if kind == CONFIGURATION or len(parts) < 3:
        return None, None
    message_sid = parts[3] if kind in (MESSAGE, RECEIPTS) and len(parts) > 3 else None
    return parts[2], message_sid


def scope(service_sid: str | None) -> str:
    return service_sid or DEFAULT_SCOPE


def kind_of(key: str) -> str:
    return key.split(":", 1)[0]


def service_of(key: str) -> str | None:
    """The explicit Conversation Service SID a key is scoped by (None: the default scope, or an account key)."""
    parts = key.split(":")
    if len(parts) < 3 or parts[0] == CONFIGURATION or parts[1] in (DEFAULT_SCOPE, ""):
        return None
    return parts[1]


def configuration() -> str:
    """The account's Conversations configuration (its default service): one entry per account."""
    return f"{CONFIGURATION}:account"


def conversation(service_sid: str | None, sid: str) -> str:
    return f"{CONVERSATION}:{scope(service_sid)}:{sid}"


def message(service_sid: str | None, conversation_sid: str, sid: str) -> str:
    return f"{MESSAGE}:{scope(service_sid)}:{conversation_sid}:{sid}"


def messages_generation(service_sid: str | None, conversation_sid: str) -> str:
    """Holds an opaque token that is part of every messages-page key of the conversation: writing a new
    token (`ResourceCache.bump`) orphans all cached pages at once (they expire by TTL)."""
    return f"{MESSAGES_GENERATION}:{scope(service_sid)}:{conversation_sid}"


def messages_page(
    service_sid: str | None,
    conversation_sid: str,
    order: str,
    page_size: int,
    page_token: str | None,
    generation: str | None,
) -> str:
    """A page entry stores message SIDs and tokens only (see cache/pages.py), never the messages themselves,
    so a message entry is updated alone. `generation` is the value read from `messages_generation`."""
    return (
        f"{MESSAGES_PAGE}:{scope(service_sid)}:{conversation_sid}:{generation or '0'}:"
        f"{order}:{int(page_size)}:{page_token or _NO_TOKEN}"
    )


def participants(service_sid: str | None, conversation_sid: str) -> str:
    return f"{PARTICIPANTS}:{scope(service_sid)}:{conversation_sid}"


def receipts(service_sid: str | None, conversation_sid: str, message_sid: str) -> str:
    return f"{RECEIPTS}:{scope(service_sid)}:{conversation_sid}:{message_sid}"


def scopes(service_sid: str | None) -> Iterable[str | None]:
    """The scopes an entity of `service_sid` is cached under: loaders key by the service SID as the client gave
    it, so a service-scoped entity may sit under its explicit SID and under None (the default service)."""
    return (None,) if service_sid is None else (service_sid, None)


def invalidation_keys_message(service_sid: str | None, conversation_sid: str, message_sid: str) -> list[str]:
    """A message changed (onMessageUpdated / onDeliveryUpdated): its entry and its receipts, both scopes."""
    out = []
    for s in scopes(service_sid):
        out += [message(s, conversation_sid, message_sid), receipts(s, conversation_sid, message_sid)]
    return out


def invalidation_keys_conversation(service_sid: str | None, conversation_sid: str) -> list[str]:
    """The conversation itself changed (onConversationUpdated/Removed), both scopes."""
    return [conversation(s, conversation_sid) for s in scopes(service_sid)]


def invalidation_keys_participants(service_sid: str | None, conversation_sid: str) -> list[str]:
    """Participants added/updated/removed, both scopes."""
    return [participants(s, conversation_sid) for s in scopes(service_sid)]


def generation_keys(service_sid: str | None, conversation_sid: str) -> list[str]:
    """Messages added/removed: bump these (both scopes) to orphan every cached page of the conversation."""
    return [messages_generation(s, conversation_sid) for s in scopes(service_sid)]
