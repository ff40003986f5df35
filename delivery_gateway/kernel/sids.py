"""Twilio SID syntax: a two-letter prefix and 32 hex digits, and the prefixes this gateway handles.

Pure functions only; never performs I/O. Malformed SIDs are caught here, before any upstream call.
"""

from __future__ import annotations

import re
import secrets

from delivery_gateway.kernel.errors import CodedError

ACCOUNT = "AC"
SERVICE = "IS"
CONVERSATION = "CH"
MESSAGE = "IM"
PARTICIPANT = "MB"
RECEIPT = "DY"

_SID = re.compile(r"^([A-Z]{2})[0-9a-f]{32}$")


def is_sid(value: object, prefix: str | None = None) -> bool:
    """True when `value` is a well-formed SID (optionally with the given prefix)."""
    if not isinstance(value, str):
        return False
    match = _SID.match(value)
    return match is not None and (prefix is None or match.group(1) == prefix)


def new_sid(prefix: str) -> str:
    """A fresh random SID with `prefix`; used by the emulator and tests."""
    return prefix + secrets.token_hex(16)


class InvalidSid(CodedError, ValueError):
    """A SID argument that can never name a Twilio resource; raised before any upstream call."""

    code = "BAD_USER_INPUT"

    def __init__(self, argument: str, value: object, prefix: str) -> None:
        super().__init__(f"{argument}: {value!r} is not a valid SID (expected '{prefix}' followed by 32 hex digits)")
        self.argument = argument
        self.value = value
        self.prefix = prefix


def require_sid(argument: str, value: str, prefix: str) -> str:
    if not is_sid(value, prefix):
        raise InvalidSid(argument, value, prefix)
    return value
