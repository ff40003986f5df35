"""The slice of Twilio's Conversations v1 OpenAPI description the emulator serves, bundled as package data.

Read-only lookups (field lists, list keys, PageSize limits); never changes the document or uses the network.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SPEC_FILE = "twilio_conversations_v1_subset.json"


@cache
def conversations_spec() -> dict[str, Any]:
    """The bundled subset of twilio-oai's twilio_conversations_v1.json (operations the emulator serves)."""
    text = resources.files("delivery_gateway.emulator").joinpath(SPEC_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def resource_fields(schema_name: str) -> tuple[str, ...]:
    """Property names of a component schema, in the spec's order: exactly what a representation carries."""
    return tuple(conversations_spec()["components"]["schemas"][schema_name]["properties"])


def operation(method: str, template: str) -> dict[str, Any]:
    return conversations_spec()["paths"][template][method.lower()]


@cache
def page_size_limit(method: str, template: str) -> int:
    """The PageSize maximum the spec sets for a list operation (Receipts 50, others 100)."""
    for parameter in operation(method, template).get("parameters", []):
        if parameter["name"] == "PageSize":
            return int(parameter["schema"]["maximum"])
    raise KeyError(f"{method} {template} is not a list operation")


@cache
def list_key(method: str, template: str) -> str:
    """The key of the item array in a list response (`conversations`, `delivery_receipts`, ...)."""
    schema = operation(method, template)["responses"]["200"]["content"]["application/json"]["schema"]
    return next(name for name in schema["properties"] if name != "meta")


@cache
def enum_values(schema_name: str) -> tuple[str, ...]:
    return tuple(conversations_spec()["components"]["schemas"][schema_name]["enum"])
