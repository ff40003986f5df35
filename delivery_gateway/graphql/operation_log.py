"""Names each GraphQL operation in its request's log line: a schema extension noting the operation's name and type.

Never records variables, the document or a caller's free text: the name logged is one the parsed document
defines (an `operationName` naming no operation of the document stays out of the logs, whatever it holds).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from delivery_gateway.kernel.request_stats import note_operation

MAX_LOGGED_NAME = 100


class OperationLogExtension(SchemaExtension):
    """Notes `operation` / `operation_type` once the document is parsed (so rejected operations are named too)."""

    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        if document is None:  # unparsable: nothing trustworthy to name
            note_operation(None, None)
            return
        wanted = context.operation_name  # the caller's operationName (else the first operation's): only compared
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            name = definition.name.value if definition.name else None
            if wanted is None or name == wanted:
                logged = name if name is not None and len(name) <= MAX_LOGGED_NAME else None
                note_operation(logged, definition.operation.value)
                return
        note_operation(None, None)
