"""Twilio delivery error codes (receipt `error_code`) with their names, meanings and retryability.

Pure lookups over the JSON table shipped beside this module; never performs network I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class DeliveryError:
    code: int
    name: str
    description: str
    retryable: bool


UNKNOWN_DESCRIPTION = "Twilio reported this error code; it is not in the gateway's table of delivery errors."


@cache
def delivery_errors() -> dict[int, DeliveryError]:
    """The whole table, loaded once from `delivery_errors.json`."""
    text = resources.files("delivery_gateway").joinpath("delivery_errors.json").read_text(encoding="utf-8")
    return {
        int(code): DeliveryError(int(code), row["name"], row["description"], bool(row["retryable"]))
        for code, row in json.loads(text).items()
    }


def describe_error(code: int | None) -> DeliveryError | None:
    """The table entry for `code`; an 'unknown' entry for codes not in the table; None for no code (or 0)."""
    if not code:
        return None
    known = delivery_errors().get(int(code))
    if known is not None:
        return known
    return DeliveryError(int(code), f"Twilio error {code}", UNKNOWN_DESCRIPTION, False)
