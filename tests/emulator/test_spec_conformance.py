"""Every emulator operation, in both scopes, answers bodies that validate against Twilio's OpenAPI schemas.

Validates with openapi-schema-validator (OAS 3.0, `nullable`) against the response schemas and checks each
resource carries exactly the spec's fields. Errors, which the spec leaves out, follow Twilio's error shape.
The one documented departure (RELAXED) is applied to the schemas, and nothing else.
"""

from __future__ import annotations

import copy

import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from delivery_gateway.emulator.spec import conversations_spec

TWILIO_ERROR = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string", "format": "uri"},
        "status": {"type": "integer"},
    },
}


RECEIPT_SCHEMAS = (
    "conversations.v1.conversation.conversation_message.conversation_message_receipt",
    "conversations.v1.service.service_conversation.service_conversation_message.service_conversation_message_receipt",
)
# The spec types a receipt's error_code as a non-nullable integer defaulting to 0; Twilio's receipt guide shows
# `"error_code": null` on receipts without error (seed 001), which the emulator answers by default.
RELAXED = {(schema, "error_code"): {"nullable": True} for schema in RECEIPT_SCHEMAS}


def relaxed(spec: dict) -> dict:
    patched = copy.deepcopy(spec)
    for (schema, field), change in RELAXED.items():
        patched["components"]["schemas"][schema]["properties"][field].update(change)
    return patched


def assert_valid(spec: dict, schema: dict, body: object) -> None:
    OAS30Validator({**schema, "components": spec["components"]}, format_checker=oas30_format_checker).validate(body)


def response_schema(spec: dict, method: str, template: str, status: int) -> dict:
    return spec["paths"][template][method.lower()]["responses"][str(status)]["content"]["application/json"]["schema"]


def item_fields(spec: dict, schema: dict) -> set[str]:
    name = schema["$ref"].rsplit("/", 1)[-1]
    return set(spec["components"]["schemas"][name]["properties"])


def operations() -> list[tuple[str, str]]:
    paths = conversations_spec()["paths"]
    return [
        (method.upper(), template)
        for template, item in paths.items()
        for method in item
        if method in ("get", "post", "delete")
    ]


def test_bundled_subset_matches_twilio_spec(spec):
    subset = conversations_spec()
    for template, item in subset["paths"].items():
        for method, operation in item.items():
            assert spec["paths"][template][method] == operation, f"{method} {template}"
    for name, schema in subset["components"]["schemas"].items():
        assert spec["components"]["schemas"][name] == schema, name


def concrete_requests(state, template: str, method: str) -> tuple[str, dict | None, int]:
    """(path, form, expected status) for one operation against the seeded data."""
    store = state.store
    service_scoped = template.startswith("/v1/Services/")
    service_sid = next(s for s in store.services if s != store.default_service.sid) if service_scoped else None
    conversation = next(
        c
        for c in store.conversations.values()
        if c.service_sid == (service_sid or store.default_service.sid) and store.receipts_of(_last(store, c).sid)
    )
    message = _last(store, conversation)
    receipt = store.receipts_of(message.sid)[0]
    participant = next(iter(store.participants[conversation.sid].values()))
    values = {
        "ChatServiceSid": service_sid or "",
        "ConversationSid": conversation.sid,
        "MessageSid": message.sid,
    }
    if template.endswith("/Receipts/{Sid}"):
        values["Sid"] = receipt.sid
    elif template.endswith("/Messages/{Sid}"):
        values["Sid"] = message.sid
    elif template.endswith("/Participants/{Sid}"):
        values["Sid"] = participant.sid
    else:
        values["Sid"] = conversation.sid
    path = template.format(**values)
    if method == "GET":
        return path, None, 200
    if method == "DELETE":
        return path, None, 204
    if template.endswith("/Participants/{Sid}"):
        return path, {"Attributes": '{"vip": true}', "LastReadMessageIndex": "0"}, 200
    if template.endswith("/Webhooks"):
        return path, {"PostWebhookUrl": "https://example.com/post", "Filters": ["onDeliveryUpdated"]}, 200
    if template.endswith("/Conversations"):
        return path, {"FriendlyName": "conformance"}, 201
    if template.endswith("/Messages"):
        return path, {"Author": "agent.x", "Body": "conformance"}, 201
    if template.endswith("/Messages/{Sid}"):
        return path, {"Body": "edited"}, 200
    if template.endswith("/Participants"):
        return (
            path,
            {"MessagingBinding.Address": "+15559990000", "MessagingBinding.ProxyAddress": "+15017122661"},
            201,
        )
    raise AssertionError(f"no request for {method} {template}")


def _last(store, conversation):
    return list(store.messages[conversation.sid].values())[-1]


