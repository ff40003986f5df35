"""The GraphQL side of the whole-response cache (cache/responses.py): which operations it may answer, their keys,
the hit (`serve`, run by graphql/cached_answers.py in front of the guards and by the view) and the store after a
miss (`plan`, `lookup`, `finish`, run by the view around execution).

Keys: an entry is stored under (caller scope, the document's hash, the operation name, the coerced variables): API
keys and demo callers share the full-access scope, an Access Token's scope is its identity and service, so two
callers who may see different things never share an entry. A request's exact bytes (scope, method, headers that
change the answer, query string, body) are remembered as an alias of that key, so a repeated request is answered
without parsing its body at all.

Only queries whose root fields read through named conversations (`conversation`, `message`, `node`) are cached,
and only complete answers (no `errors`): an error may be transient, and carries a correlation id of its own.
A mutation drops every entry that read a conversation it touched. Never caches a subscription, a batch, a stream or
an answer whose reads were not all attributed (kernel/read_set.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    VariableNode,
    parse,
)
from graphql.execution.values import get_variable_values
from starlette.types import Receive, Scope, Send

from delivery_gateway.cache.responses import ResponseCache
from delivery_gateway.kernel import request_stats
from delivery_gateway.kernel.callers import Caller
from delivery_gateway.kernel.read_set import CONVERSATION_DEP, ReadSet, conversation_dep

# Root fields whose every read goes through the resource cache under a conversation's SID.
CACHEABLE_ROOT_FIELDS = frozenset({"conversation", "message", "node", "__typename"})
PENDING_SCOPE_KEY = "response_cache"  # the ASGI scope entry a miss carries from the hit path to execute_single
FINGERPRINT_SCOPE_KEY = "response_cache.fingerprint"  # set by the hit path in front of the guards when it missed
_VARYING_HEADERS = (b"content-type", b"accept")  # headers that change how a request is read or answered
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ServedFromCache(Exception):  # not an error: the way out of execute_single with cached bytes
    """Raised by the view's `execute_single` when an equivalent request's answer is cached."""

    def __init__(self, body: bytes) -> None:
        super().__init__("served from the response cache")
        self.body = body


@dataclass(frozen=True, slots=True)
class Plan:
    """What the cache makes of one operation: its key when cacheable, and whether it is a mutation."""

    key: str | None
    operation_name: str | None
    mutation: bool = False
    conversations: tuple[str, ...] = ()  # a mutation's `conversationSid` arguments


@dataclass(slots=True)
class Pending:
    """One request that missed: carried on the ASGI scope from the view's hit path to `execute_single` and back."""

    fingerprint: bytes
    began: int = 0
    executions: int = 0
    plan: Plan | None = None
    reads: ReadSet | None = None
    complete: bool = False


@lru_cache(maxsize=256)
def _parsed(query: str) -> DocumentNode | None:
    try:
        return parse(query)
    except GraphQLError:
        return None  # execution reports it


def _named_conversations(operation: OperationDefinitionNode, variables: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The `conversationSid` arguments of a mutation's root fields, literal or from variables."""
    found = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode):
            continue
        for argument in selection.arguments or ():
            if argument.name.value != "conversationSid":
                continue
            value = argument.value
            if isinstance(value, StringValueNode):
                found.append(value.value)
            elif isinstance(value, VariableNode):
                given = (variables or {}).get(value.name.value)
                if isinstance(given, str):
                    found.append(given)
    return tuple(found)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name is not None and op.name.value == name), None)


