"""The ASGI GraphQL endpoint (HTTP, WebSocket, SSE) over the gateway schema, one fresh RequestContext per request.

HTTP requests arrive authenticated (the auth middleware puts the Caller on the ASGI scope); WebSockets
authenticate here, in Strawberry's `on_ws_connect`, from their `connection_init` payload. Never runs an
operation for a socket that has not been acknowledged or a request without a caller, never shares loaders
between requests, and answers every client error GraphQL-shaped (`errors[].extensions.code`), never as plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from datetime import timedelta
from functools import partial
from json import JSONDecodeError
from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import StreamResult
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage, Message
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ConnectionInitMessage as LegacyConnectionInitMessage
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType
from strawberry.utils.aio import aclosing

from delivery_gateway.auth import AuthenticationFailed, Authenticator, is_ide_page_request, send_unauthorized
from delivery_gateway.graphql.context import GatewayServices, MissingCaller, RequestContext
from delivery_gateway.graphql.live.hub import HubConnection, HubMember, SubscriptionRequest, admit, group_of
from delivery_gateway.graphql.response_cache import (
    FINGERPRINT_SCOPE_KEY,
    PENDING_SCOPE_KEY,
    Pending,
    ResponseCacheFront,
    ServedFromCache,
    read_body,
    send_body,
    wants_stream,
)
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.http.guards import OriginPolicy
from delivery_gateway.http.transport_send import transport_send
from delivery_gateway.http.websocket import frame_writer
from delivery_gateway.kernel import read_set
from delivery_gateway.kernel.callers import DEMO_CALLER, Caller
from delivery_gateway.pages import graphiql_page

__all__ = ["WS_INIT_TIMEOUT", "WS_UNAUTHORIZED", "GatewayGraphQL", "MissingCaller", "caller_for", "create_graphql_app"]

log = logging.getLogger("delivery_gateway.auth")

WS_UNAUTHORIZED = 4401  # bad or missing credentials in connection_init (README, SECURITY.md)
WS_INIT_TIMEOUT = 4408  # no connection_init in time (graphql-transport-ws's own code)

# Refusals Strawberry raises before executing (malformed JSON, no query, wrong method...), by HTTP status.
HTTP_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
SUBSCRIPTION_NEEDS_A_STREAM = (
    "Subscriptions need a stream: open a WebSocket (graphql-transport-ws) or ask for SSE "
    "(POST with `Accept: text/event-stream`)."
)


def client_error(status: int, message: str, code: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A request-level refusal in GraphQL's response shape, so every client error carries `extensions.code`."""
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _accepts_html(accept: str) -> bool:
    return "text/html" in accept or "*/*" in accept


class WebSocketRefused(Exception):
    """`on_ws_connect` refused the connection's credentials; `code` is the close reason (UNAUTHENTICATED, or
    TOKEN_EXPIRED so that an app knows to fetch a fresh Access Token).

    Deliberately not Strawberry's ConnectionRejectionError: Strawberry closes a socket it rejects with 4403
    (graphql-transport-ws) or 1011 (graphql-ws), while the gateway documents 4401 for bad credentials, so the
    handlers below close with 4401 themselves.
    """

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code


def caller_for(scope: Mapping[str, Any], services: GatewayServices) -> Caller | None:
    """An HTTP request's caller: set as `scope["caller"]` by the auth middleware in front of this app.

    Fails closed: without a caller on the scope, only demo mode has one (DEMO_CALLER); otherwise None, and any
    resolver that needs the caller raises MissingCaller. (The middleware lets only the IDE page through without
    a caller, and that page executes nothing.)
    """
    caller = scope.get("caller")
    if isinstance(caller, Caller):
        return caller
    return DEMO_CALLER if services.settings.demo_mode else None


class TransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """graphql-transport-ws, closing a socket whose credentials `on_ws_connect` refused with 4401, and one that
    sends JSON that is not an object (`5`, `[]`) with 4400 (Strawberry would fail on it with a traceback)."""

    async def handle(self) -> None:
        """Strawberry's loop over the socket's messages, keeping neither the last message nor its text while
        waiting for the next (Strawberry's generator does: a few hundred bytes per idle socket)."""
        self.on_request_accepted()
        websocket: WebSocket = self.websocket.ws  # type: ignore[attr-defined]
        decode = self.view.decode_json
        try:
            while websocket.application_state != WebSocketState.DISCONNECTED:
                try:
                    text = await websocket.receive_text()
                except KeyError:
                    await self.handle_invalid_message("WebSocket message type must be text")
                    return
                try:
                    message = decode(text)
                except JSONDecodeError:
                    await self.handle_invalid_message("WebSocket message must be valid JSON")
                    return
                del text
                await self.handle_message(cast("Message", message))
                del message
        except (WebSocketDisconnect, WebSocketDisconnected):
            pass
        finally:
            await self.shutdown()

    async def handle_message(self, message: Message) -> None:
        if not isinstance(message, dict):  # the wire is JSON, whatever the annotation says
            await self.handle_invalid_message("WebSocket message must be a JSON object")
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except WebSocketRefused as refused:
            await self.websocket.close(code=WS_UNAUTHORIZED, reason=refused.code)
        if self.connection_init_received:  # the timeout was cancelled: a long-lived socket keeps no such task
            self.connection_init_timeout_task = None

    hub_connection: HubConnection | None = None  # made when the socket's first subscription joins a live hub

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        """A subscription of a group (graphql/live/hub.py) is authorized as itself, then served by its group's
        hub: this task ends there, and the subscription holds no task, generator or queue of its own while idle.
        Anything else (queries, mutations, `after`, fields that are not shared) runs as Strawberry runs it."""
        view = self.view
        if not isinstance(view, GatewayGraphQL):
            await super().run_operation(operation)
            return
        schema = self.schema
        key = group_of(schema._schema, operation.query, operation.variables, operation.operation_name, self.context)  # type: ignore[attr-defined]
        if key is None:
            await super().run_operation(operation)
            return
        request = SubscriptionRequest(
            operation.query, operation.variables, operation.operation_name, view.encode_json_string
        )
        try:
            admitted = await admit(schema, request, self.context.for_event(), partial(self._send_counted, operation))
        except _OperationStreamClosed:
            return
        except Exception as error:  # as Strawberry's own run_operation: logged, and the operation completes
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            return
        if not admitted:
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
            return
        connection = self.hub_connection
        if connection is None:
            connection = self.hub_connection = HubConnection(
                self.context,
                # Frames go straight to the server when it can: no per-frame wrapper of the layers in between.
                transport_send(self.context.request.scope) or self.websocket.ws.send,  # type: ignore[attr-defined, union-attr]
                view.services.pubsub.queue_size,
                view.encode_json_string,
                self._forget_hub_operation,
                frame_writer(self.context.request.scope),  # type: ignore[union-attr]
            )
        hub = view.services.hubs.hub_for(key, schema, request)
        member = HubMember(connection, operation.id, hub)
        connection.members[operation.id] = member
        try:
            await hub.join(member, self.context)
        except BaseException:
            hub.leave(member)
            connection.members.pop(operation.id, None)
            raise
        # What stays while the subscription waits: the operation's entry (its id, counted against the
        # connection's limit) with the hub's copy of what it asked, and no task.
        operation.query, operation.variables, operation.task = hub.request.query, hub.request.variables, None

    async def _send_counted(self, operation: Operation[RequestContext, None], results: StreamResult) -> int:
        """Strawberry's sending of a result stream (errors, or a 4400 close), counting what was sent."""
        sent = 0

        async def counted() -> StreamResult:
            nonlocal sent
            async for result in results:
                sent += 1
                yield result

        async with aclosing(counted()) as stream:
            await self._send_result_stream(operation, stream)
        return sent

    def _forget_hub_operation(self, operation_id: str) -> None:
        operation = self.operations.get(operation_id)
        if operation is not None:
            operation.completed = True
            del self.operations[operation_id]

    async def cleanup_operation(self, operation_id: str) -> None:
        """`complete` from the client, or the socket closing: a hub's subscriber leaves its hub (the hub goes
        with its last subscriber)."""
        connection = self.hub_connection
        member = connection.members.pop(operation_id, None) if connection is not None else None
        if member is not None:
            member.hub.leave(member)
        operation = self.operations.get(operation_id)
        if operation is not None and operation.task is None:  # a hub's: nothing runs for it
            del self.operations[operation_id]
            return
        await super().cleanup_operation(operation_id)

    async def send_message(self, message: Message) -> None:
        """A `next` whose result subscribers of one group share goes out with the payload serialised once for all
        of them (graphql/live/fanout.py); anything else as Strawberry sends it."""
        if message["type"] == "next" and isinstance(self.view, GatewayGraphQL):
            text = self.view.services.fanout.payload_text(dict(message["payload"]), self.view.encode_json_string)
            if text is not None:
                op_id = self.view.encode_json_string(message["id"])
                await self.websocket.send_json(SerialisedFrame(f'{{"id":{op_id},"type":"next","payload":{text}}}'))
                return
        await super().send_message(message)


