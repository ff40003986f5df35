"""Global IDs: every node type round-trips through `node(id)` under the same access rules; malformed IDs are refused.

Never reaches the network.
"""

from __future__ import annotations

import base64

import pytest

from tests.graphql.gql_support import build_chat, participant_caller


async def test_global_ids_round_trip(gql, fake):
    conv, *_ = build_chat(fake, messages=2)
    result = await gql(
        "query($s: String!) { conversation(sid: $s) { id participants { id identity } "
        "messages(last: 1) { edges { node { id sid } } } } }",
        {"s": conv.record.sid},
    )
    data = result.data["conversation"]
    ids = [data["id"], data["participants"][0]["id"], data["messages"]["edges"][0]["node"]["id"]]
    node = (
        "query($id: ID!) { node(id: $id) { __typename id ... on Conversation { sid } "
        "... on Participant { identity } ... on Message { sid } } }"
    )
    typenames = []
    for gid in ids:
        r = await gql(node, {"id": gid})
        assert r.errors is None, r.errors
        assert r.data["node"]["id"] == gid
        typenames.append(r.data["node"]["__typename"])
    assert typenames == ["Conversation", "Participant", "Message"]
    denied = await gql(node, {"id": ids[2]}, caller=participant_caller("mallory"))
    assert denied.data["node"] is None and denied.errors[0].extensions["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    "gid",
    [
        "garbage",
        base64.b64encode(b"Nope:1").decode(),
        base64.b64encode(b"Conversation:x/y/z").decode(),
        base64.b64encode(b"Message:-/CHbad/IMbad").decode(),
    ],
)
async def test_malformed_global_ids(gql, fake, gid):
    result = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": gid})
    assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    assert sum(fake.calls.values()) == 0