class ResponseCacheFront:
    """The view's use of the response cache: fingerprints, aliases, plans, the hit and the store."""

    def __init__(self, cache: ResponseCache, schema: GraphQLSchema, *, max_aliases: int = 10_000) -> None:
        self.cache = cache
        self.schema = schema
        self.max_aliases = max_aliases
        self._aliases: OrderedDict[bytes, tuple[str, str | None]] = OrderedDict()  # fingerprint -> (key, op name)
        self._requests = cache.metrics.response_cache_requests
        self._hits = self._requests.labels("hit")  # the hit path increments a child it already holds

    # -- the hit path ---------------------------------------------------------------------------------

    @staticmethod
    def fingerprint(caller: Caller, scope: Scope, body: bytes) -> bytes:
        digest = hashlib.blake2b(digest_size=20)
        digest.update(caller.scope.encode())
        digest.update(b"\0" + scope["method"].encode() + b"\0" + scope.get("query_string", b""))
        for name, value in scope["headers"]:
            if name in _VARYING_HEADERS:
                digest.update(b"\0" + name + b"=" + value)
        digest.update(b"\0" + body)
        return digest.digest()

    async def serve(self, fingerprint: bytes, send: Send, headers: list[tuple[bytes, bytes]] | None = None) -> bool:
        """Answer from the cache when this exact request's answer is there; False: nothing sent."""
        alias = self._aliases.get(fingerprint)
        if alias is None:
            return False
        key, operation_name = alias
        body = self.cache.get_now(key) if self.cache.synchronous else await self.cache.get(key)
        if body is None:
            return False
        self._aliases.move_to_end(fingerprint)
        self._hits.inc()
        request_stats.note_response_cache("hit")
        request_stats.note_operation(operation_name, "query")
        await send_body(send, body, headers=headers)
        return True

    # -- the miss path --------------------------------------------------------------------------------

    def plan(
        self, query: str | None, operation_name: str | None, variables: Mapping[str, Any] | None, caller: Caller
    ) -> Plan:
        """The key of an operation the cache may answer (key None: never cached)."""
        document = _parsed(query) if isinstance(query, str) else None
        operation = _operation(document, operation_name) if document is not None else None
        if operation is None:
            return Plan(None, operation_name)
        name = operation.name.value if operation.name else None
        if operation.operation is OperationType.MUTATION:
            return Plan(None, name, mutation=True, conversations=_named_conversations(operation, variables))
        if operation.operation is not OperationType.QUERY or not all(
            isinstance(selection, FieldNode) and selection.name.value in CACHEABLE_ROOT_FIELDS
            for selection in operation.selection_set.selections
        ):
            return Plan(None, name)
        coerced = get_variable_values(self.schema, operation.variable_definitions or (), dict(variables or {}))
        if isinstance(coerced, list):  # invalid variables: execution reports them
            return Plan(None, name)
        text = json.dumps(coerced, sort_keys=True, separators=(",", ":"), default=str)
        document_hash = hashlib.sha256(query.encode()).hexdigest() if query else ""
        key = hashlib.sha256(f"{caller.scope}\0{document_hash}\0{name or ''}\0{text}".encode()).hexdigest()
        return Plan(key, name)

    async def lookup(self, pending: Pending, plan: Plan) -> bytes | None:
        """An equivalent request's answer (other bytes, same key); remembers this request as its alias."""
        assert plan.key is not None
        body = await self.cache.get(plan.key)
        if body is not None:
            self._alias(pending.fingerprint, plan)
            self._count("hit")
        return body

    async def finish(self, pending: Pending, status: int, body: bytes) -> None:
        """After a miss was answered: store a complete answer, or drop what a mutation touched."""
        plan, reads = pending.plan, pending.reads
        if plan is None or reads is None or pending.executions != 1:
            self._count("uncacheable")
            return
        if plan.mutation:  # whatever it changed is in a conversation it named or read
            deps = {dep for dep in reads.deps if dep.startswith(CONVERSATION_DEP)}
            deps.update(conversation_dep(sid) for sid in plan.conversations)
            await self.cache.invalidate(deps, reason="mutation")
            self._count("uncacheable")
            return
        if plan.key is None or status != 200 or not pending.complete or reads.unattributed:
            self._count("uncacheable")
            return
        self._count("miss")
        if await self.cache.put(plan.key, body, reads.deps, began=pending.began, expires=reads.expires):
            self._alias(pending.fingerprint, plan)

    def _count(self, result: str) -> None:
        self._requests.labels(result).inc()
        request_stats.note_response_cache(result)

    def _alias(self, fingerprint: bytes, plan: Plan) -> None:
        assert plan.key is not None
        self._aliases[fingerprint] = (plan.key, plan.operation_name)
        self._aliases.move_to_end(fingerprint)
        while len(self._aliases) > self.max_aliases:
            self._aliases.popitem(last=False)


async def send_body(send: Send, body: bytes, *, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A cached answer: what Strawberry's response carries (length, JSON type), plus `headers`."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode()), *_JSON_HEADERS, *(headers or ())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wants_stream(scope: Scope) -> bool:
    """SSE or multipart asked for: answered as a stream, never from the cache."""
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = bytes(value).lower()
            return b"text/event-stream" in accept or b"multipart/mixed" in accept
    return False


async def read_body(receive: Receive) -> bytes | None:
    """The request's body (the body-limit guard in front already bounded it); None when the client left."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