@pytest.mark.parametrize(("method", "template"), operations())
async def test_operation_response_validates(app, client, spec, method, template):
    state = app.state.emulator
    path, form, status = concrete_requests(state, template, method)
    response = await client.request(method, path, data=form)
    assert response.status_code == status, response.text
    assert state.requests.count(f"{method} {template}") == 1
    if status == 204:
        assert response.content == b"" and "content" not in spec["paths"][template]["delete"]["responses"]["204"]
        return
    body = response.json()
    schema = response_schema(spec, method, template, status)
    assert_valid(relaxed(spec), schema, body)
    if "$ref" in schema:
        assert set(body) == item_fields(spec, schema)
        assert body["url"].startswith("http://emulator.test/v1/")
    else:
        key = body["meta"]["key"]
        assert set(body) == {key, "meta"}
        assert body[key], "seeded lists are never empty"
        item_schema = schema["properties"][key]["items"]
        assert all(set(item) == item_fields(spec, item_schema) for item in body[key])
        assert body["meta"]["url"].startswith(f"http://emulator.test{path}?")


def test_validation_is_not_vacuous(spec):
    schema = response_schema(
        spec, "GET", "/v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts/{Sid}", 200
    )
    good = {"sid": "DY" + "a" * 32, "status": "sent", "error_code": 0, "date_created": "2020-03-23T18:45:17Z"}
    assert_valid(spec, schema, good)
    for bad in (
        {"error_code": None},
        {"status": "queued"},
        {"sid": "XY" + "a" * 32},
        {"date_created": "yesterday"},
    ):
        with pytest.raises(ValidationError):
            assert_valid(spec, schema, {**good, **bad})
    for bad in ({"status": "queued"}, {"error_code": "0"}, {"date_updated": "today"}):  # still strict elsewhere
        with pytest.raises(ValidationError):
            assert_valid(relaxed(spec), schema, {**good, **bad})
    assert_valid(relaxed(spec), schema, {**good, "error_code": None, "date_updated": None})


# Account-level only: the account's Configuration (its default service; the per-service one is another resource),
# and the list of the account's services.
ACCOUNT_ONLY = {("GET", "/v1/Configuration"), ("GET", "/v1/Services")}


async def test_every_operation_is_served_in_both_scopes():
    served = {(m, t) for m, t in operations()}
    assert ACCOUNT_ONLY <= served
    account = {(m, t) for m, t in served if not t.startswith("/v1/Services/")} - ACCOUNT_ONLY
    assert {(m, t.replace("/v1", "/v1/Services/{ChatServiceSid}", 1)) for m, t in account} <= served
    assert len(served) - len(ACCOUNT_ONLY) == 2 * len(account) == 34
    assert {("DELETE", "/v1/Conversations/{ConversationSid}/Participants/{Sid}"),
            ("POST", "/v1/Conversations/{ConversationSid}/Participants/{Sid}"),
            ("DELETE", "/v1/Conversations/{ConversationSid}/Messages/{Sid}")} <= served  # fmt: skip


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/Conversations/CH00000000000000000000000000000000", 404, 20404),
        ("/v1/Services/IS00000000000000000000000000000000/Conversations", 404, 20404),
        ("/v1/Conversations?PageSize=0", 400, 20001),
        ("/v1/Conversations?PageSize=101", 400, 20001),
        ("/v1/Conversations?State=sleeping", 400, 20001),
        ("/v1/Conversations?PageToken=garbage", 400, 20001),
        ("/v1/Unknown", 404, 20404),
    ],
)
async def test_errors_are_twilio_shaped(client, spec, path, status, code):
    response = await client.get(path)
    assert response.status_code == status
    assert_valid(spec, TWILIO_ERROR, response.json())
    assert response.json()["code"] == code
    assert response.json()["status"] == status
    assert response.json()["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


async def test_receipts_page_size_above_spec_limit_is_rejected(app, client, spec):
    store = app.state.emulator.store
    message = next(m for per in store.messages.values() for m in per.values() if store.receipts_of(m.sid))
    base = f"/v1/Conversations/{message.conversation_sid}/Messages/{message.sid}/Receipts"
    assert (await client.get(base, params={"PageSize": 50})).status_code == 200
    response = await client.get(base, params={"PageSize": 100})
    assert response.status_code == 400
    assert_valid(spec, TWILIO_ERROR, response.json())
    assert response.json()["code"] == 20001
    messages = f"/v1/Conversations/{message.conversation_sid}/Messages"
    assert (await client.get(messages, params={"PageSize": 100})).status_code == 200


async def test_bad_create_parameters(app, client):
    conversation = next(iter(app.state.emulator.store.conversations.values()))
    participants = f"/v1/Conversations/{conversation.sid}/Participants"
    invalid_number = await client.post(
        participants,
        data={"MessagingBinding.Address": "555", "MessagingBinding.ProxyAddress": "+15017122661"},
    )
    assert (invalid_number.status_code, invalid_number.json()["code"]) == (400, 21211)
    nothing = await client.post(participants, data={})
    assert (nothing.status_code, nothing.json()["code"]) == (400, 20001)
    duplicate = await client.post(participants, data={"Identity": "agent.alice"})
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, 50433)
    empty_message = await client.post(f"/v1/Conversations/{conversation.sid}/Messages", data={})
    assert (empty_message.status_code, empty_message.json()["code"]) == (400, 20001)
    bad_attributes = await client.post("/v1/Conversations", data={"Attributes": "{not json"})
    assert bad_attributes.status_code == 400