class SerialisedFrame(dict[str, object]):
    """A frame already serialised: `GatewayGraphQL.encode_json` sends its text as is."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LegacyWSHandler(BaseGraphQLWSHandler[RequestContext, None]):
    """Legacy graphql-ws, held to the same rules: 4401 for refused credentials, 4408 without connection_init in
    time (the protocol has no timeout of its own)."""

    _init_seen = False

    async def handle_message(self, message: OperationMessage) -> None:
        if not isinstance(message, dict):  # the wire is JSON, whatever the annotation says
            await self.websocket.close(code=4400, reason="WebSocket message must be a JSON object")
            return
        await super().handle_message(message)

    async def handle(self) -> None:
        deadline = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            deadline.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deadline

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self._init_seen:
            await self.websocket.close(code=WS_INIT_TIMEOUT, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        self._init_seen = True
        try:
            await super().handle_connection_init(message)
        except WebSocketRefused as refused:
            await self.websocket.close(code=WS_UNAUTHORIZED, reason=refused.code)


class GatewayGraphQL(GraphQL[RequestContext, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, services: GatewayServices, **kwargs: Any) -> None:
        schema = build_schema(services.settings)
        super().__init__(schema, **kwargs)
        self.services = services
        self.authenticator = Authenticator.from_settings(services.settings)
        self.origin_policy = OriginPolicy.from_settings(services.settings)
        responses = services.responses
        self.responses = ResponseCacheFront(responses, schema._schema) if responses is not None else None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        # A WebSocket goes to Strawberry directly: no frame of this method is held for the socket's life.
        if scope["type"] != "http":
            return super().__call__(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = caller_for(scope, self.services)
        if caller is None and not (self.graphql_ide and is_ide_page_request(scope)):
            # The auth middleware answers these first; without it (or past it by mistake) nothing runs either.
            await send_unauthorized(send, AuthenticationFailed("missing credentials"), presented=False)
            return
        front = self.responses
        if front is None or caller is None or not self._cacheable_request(scope):
            await self._run(scope, receive, send)
            return
        # The hit path: this exact request's answer, before any request object, context or parsing.
        body = await read_body(receive)
        if body is None:
            return  # the client left
        known = scope.get(FINGERPRINT_SCOPE_KEY)  # the hit path in front of the guards missed already
        if isinstance(known, bytes):
            pending = Pending(known)
        else:
            pending = Pending(front.fingerprint(caller, scope, body))
            if await front.serve(pending.fingerprint, send):
                return
        scope[PENDING_SCOPE_KEY] = pending
        request = Request(scope, receive)
        request._body = body  # read once, above
        status, answer = await self._run(scope, receive, send, request)
        if answer is not None:
            await front.finish(pending, status, answer)

    @staticmethod
    def _cacheable_request(scope: Scope) -> bool:
        method = scope["method"]
        return (method == "POST" or (method == "GET" and bool(scope.get("query_string")))) and not wants_stream(scope)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, request: Request | None = None
    ) -> tuple[int, bytes | None]:
        """Runs the request through Strawberry and sends the answer: (status, body of a plain response)."""
        try:
            response = await self.run(request if request is not None else Request(scope, receive))
        except HTTPException as exc:
            response = self.refusal(exc)
        except ServedFromCache as hit:  # an equivalent request's answer (execute_single)
            await send_body(send, hit.body)
            return 200, None
        await response(scope, receive, send)
        body = getattr(response, "body", None)
        return response.status_code, body if isinstance(body, bytes) else None

    def encode_json(self, data: object) -> str | bytes:
        if isinstance(data, SerialisedFrame):
            return data.text
        return super().encode_json(data)

    @staticmethod
    def refusal(exc: HTTPException) -> JSONResponse:
        """Strawberry's plain-text refusals, GraphQL-shaped. A mutation over GET is 405 with `Allow: POST`
        (GraphQL over HTTP: GET is for queries)."""
        if exc.status_code == 400 and "not allowed when using GET" in exc.reason:
            return client_error(405, f"{exc.reason}; use POST", "METHOD_NOT_ALLOWED", {"Allow": "POST"})
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        headers = {"Allow": "GET, POST"} if status == 405 else None
        return client_error(status, exc.reason, HTTP_ERROR_CODES.get(status, "BAD_REQUEST"), headers)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        """The same decision as the auth middleware's (`is_ide_page_request`): a bare GET accepting HTML."""
        return request.method == "GET" and not request.query_params and _accepts_html(request.headers.get("accept", ""))

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: RequestContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """One operation answered with one response: subscriptions need a stream (WebSocket or SSE, which never
        come here), so one sent as a plain POST is refused as the client's mistake instead of failing inside
        execution."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        pending = request.scope.get(PENDING_SCOPE_KEY)
        # One operation per request: the schema enables no batching (a batch would share `pending`).
        single = self.schema.config.batching_config is None
        if self.responses is not None and single and isinstance(pending, Pending) and context.authenticated:
            pending.executions += 1
            plan = self.responses.plan(
                request_data.query, request_data.operation_name, request_data.variables, context.caller
            )
            if plan.key is not None:
                cached = await self.responses.lookup(pending, plan)
                if cached is not None:
                    raise ServedFromCache(cached)
            if plan.key is not None or plan.mutation:
                pending.plan = plan
                pending.began = self.responses.cache.begin()
                reads, token = read_set.begin()
                try:
                    result = await self._execute(request_adapter, context, root_value, request_data, allowed)
                finally:
                    read_set.end(token)
                pending.reads = reads
                pending.complete = not result.errors
                return result
        return await self._execute(request_adapter, context, root_value, request_data, allowed)

    async def _execute(
        self,
        request_adapter: AsyncHTTPRequestAdapter,
        context: RequestContext,
        root_value: None,
        request_data: GraphQLRequestData,
        allowed: set[OperationType],
    ) -> ExecutionResult:
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, SUBSCRIPTION_NEEDS_A_STREAM) from None
            raise HTTPException(400, exc.as_http_error_reason(request_adapter.method)) from None
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from None
        except MissingQueryError:
            raise HTTPException(400, "No GraphQL query found in the request") from None

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        """Cross-origin WebSocket handshakes follow the same origin policy as CORS (http.guards.OriginPolicy);
        Strawberry itself lets same-origin and Origin-less handshakes through and refuses the rest with 403."""
        return self.origin_policy.allows(origin, None)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the package's own assets (Strawberry's page loads them from a CDN)."""
        return graphiql_page(demo_mode=self.services.settings.demo_mode)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> RequestContext:
        # A WebSocket has no caller until its connection_init is accepted (on_ws_connect).
        caller = None if request.scope["type"] == "websocket" else caller_for(request.scope, self.services)
        return RequestContext(self.services, caller, request, response)

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object] | None:
        """Authenticates a WebSocket from its `connection_init` payload (`{"Authorization": "Bearer …"}`)."""
        try:
            caller = self.authenticator.authenticate_connection_params(context.connection_params)
        except AuthenticationFailed as exc:
            log.info("websocket refused: %s", exc.reason)
            raise WebSocketRefused(exc.reason, exc.code) from None
        context.authenticate(caller)
        context.connection_params = None  # read once: the socket keeps its caller, not the credential
        return UNSET


def create_graphql_app(services: GatewayServices) -> GatewayGraphQL:
    settings = services.settings
    # graphql-sse (distinct connections mode, `Accept: text/event-stream`) for clients that cannot hold a WebSocket.
    protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL]
    if settings.legacy_graphql_ws:
        protocols.append(GRAPHQL_WS_PROTOCOL)
    return GatewayGraphQL(
        services,
        graphql_ide="graphiql" if settings.graphiql else None,
        subscription_protocols=tuple(protocols),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
