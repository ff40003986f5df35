"""Masking for what operators see: backend URLs without their passwords, account SIDs shortened, secrets removed.

Pure string functions for banners, start-up errors and logs; never returns a credential it was given.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
# Query parameters that carry credentials in database and broker URLs (PostgreSQL, Redis, AMQP, NATS...).
_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token", "auth", "access_token", "key"})


def mask_url(url: str) -> str:
    """`url` with its password (and any credential-like query parameter) replaced by `***`.

    `redis://:s3cret@host:6379/0?prefix=dg:` -> `redis://:***@host:6379/0?prefix=dg:`; a user name stays (it
    helps to tell deployments apart and is no secret). Anything else is left exactly as written.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    masked = url
    if parts.password:
        userinfo = parts.netloc.rpartition("@")[0]
        user = userinfo.partition(":")[0]
        masked = masked.replace(f"{parts.netloc}", f"{user}:{MASK}@{parts.netloc.rpartition('@')[2]}", 1)
    if parts.query:
        pieces = []
        for piece in parts.query.split("&"):
            key, sep, _ = piece.partition("=")
            pieces.append(f"{key}={MASK}" if sep and key.lower() in _SECRET_PARAMS else piece)
        masked = masked.replace(f"?{parts.query}", "?" + "&".join(pieces), 1)
    return masked


def mask_sid(sid: str | None) -> str:
    """A Twilio SID shortened to its prefix and last four characters: `AC…1a2b` (enough to tell accounts apart)."""
    if not sid:
        return "(not set)"
    if len(sid) <= 8:
        return sid[:2] + "…"
    return f"{sid[:2]}…{sid[-4:]}"


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every occurrence of each secret (longer than three characters) replaced by `***`.

    For messages built from third-party exceptions (a driver may echo its connection URL) before they are shown.
    """
    for secret in sorted({s for s in secrets if s and len(s) > 3}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """The credentials inside a URL (password, credential-like query values), for `scrub`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = []
    if parts.password:
        found.append(parts.password)
    found.extend(value for key, value in parse_qsl(parts.query) if key.lower() in _SECRET_PARAMS)
    return found
