"""The one access rule: participant callers see their own conversations only, FORBIDDEN otherwise, existence included.

Never reaches the network; a refusal costs nothing but the access check.
"""

from __future__ import annotations

from tests.graphql.gql_support import build_chat, participant_caller


async def test_participant_caller_access(gql, fake):
    conv, *_ = build_chat(fake, messages=3)
    other = fake.add_conversation("other")
    fake.add_chat(other, "zed")
    query = "query($s: String!) { conversation(sid: $s) { sid messages(last: 5) { edges { node { sid } } } } }"

    ok = await gql(query, {"s": conv.record.sid}, caller=participant_caller("alice"))
    assert ok.errors is None and ok.data["conversation"]["sid"] == conv.record.sid

    fake.calls.clear()
    denied = await gql(query, {"s": other.record.sid}, caller=participant_caller("alice"))
    assert denied.data["conversation"] is None
    assert denied.errors[0].extensions["code"] == "FORBIDDEN"
    assert dict(fake.calls) == {"list_participants": 1}  # nothing but the access check reached upstream

    missing = await gql(query, {"s": "CH" + "e" * 32}, caller=participant_caller("alice"))
    assert missing.errors[0].extensions["code"] == "FORBIDDEN"  # existence does not leak

    listed = await gql(
        "{ conversations(first: 10) { edges { node { sid } } pageInfo { hasNextPage } } }",
        caller=participant_caller("alice"),
    )
    assert [e["node"]["sid"] for e in listed.data["conversations"]["edges"]] == [conv.record.sid]
    full = await gql("{ conversations { edges { node { sid } } } }")
    assert len(full.data["conversations"]["edges"]) == 2
