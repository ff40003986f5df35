"""The one error path, seen through queries: malformed SIDs and upstream failures get their codes per branch.

Never reaches the network; rejected input never reaches upstream.
"""

from __future__ import annotations

from base64 import b64encode

import pytest

from delivery_gateway.upstream.errors import UpstreamRateLimited, UpstreamUnavailable
from tests.graphql.gql_support import CHAT_SCREEN, build_chat


@pytest.mark.parametrize(
    ("query", "variables", "argument"),
    [
        ('{ conversation(sid: "CH123") { sid } }', None, "sid"),  # the argument's name as the caller wrote it
        ('{ conversation(sid: "CH' + "0" * 32 + '", serviceSid: "nope") { sid } }', None, "serviceSid"),
        ('{ message(conversationSid: "CH' + "0" * 32 + '", sid: "XX1") { sid } }', None, "sid"),
        ('{ message(conversationSid: "bad", sid: "IM' + "0" * 32 + '") { sid } }', None, "conversationSid"),
    ],
)
async def test_malformed_sids_rejected_before_upstream(gql, fake, query, variables, argument):
    result = await gql(query, variables)
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    assert result.errors[0].extensions["argument"] == argument
    assert sum(fake.calls.values()) == 0


async def test_upstream_failures_keep_their_codes_per_branch(gql, fake):
    conv, *_ = build_chat(fake, messages=6)
    fake.fail["list_receipts"] = UpstreamRateLimited("slow down", status=429, retry_after=2)
    result = await gql(CHAT_SCREEN, {"sid": conv.record.sid})
    nodes = [e["node"] for e in result.data["conversation"]["messages"]["edges"]]
    assert len(nodes) == 6 and all(n["body"] for n in nodes)
    codes = {e.extensions["code"] for e in result.errors}
    assert codes == {"UPSTREAM_RATE_LIMITED"}
    assert result.errors[0].extensions["retryAfter"] == 2
    sms_authored = [n for n in nodes if n["index"] % 3 == 1]
    assert all(n["recipients"] is not None and n["ticks"] for n in sms_authored)  # chat-only: no receipts needed

    fake.fail = {"list_participants": UpstreamUnavailable("down", status=503)}
    result = await gql(
        "query($s: String!) { conversation(sid: $s) { sid participants { sid } } }", {"s": conv.record.sid}
    )
    assert result.data["conversation"]["sid"] == conv.record.sid
    assert result.data["conversation"]["participants"] is None
    assert result.errors[0].extensions["code"] == "UPSTREAM_UNAVAILABLE"


@pytest.mark.parametrize(
    ("field", "argument"),
    [
        ("messages(first: 500) { edges { cursor } }", "first"),
        ("messages(last: -1) { edges { cursor } }", "last"),
        ('messages(after: "not-a-cursor") { edges { cursor } }', "after"),
        ("rollup(window: 0) { messages }", "window"),
    ],
)
async def test_bad_arguments_are_named(gql, fake, field, argument):
    """An argument a client can fix is named in `extensions.argument`, next to the message that explains it."""
    conv, *_ = build_chat(fake, messages=2)
    result = await gql(f'{{ conversation(sid: "{conv.record.sid}") {{ {field} }} }}')
    assert result.errors, result.data
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT", "argument": argument}
    assert result.errors[0].message.startswith(argument)


async def test_bad_global_id_is_named(gql, fake):
    mangled = b64encode(b"Conversation:no-slashes-here").decode()  # a type this API has, an ID it never made
    result = await gql(f'{{ node(id: "{mangled}") {{ id }} }}')
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT", "argument": "id"}
    assert sum(fake.calls.values()) == 0
