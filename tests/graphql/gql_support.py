"""Shared helpers of the GraphQL tests: callers, a `Runner` (fresh context per call), the chat-screen query.

Test support only; never imported by the package. (tests/graphql has no __init__.py on purpose: a `graphql`
package on sys.path would shadow graphql-core when a tool runs from tests/.)
"""

from __future__ import annotations

from typing import Any

from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.kernel.callers import Caller, CallerKind
from delivery_gateway.kernel.records import DeliveryStatus as S
from tests.graphql.fake_upstream import DEFAULT_SERVICE

FULL = Caller(kind=CallerKind.INTERNAL, identity="ops")


def participant_caller(identity: str, service_sid: str | None = DEFAULT_SERVICE) -> Caller:
    """A caller holding an Access Token for `service_sid` (None: a token without one, the default service)."""
    return Caller(kind=CallerKind.PARTICIPANT, identity=identity, service_sid=service_sid)


class Runner:
    def __init__(self, services: GatewayServices) -> None:
        self.services = services
        self.schema = build_schema(services.settings)

    async def __call__(self, query: str, variables: dict[str, Any] | None = None, caller: Caller = FULL):
        context = RequestContext(self.services, caller)
        return await self.schema.execute(query, variable_values=variables, context_value=context)


CHAT_SCREEN = """
query Chat($sid: String!) {
  conversation(sid: $sid) {
    id sid friendlyName state attributes
    participants { id sid identity channel address lastReadMessageIndex }
    messages(last: 50) {
      pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
      edges { cursor node {
        id sid index author body
        participant { sid identity }
        delivery { total sent delivered read failed undelivered }
        ticks
        receipts { sid status errorCode error { code name retryable } channel participant { sid address } }
        recipients { participant { sid } channel status source errorCode updatedAt }
      } }
    }
  }
}
"""


def build_chat(fake, messages: int = 60):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice", last_read=None)
    bob = fake.add_chat(conv, "bob")
    sms = fake.add_binding(conv, "sms", "+15551230001")
    for i in range(messages):
        if i % 3 == 0:  # chat-only message from alice to... everyone: bob (chat) + sms
            fake.add_message(conv, alice, f"m{i}", {sms.sid: (S.DELIVERED, None)})
        elif i % 3 == 1:
            fake.add_message(conv, sms, f"m{i}")  # from SMS: recipients alice, bob (chat only)
        else:
            fake.add_message(conv, bob, f"m{i}", {sms.sid: (S.FAILED, 30003)})
    fake.set_read(conv, bob, messages - 10)
    return conv, alice, bob, sms


def assert_message_failed_alone(result: dict[str, Any], healthy: list[dict[str, Any]], victim: int) -> None:
    """A chat screen whose message `victim` lost its Receipts list: only that message's receipt-derived fields are
    null, each with an UPSTREAM_UNAVAILABLE error at its own path, and every other node equals the healthy answer."""
    errors = result["errors"]
    assert sorted(e["path"][-1] for e in errors) == ["receipts", "recipients", "ticks"]
    assert all(e["path"][:5] == ["conversation", "messages", "edges", victim, "node"] for e in errors)
    assert {e["extensions"]["code"] for e in errors} == {"UPSTREAM_UNAVAILABLE"}
    got = [e["node"] for e in result["data"]["conversation"]["messages"]["edges"]]
    broken = got[victim]
    assert broken["receipts"] is None and broken["recipients"] is None and broken["ticks"] is None
    assert broken["participant"] == healthy[victim]["participant"]
    assert broken["delivery"] == healthy[victim]["delivery"]
    assert got[:victim] + got[victim + 1 :] == healthy[:victim] + healthy[victim + 1 :]


async def post_chat_screen(client: Any, sid: str, api_key: str) -> dict[str, Any]:
    """README's chat screen for `sid` over HTTP through `client` (an httpx client on the app), as an API key's
    caller; the response must be a 200."""
    response = await client.post(
        "/graphql",
        json={"query": CHAT_SCREEN, "variables": {"sid": sid}},
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()
