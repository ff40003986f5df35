"""The emulated Conversations v1 REST operations, account-scoped and under /v1/Services/{ChatServiceSid}.

Handlers validate parameters and read or change the store (operation.py does the shared plumbing); never
post webhooks themselves, only queue them on the dispatcher.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from starlette.datastructures import QueryParams
from starlette.routing import Route

from delivery_gateway.emulator import spec
from delivery_gateway.emulator.errors import bad_request, conflict, not_found
from delivery_gateway.emulator.models import SMS, WHATSAPP_PREFIX, MessagingBinding, Participant
from delivery_gateway.emulator.operation import Call, Handler, twilio_operation
from delivery_gateway.emulator.representations import (
    configuration_json,
    conversation_json,
    message_json,
    participant_json,
    receipt_json,
    service_json,
    webhooks_json,
)
from delivery_gateway.emulator.store import UNSET
from delivery_gateway.emulator.webhook_events import (
    ON_CONVERSATION_ADDED,
    ON_MESSAGE_REMOVED,
    ON_MESSAGE_UPDATED,
    ON_PARTICIPANT_ADDED,
    ON_PARTICIPANT_REMOVED,
    ON_PARTICIPANT_UPDATED,
    conversation_added_params,
    message_removed_params,
    message_updated_params,
    participant_added_params,
    participant_removed_params,
    participant_updated_params,
)

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
SERVICE_PREFIX = "/v1/Services/{ChatServiceSid}"


def _attributes(form: QueryParams) -> str:
    """The Attributes parameter of a create: "{}" when absent (Twilio's default for every resource)."""
    return _attributes_update(form) or "{}"


def _attributes_update(form: QueryParams) -> str | None:
    """The Attributes parameter, which Twilio requires to be structurally valid JSON; None when absent."""
    attributes = form.get("Attributes")
    if attributes is not None:
        try:
            json.loads(attributes)
        except ValueError:
            raise bad_request("Invalid Attributes: must be a structurally valid JSON string") from None
    return attributes


def _e164(value: str, parameter: str) -> str:
    if not E164.match(value.removeprefix(WHATSAPP_PREFIX)):
        raise bad_request(f"Invalid {parameter}: {value}", code=21211)
    return value


def _date(form: QueryParams, name: str) -> object:
    """An ISO-8601 date parameter: UNSET when absent, None for an empty value, else a datetime (400 if not one)."""
    if name not in form:
        return UNSET
    text = form[name]
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise bad_request(f"Invalid {name}: {text!r} is not an ISO-8601 date") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _enum(value: str | None, schema_name: str, parameter: str) -> str | None:
    if value is not None and value not in spec.enum_values(schema_name):
        raise bad_request(f"Invalid {parameter}: {value!r}")
    return value


# Conversations.


async def list_conversations(call: Call):
    state = _enum(call.query.get("State"), "conversation_enum_state", "State")
    items = [c for c in call.store.conversations_in(call.service_sid) if state is None or c.state == state]
    return call.page(items, lambda c: c.seq, conversation_json, filters={"State": state} if state else None), 200


async def create_conversation(call: Call):
    form = await call.form()
    unique_name = form.get("UniqueName")
    if unique_name and call.store.find_conversation(call.service_sid, unique_name):
        raise conflict(f"Conversation with provided unique name {unique_name} already exists", 50353)
    conversation = call.store.create_conversation(
        service_sid=call.service_sid,
        friendly_name=form.get("FriendlyName"),
        unique_name=unique_name,
        attributes=_attributes(form),
        state=_enum(form.get("State"), "conversation_enum_state", "State") or "active",
        messaging_service_sid=form.get("MessagingServiceSid"),
    )
    call.emit(conversation.service_sid, ON_CONVERSATION_ADDED, conversation_added_params(call.store, conversation))
    return conversation_json(call.store, call.scope, conversation), 201


async def fetch_conversation(call: Call):
    return conversation_json(call.store, call.scope, call.conversation()), 200


# Messages.


async def list_messages(call: Call):
    conversation = call.conversation()
    order = _enum(call.query.get("Order"), "conversation_message_enum_order_type", "Order") or "asc"
    items = list(call.store.messages[conversation.sid].values())
    descending = order == "desc"
    if descending:
        items.reverse()
    filters = {"Order": order} if "Order" in call.query else None
    return call.page(items, lambda m: m.index, message_json, descending=descending, filters=filters), 200


async def create_message(call: Call):
    conversation = call.conversation()
    form = await call.form()
    body, media_sid, content_sid = form.get("Body"), form.get("MediaSid"), form.get("ContentSid")
    if not (body or media_sid or content_sid):
        raise bad_request("Missing required parameter Body, MediaSid or ContentSid in the post body")
    # The REST spelling of media, as the spec's message examples show it (sid, size, content_type, filename).
    media = [{"sid": media_sid, "size": 0, "content_type": "image/jpeg", "filename": None}] if media_sid else None
    message, _ = call.store.create_message(
        conversation.sid,
        author=form.get("Author") or "system",
        body=body,
        attributes=_attributes(form),
        media=media,
        content_sid=content_sid,
        source="API",
        announce=call.webhooks_enabled,
    )
    return message_json(call.store, call.scope, message), 201


async def fetch_message(call: Call):
    conversation = call.conversation()
    return message_json(call.store, call.scope, call.message(conversation, call.path["Sid"])), 200


async def update_message(call: Call):
    conversation = call.conversation()
    message = call.message(conversation, call.path["Sid"])
    form = await call.form()
    call.store.update_message(
        message, body=form.get("Body"), author=form.get("Author"), attributes=_attributes_update(form)
    )
    params = message_updated_params(call.store, message, sid_key=call.state.config.webhook_media_sid_key)
    call.emit(conversation.service_sid, ON_MESSAGE_UPDATED, params)
    return message_json(call.store, call.scope, message), 200


async def delete_message(call: Call):
    """The spec's DeleteConversationMessage: 204. The index is not reused, so later messages skip it."""
    conversation = call.conversation()
    message = call.store.delete_message(call.message(conversation, call.path["Sid"]))
    removed = call.store.clock()
    sid_key = call.state.config.webhook_media_sid_key
    params = message_removed_params(call.store, message, removed, sid_key=sid_key)
    call.emit(conversation.service_sid, ON_MESSAGE_REMOVED, params)
    return None, 204


# Receipts.


async def list_receipts(call: Call):
    conversation = call.conversation()
    message = call.message(conversation, call.path["MessageSid"])
    return call.page(call.store.receipts_of(message.sid), lambda r: r.seq, receipt_json), 200


async def fetch_receipt(call: Call):
    conversation = call.conversation()
    message = call.message(conversation, call.path["MessageSid"])
    receipt = call.store.receipts.get(message.sid, {}).get(call.path["Sid"])
    if receipt is None:
        raise not_found(call.request.url.path)
    return receipt_json(call.store, call.scope, receipt), 200


# Participants.


async def list_participants(call: Call):
    conversation = call.conversation()
    return call.page(list(call.store.participants[conversation.sid].values()), lambda p: p.seq, participant_json), 200


async def create_participant(call: Call):
    conversation = call.conversation()
    form = await call.form()
    identity = form.get("Identity") or None
    address = form.get("MessagingBinding.Address") or None
    proxy_address = form.get("MessagingBinding.ProxyAddress") or None
    projected_address = form.get("MessagingBinding.ProjectedAddress") or None
    if not identity and not address:
        raise bad_request("Missing required parameter Identity or MessagingBinding.Address in the post body")
    if address:
        _e164(address, "'To' Phone Number")
        if not proxy_address:
            raise bad_request("Missing required parameter MessagingBinding.ProxyAddress in the post body")
    if projected_address:
        # Group MMS: "Communication mask for the Conversation participant with Identity" (spec, createGmms).
        if not identity:
            raise bad_request("MessagingBinding.ProjectedAddress needs Identity (a Group MMS participant)")
        _e164(projected_address, "MessagingBinding.ProjectedAddress")
    store = call.store
    if store.find_participant_by(conversation.sid, identity=identity, address=address):
        raise conflict("Participant already exists", 50433)
    participant = store.create_participant(
        conversation.sid,
        identity=identity,
        address=address,
        proxy_address=proxy_address if address else None,
        projected_address=projected_address if not address else None,
        attributes=_attributes(form),
        role_sid=form.get("RoleSid"),
    )
    call.emit(conversation.service_sid, ON_PARTICIPANT_ADDED, participant_added_params(store, participant))
    return participant_json(store, call.scope, participant), 201


def _participant(call: Call) -> Participant:
    conversation = call.conversation()
    participant = call.store.find_participant(conversation.sid, call.path["Sid"])
    if participant is None:
        raise not_found(call.request.url.path)
    return participant


async def fetch_participant(call: Call):
    return participant_json(call.store, call.scope, _participant(call)), 200


async def update_participant(call: Call):
    """The spec's UpdateConversationParticipant. LastReadMessageIndex may move back (marking messages unread)
    and may be cleared with an empty value (the spec types it nullable)."""
    participant = _participant(call)
    form = await call.form()
    index: object = UNSET
    if "LastReadMessageIndex" in form:
        text = form["LastReadMessageIndex"]
        if text in ("", "null"):
            index = None
        else:
            try:
                index = int(text)
            except ValueError:
                raise bad_request(f"Invalid LastReadMessageIndex: {text!r} is not an integer") from None
            if index < 0:
                raise bad_request(f"Invalid LastReadMessageIndex: {text}")
    binding = participant.binding
    if "MessagingBinding.ProxyAddress" in form and binding is not None and binding.address is not None:
        binding.proxy_address = form["MessagingBinding.ProxyAddress"] or None  # "'null' value will remove it"
    if "MessagingBinding.ProjectedAddress" in form and participant.identity is not None:
        projected = form["MessagingBinding.ProjectedAddress"] or None  # "'null' value will remove it"
        if projected is not None:
            _e164(projected, "MessagingBinding.ProjectedAddress")
        participant.binding = MessagingBinding(type=SMS, projected_address=projected) if projected else None
    attributes = _attributes_update(form)
    role_sid = form.get("RoleSid")
    # The spec's UpdateConversationParticipant takes Identity ("non-null if (and only if) the participant is using
    # the Conversations SDK"): a chat participant may be renamed; an SMS or WhatsApp one cannot take one.
    identity = form.get("Identity") or None
    if identity is not None and participant.identity is None:
        raise bad_request("Identity can only be changed for a chat participant")
    if identity is not None and identity != participant.identity:
        if call.store.find_participant_by(participant.conversation_sid, identity=identity, address=None):
            raise conflict("Participant already exists", 50433)
    updated = _date(form, "DateUpdated")
    call.store.update_participant(
        participant,
        attributes=attributes if attributes is not None else UNSET,
        role_sid=role_sid if role_sid is not None else UNSET,
        identity=identity if identity is not None else UNSET,
        last_read_message_index=index,
        last_read_timestamp=_date(form, "LastReadTimestamp"),
        when=updated if isinstance(updated, datetime) else None,
    )
    service_sid = call.store.conversations[participant.conversation_sid].service_sid
    call.emit(service_sid, ON_PARTICIPANT_UPDATED, participant_updated_params(call.store, participant))
    return participant_json(call.store, call.scope, participant), 200


async def delete_participant(call: Call):
    """The spec's DeleteConversationParticipant: 204. The participant leaves the list; its receipts stay."""
    participant = call.store.remove_participant(_participant(call))
    service_sid = call.store.conversations[participant.conversation_sid].service_sid
    call.emit(service_sid, ON_PARTICIPANT_REMOVED, participant_removed_params(call.store, participant))
    return None, 204


# The account's configuration (account-level only: the service-level one is another resource).


async def fetch_configuration(call: Call):
    return configuration_json(call.store, call.scope), 200


async def list_services(call: Call):
    """The account's Conversation Services, oldest first (the spec's ListService: "Retrieve a list of all
    conversation services on your account")."""
    services = list(call.store.services.values())
    order = {service.sid: position for position, service in enumerate(services)}
    return call.page(services, lambda service: order[service.sid], service_json), 200


# Webhook configuration (account-level and service-level).


async def fetch_webhooks(call: Call):
    settings = call.store.webhook_settings(call.scope.service_sid)
    return webhooks_json(call.store, call.scope, settings), 200


async def update_webhooks(call: Call):
    form = await call.form()
    settings = call.store.webhook_settings(call.scope.service_sid)
    if "PostWebhookUrl" in form:
        settings.post_webhook_url = form["PostWebhookUrl"] or None
    if "PreWebhookUrl" in form:
        settings.pre_webhook_url = form["PreWebhookUrl"] or None
    if "Method" in form:
        method = form["Method"].upper()
        if method not in ("GET", "POST"):
            raise bad_request(f"Invalid Method: {form['Method']!r}")
        settings.method = method
    if "Filters" in form:
        settings.filters = [f for f in form.getlist("Filters") if f]
    if "Target" in form:
        settings.target = _enum(form["Target"], "configuration_webhook_enum_target", "Target") or "webhook"
    return webhooks_json(call.store, call.scope, settings), 200


CONVERSATION_OPERATIONS: list[tuple[str, str, Handler]] = [
    ("GET", "", list_conversations),
    ("POST", "", create_conversation),
    ("GET", "/{Sid}", fetch_conversation),
    ("GET", "/{ConversationSid}/Messages", list_messages),
    ("POST", "/{ConversationSid}/Messages", create_message),
    ("GET", "/{ConversationSid}/Messages/{Sid}", fetch_message),
    ("POST", "/{ConversationSid}/Messages/{Sid}", update_message),
    ("DELETE", "/{ConversationSid}/Messages/{Sid}", delete_message),
    ("GET", "/{ConversationSid}/Messages/{MessageSid}/Receipts", list_receipts),
    ("GET", "/{ConversationSid}/Messages/{MessageSid}/Receipts/{Sid}", fetch_receipt),
    ("GET", "/{ConversationSid}/Participants", list_participants),
    ("POST", "/{ConversationSid}/Participants", create_participant),
    ("GET", "/{ConversationSid}/Participants/{Sid}", fetch_participant),
    ("POST", "/{ConversationSid}/Participants/{Sid}", update_participant),
    ("DELETE", "/{ConversationSid}/Participants/{Sid}", delete_participant),
]


def emulator_routes() -> list[Route]:
    """Every operation, each under the spec's own path template (which is also its request-counter key)."""
    routes = []
    for prefix in ("/v1", SERVICE_PREFIX):
        for method, suffix, handler in CONVERSATION_OPERATIONS:
            routes.append(twilio_operation(method, f"{prefix}/Conversations{suffix}", handler))
        routes.append(twilio_operation("GET", f"{prefix}/Configuration/Webhooks", fetch_webhooks))
        routes.append(twilio_operation("POST", f"{prefix}/Configuration/Webhooks", update_webhooks))
    routes.append(twilio_operation("GET", "/v1/Configuration", fetch_configuration))
    routes.append(twilio_operation("GET", "/v1/Services", list_services))
    return routes
