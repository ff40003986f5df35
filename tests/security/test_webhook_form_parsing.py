"""The webhook endpoint reads URL-encoded bodies itself (one pass): it must read every body exactly as Starlette's
form parser does, or signatures computed over the parameters would disagree with what Twilio signed."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from delivery_gateway.webhooks.parse import MAX_FORM_FIELDS, MalformedWebhook, parse_urlencoded

PIECES = st.sampled_from(["a", "Status", "=", "&", "&&", "+", "%", "%3A", "%2", "%zz", "%C3%A9", "é", " ", ";", "x=y"])


def starlette_form(body: bytes) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
        }
        form = await Request(scope, receive).form()
        return [(k, str(v)) for k, v in form.multi_items()]

    return asyncio.run(read())


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_urlencoded_bodies_read_as_starlette_reads_them(text):
    body = text.encode()
    assert parse_urlencoded(body) == starlette_form(body)


def test_a_body_of_more_than_the_field_limit_is_malformed_and_the_limit_itself_is_read():
    """parse_qsl's `max_num_fields` rule: fields are counted by separators, empty ones included."""
    at_limit = "&".join(["a=1"] * MAX_FORM_FIELDS).encode()
    assert len(parse_urlencoded(at_limit)) == MAX_FORM_FIELDS
    with pytest.raises(MalformedWebhook, match=f"more than {MAX_FORM_FIELDS} fields"):
        parse_urlencoded(at_limit + b"&")
