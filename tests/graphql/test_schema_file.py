"""`schema.graphql` must be exactly what the code generates (sorted SDL), and the public names must stay.

Never rewrites the file: regenerate with `python -m delivery_gateway.graphql.export > schema.graphql`.
"""

from __future__ import annotations

from pathlib import Path

from delivery_gateway.graphql.schema import build_schema, schema_sdl
from delivery_gateway.kernel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_schema_file_in_sync():
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == schema_sdl(), (
        "schema.graphql is stale: run `python -m delivery_gateway.graphql.export > schema.graphql`"
    )


def test_public_contract_names():
    schema = build_schema(Settings(_env_file=None))._schema
    fields = {name: set(t.fields) for name, t in schema.type_map.items() if hasattr(t, "fields")}
    assert {"conversation", "conversations", "message", "node"} <= fields["Query"]
    assert {
        "sid",
        "serviceSid",
        "friendlyName",
        "uniqueName",
        "state",
        "dateCreated",
        "dateUpdated",
        "attributes",
        "participants",
        "messages",
        "rollup",
    } <= fields["Conversation"]
    assert set(schema.type_map["Conversation"].fields["messages"].args) == {
        "first",
        "after",
        "last",
        "before",
    }
    assert {
        "sid",
        "index",
        "author",
        "body",
        "media",
        "attributes",
        "dateCreated",
        "dateUpdated",
        "participant",
        "delivery",
        "receipts",
        "recipients",
        "ticks",
    } <= fields["Message"]
    assert {"total", "sent", "delivered", "read", "failed", "undelivered"} <= fields["DeliverySummary"]
    assert {
        "sid",
        "status",
        "errorCode",
        "error",
        "channelMessageSid",
        "channel",
        "participant",
        "dateCreated",
        "dateUpdated",
    } <= fields["DeliveryReceipt"]
    assert {"code", "name", "description", "retryable"} <= fields["DeliveryError"]
    assert {
        "sid",
        "identity",
        "channel",
        "address",
        "proxyAddress",
        "lastReadMessageIndex",
        "lastReadAt",
        "attributes",
    } <= fields["Participant"]
    assert {"participant", "status", "source", "errorCode", "updatedAt"} <= fields["Recipient"]
    assert set(schema.type_map["Ticks"].values) == {"PENDING", "SENT", "DELIVERED", "READ", "FAILED"}
    assert set(schema.type_map["DeliveryAmount"].values) == {"ALL", "SOME", "NONE"}
    assert {"CHAT", "SMS", "WHATSAPP", "OTHER"} <= set(schema.type_map["Channel"].values)
    assert "FAILED as soon as any recipient failed" in schema.type_map["Ticks"].description
