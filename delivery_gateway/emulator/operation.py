"""How one emulated REST operation runs: counted, delayed, authenticated, fault-injected, Twilio-shaped.

The plumbing shared by every handler in routes.py; never knows what a particular operation does.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from delivery_gateway.emulator import errors, spec
from delivery_gateway.emulator.errors import TwilioError, not_found
from delivery_gateway.emulator.faults import DroppedConnection
from delivery_gateway.emulator.models import Conversation, Message
from delivery_gateway.emulator.paging import page_envelope, parse_page_request, slice_page
from delivery_gateway.emulator.representations import ResourceScope
from delivery_gateway.emulator.store import ConversationStore

if TYPE_CHECKING:
    from delivery_gateway.emulator.app import EmulatorState

Renderer = Callable[[ConversationStore, ResourceScope, Any], dict[str, Any]]


@dataclass
class Call:
    """One REST call, resolved: the emulator state, path parameters, the store scope and the URL scope."""

    request: Request
    state: EmulatorState
    method: str
    template: str
    path: dict[str, str]
    service_sid: str  # the service whose data this call sees (the default one for account-scoped routes)
    scope: ResourceScope

    @property
    def store(self) -> ConversationStore:
        return self.state.store

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    async def form(self) -> QueryParams:
        """The request's parameters, as text: every request body of Twilio's Conversations API is
        `application/x-www-form-urlencoded` (twilio-oai: each operation's requestBody content type), so no
        parameter is ever a file; repeated keys (`Filters`) stay readable with `getlist`."""
        return QueryParams((await self.request.body()).decode("utf-8", "replace"))

    @property
    def webhooks_enabled(self) -> bool:
        """Whether this REST action fires its webhooks: Twilio requires `X-Twilio-Webhook-Enabled: true`."""
        header = self.request.headers.get("x-twilio-webhook-enabled", "").lower() == "true"
        return header or self.state.config.rest_webhooks_without_header

    def emit(self, service_sid: str, event_type: str, params: dict[str, str]) -> None:
        """Fire a REST action's own webhook, which Twilio does only on request: "only actions from SDK-driven
        clients ... or SMS-based Participants will cause webhooks without further action on your part ... add a
        header `X-Twilio-Webhook-Enabled=true`" (Conversations Webhooks, "Triggering Webhooks for REST API
        Events")."""
        if self.webhooks_enabled:
            self.state.webhooks.emit(service_sid, event_type, params)

    def conversation(self) -> Conversation:
        sid = self.path.get("ConversationSid") or self.path["Sid"]
        conversation = self.store.find_conversation(self.service_sid, sid)
        if conversation is None:
            raise not_found(self.request.url.path)
        return conversation

    def message(self, conversation: Conversation, sid: str) -> Message:
        message = self.store.find_message(conversation.sid, sid)
        if message is None:
            raise not_found(self.request.url.path)
        return message

    def page(
        self,
        items: list,
        sort_key: Callable[[Any], int],
        render: Renderer,
        *,
        descending: bool = False,
        filters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The list response for `items` (already in order), paged as the spec bounds this operation."""
        request = parse_page_request(self.query, spec.page_size_limit(self.method, self.template))
        page = slice_page(items, sort_key, request, descending=descending)
        return page_envelope(
            key=spec.list_key(self.method, self.template),
            items_json=[render(self.store, self.scope, item) for item in page.items],
            collection_url=f"{self.scope.base_url}{self.request.url.path}",
            filters=filters or {},
            request=request,
            page=page,
        )


# A handler answers (body, status); a None body is an empty response (204 of the spec's DELETE operations).
Handler = Callable[[Call], Awaitable[tuple[dict[str, Any] | None, int]]]


def authenticate(request: Request, state: EmulatorState) -> None:
    """HTTP Basic with the account SID and auth token, or with an API key: 401/20003 otherwise.

    Twilio "supports HTTP Basic authentication" with either "API Key | API Key Secret" (its recommended way) or
    "Account SID | AuthToken" (https://www.twilio.com/docs/api/rest, "Twilio API authentication"); an API key
    (SK...) authenticates as its account, so `config.api_keys` holds the key SIDs and secrets of this account.
    """
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise errors.unauthorized()
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise errors.unauthorized() from None
    config = state.config
    expected = {config.account_sid: config.auth_token, **config.api_keys}.get(username)
    if expected is None or not secrets.compare_digest(password.encode(), expected.encode()):
        raise errors.unauthorized()


def twilio_operation(method: str, template: str, handler: Handler) -> Route:
    """A route for one spec operation: counted, delayed, authenticated, fault-injected, Twilio-shaped."""
    route_key = f"{method} {template}"

    async def endpoint(request: Request) -> Response | DroppedConnection:
        state: EmulatorState = request.app.state.emulator
        state.requests.record(route_key)
        state.requests.started()
        try:
            response = await _handle(request, state)
            if state.faults.connection_reset():
                return DroppedConnection(response)
            return response
        finally:
            state.requests.finished()

    async def _handle(request: Request, state: EmulatorState) -> Response:
        try:
            await state.faults.delay()
            authenticate(request, state)
            failure = state.faults.failure()
            if failure is not None:
                raise failure
            path = dict(request.path_params)
            service_sid = path.get("ChatServiceSid")
            if service_sid is not None and service_sid not in state.store.services:
                raise not_found(request.url.path)
            base_url = str(request.base_url).rstrip("/")
            call = Call(
                request=request,
                state=state,
                method=method,
                template=template,
                path=path,
                service_sid=service_sid or state.store.default_service.sid,
                scope=ResourceScope(base_url, service_sid, state.config.error_code_when_none),
            )
            body, status = await handler(call)
        except TwilioError as error:
            return error.response()
        if body is None:
            return Response(status_code=status)
        return JSONResponse(body, status_code=status)

    return Route(template, endpoint, methods=[method], name=route_key)
