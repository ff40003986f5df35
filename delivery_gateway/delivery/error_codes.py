"""Twilio delivery error codes (a receipt's `error_code`) with their names, meanings and retryability.

Pure lookups over the JSON table shipped beside this module (error_codes.json); never performs network I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

UNKNOWN_DESCRIPTION = "Twilio reported this error code; it is not in the gateway's table of delivery errors."


@dataclass(frozen=True)
class ErrorCode:
    """One entry of the table: `retryable` says whether sending the message again may succeed."""

    code: int
    name: str
    description: str
    retryable: bool


@cache
def error_codes() -> dict[int, ErrorCode]:
    """The whole table, loaded once from `error_codes.json`."""
    text = resources.files("delivery_gateway.delivery").joinpath("error_codes.json").read_text(encoding="utf-8")
    return {
        int(code): ErrorCode(int(code), row["name"], row["description"], bool(row["retryable"]))
        for code, row in json.loads(text).items()
    }


def describe_error_code(code: int | None) -> ErrorCode | None:
    """The table entry for `code`; an 'unknown' entry for codes not in the table; None for no code (or 0)."""
    if not code:
        return None
    known = error_codes().get(int(code))
    if known is not None:
        return known
    return ErrorCode(int(code), f"Twilio error {code}", UNKNOWN_DESCRIPTION, False)


def resend_may_help(failure_codes: Iterable[int | None]) -> bool:
    """Whether sending a message again may reach the recipients it failed for, given their receipts' error codes.

    False only when every failure carries a code the table knows a resend cannot fix (63016 outside the WhatsApp
    session window, an opt-out...): a failure without a code, or with a code the table does not know, may be
    transient, so it never blocks a resend.
    """
    table = error_codes()
    codes = list(failure_codes)
    return not codes or any(not code or code not in table or table[code].retryable for code in codes)
