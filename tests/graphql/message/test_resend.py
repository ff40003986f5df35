"""`resendMessage`: only failed or undelivered messages are resent, once unless forced, linked both ways.

Over the fake upstream and an in-memory ledger; asserts the upstream calls each resend costs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.settings import Settings
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import Runner, participant_caller


@pytest.fixture
async def gql(settings: Settings, fake: FakeConversations) -> AsyncIterator[Runner]:
    """The runner over a started in-memory ledger: resends are recorded there."""
    services = GatewayServices(settings=settings, upstream=fake)
    await services.ledger.start()
    try:
        yield Runner(services)
    finally:
        await services.ledger.close()


RESEND = """
mutation($c: String!, $m: String!, $force: Boolean! = false) {
  resendMessage(conversationSid: $c, messageSid: $m, force: $force) { sid body attributes resendOf { sid } }
}
"""
LINKS = (
    "query($c: String!, $m: String!) { message(conversationSid: $c, sid: $m) { resentAs { sid } resendOf { sid } } }"
)


def chat_with_sms(fake, status: S, code: int | None = None):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    sms = fake.add_binding(conv, "sms", "+15550001")
    message = fake.add_message(conv, alice, "hello", {sms.sid: (status, code)})
    return conv.record.sid, message.sid


async def test_a_failed_message_is_resent_once_and_linked_both_ways(gql, fake):
    conv, old = chat_with_sms(fake, S.UNDELIVERED, 30003)  # unreachable handset: a resend may reach it
    first = await gql(RESEND, {"c": conv, "m": old})
    assert first.errors is None, first.errors
    new = first.data["resendMessage"]
    assert new["body"] == "hello" and new["attributes"] == {"resendOf": old}
    assert new["resendOf"] == {"sid": old}
    # The original read fresh (a resend is never decided on a cached summary), once more for `resendOf`; its
    # receipts read fresh for their error codes (the ledger has none); one POST, asking for its webhooks.
    assert fake.calls["fetch_message"] == 2 and fake.calls["create_message"] == 1
    assert fake.calls["list_receipts"] == 1 and fake.created_with_webhooks == [True]

    again = await gql(RESEND, {"c": conv, "m": old})
    assert again.errors[0].extensions["code"] == "FAILED_PRECONDITION" and new["sid"] in again.errors[0].message
    forced = await gql(RESEND, {"c": conv, "m": old, "force": True})
    assert forced.errors is None and fake.calls["create_message"] == 2

    links = await gql(LINKS, {"c": conv, "m": old})
    resent = [m["sid"] for m in links.data["message"]["resentAs"]]
    assert resent == [new["sid"], forced.data["resendMessage"]["sid"]]
    assert links.data["message"]["resendOf"] is None


async def test_only_failed_or_undelivered_messages_are_resent(gql, fake):
    conv, delivered = chat_with_sms(fake, S.DELIVERED)
    result = await gql(RESEND, {"c": conv, "m": delivered})
    assert result.data is None and result.errors[0].extensions["code"] == "FAILED_PRECONDITION"
    assert json.dumps({"total": 1}).rstrip("}") in result.errors[0].message  # the summary it decided on
    assert "create_message" not in fake.calls


async def test_resend_is_authorized_and_validated_before_upstream(gql, fake):
    conv, old = chat_with_sms(fake, S.FAILED, 30007)
    fake.calls.clear()
    bad = await gql(RESEND, {"c": conv, "m": "IM-nope"})
    assert bad.errors[0].extensions == {"code": "BAD_USER_INPUT", "argument": "messageSid"}
    assert fake.calls.total() == 0
    denied = await gql(RESEND, {"c": conv, "m": old}, caller=participant_caller("mallory"))
    assert denied.errors[0].extensions["code"] == "FORBIDDEN"
    assert dict(fake.calls) == {"list_participants": 1}
