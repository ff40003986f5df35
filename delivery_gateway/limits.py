"""GraphQL hardening as Strawberry extensions: depth, alias, token, page-size and cost limits; masking.

Never lets a rejected operation reach a resolver, and never sends an unexpected exception's text to a client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_list_type,
    is_non_null_type,
    value_from_ast_untyped,
)
from graphql.type import GraphQLInterfaceType, GraphQLObjectType
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule, ValidationContext
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    SchemaExtension,
)
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from delivery_gateway.kernel.settings import Settings

log = logging.getLogger("delivery_gateway.errors")

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
BAD_USER_INPUT = "BAD_USER_INPUT"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
INTERNAL = "INTERNAL_SERVER_ERROR"
MASKED_MESSAGE = "Internal server error"

DEFAULT_PAGE_SIZE = 50  # what a paged field returns when neither `first` nor `last` is given
MAX_EXPANDED_FIELDS = 5000  # fields after expanding fragments; bounds every later walk of the document


@dataclass(frozen=True)
class FieldCost:
    """Upstream calls one resolution of `Type.field` makes per parent, and the fan-out of an unpaged list.

    `per_argument`: calls grow with that Int argument (a roll-up reads `window` messages' receipts).
    """

    calls: int = 1
    fanout: int = 1
    per_argument: str | None = None


# Fields whose resolution costs upstream calls per parent object, keyed by `Type.field` of schema.graphql.
# Fields not listed are free (served from their parent's record, or from a list loaded once per
# conversation and request, like every participant lookup). Paged fields (`first`/`last` arguments) multiply
# the cost of everything below them by the page size (the default page size when neither is given).
DEFAULT_COST_TABLE: dict[str, FieldCost] = {
    "Query.conversation": FieldCost(),
    "Query.conversations": FieldCost(calls=5),  # participant callers: up to 5 upstream pages scanned
    "Query.message": FieldCost(),
    "Query.node": FieldCost(),
    "Conversation.messages": FieldCost(calls=2),  # a window may straddle two upstream pages
    "Conversation.participants": FieldCost(),
    "Conversation.rollup": FieldCost(calls=2, per_argument="window"),  # one receipts list per message
    "Message.receipts": FieldCost(),
    "Message.recipients": FieldCost(),
    "Message.ticks": FieldCost(),
    "Message.resentAs": FieldCost(),
    "Message.resendOf": FieldCost(),
}


def _coded(error: GraphQLError, code: str) -> GraphQLError:
    extensions = dict(error.extensions or {})
    extensions.setdefault("code", code)
    error.extensions = extensions
    return error


class _CodingContext:
    """A ValidationContext whose reported errors get `extensions.code` (wraps stock validators)."""

    def __init__(self, context: ValidationContext, code: str) -> None:
        self._context = context
        self._code = code

    def report_error(self, error: GraphQLError) -> None:
        self._context.report_error(_coded(error, self._code))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def coded_rule(rule: type[ASTValidationRule], code: str) -> type[ASTValidationRule]:
    """`rule`, reporting its errors with `extensions.code = code`."""

    class Coded(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(_CodingContext(context, code))  # type: ignore[arg-type]

    Coded.__name__ = Coded.__qualname__ = f"Coded{rule.__name__}"
    return Coded


class IntrospectionDisabled(AddValidationRules):
    """Rejects `__schema` / `__type` (not `__typename`) in the validation phase."""

    def __init__(self) -> None:
        super().__init__([coded_rule(NoSchemaIntrospectionCustomRule, VALIDATION_FAILED)])


# ----------------------------------------------------------------------------------------------------
# Document walks: expansion size (before validation) and upstream-call cost (after it).


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def expanded_field_count(document: DocumentNode, cap: int = MAX_EXPANDED_FIELDS) -> int:
    """Fields in every operation once fragments are expanded, capped at `cap + 1`; linear in the document."""
    fragments = _fragments(document)
    memo: dict[str, int] = {}
    in_progress: set[str] = set()

    def count(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += 1 + count(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += spread(selection.name.value)
            if total > cap:
                return cap + 1
        return total

    def spread(name: str) -> int:
        if name in memo:
            return memo[name]
        fragment = fragments.get(name)
        if fragment is None or name in in_progress:
            return 0  # unknown or cyclic: validation rejects it
        in_progress.add(name)
        memo[name] = count(fragment.selection_set)
        in_progress.discard(name)
        return memo[name]

    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total += count(definition.selection_set)
            if total > cap:
                return cap + 1
    return total


def select_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        return next((o for o in operations if o.name and o.name.value == operation_name), None)
    return operations[0] if len(operations) == 1 else None


class PageSizeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CostEstimator:
    """Estimates the upstream calls an operation makes: per-field costs times the page sizes above them."""

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        cost_table: Mapping[str, FieldCost] = DEFAULT_COST_TABLE,
        default_page_size: int = DEFAULT_PAGE_SIZE,
        max_page_size: int = 100,
    ) -> None:
        self.schema = schema
        self.cost_table = cost_table
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size

    def estimate(
        self, document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
    ) -> int:
        """Raises PageSizeError for a `first`/`last` outside 0..max_page_size."""
        fragments = _fragments(document)
        variables = dict(variables or {})
        memo: dict[tuple[str, str], int] = {}
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return 0

        def page(field: FieldNode, field_def: Any, key: str, return_type: Any) -> int:
            args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in field.arguments or ()}
            sizes = []
            for name in ("first", "last"):
                if name in args and args[name] is not None:
                    value = args[name]
                    if not isinstance(value, int) or isinstance(value, bool):
                        continue  # not an Int: argument coercion rejects it
                    if not 0 <= value <= self.max_page_size:
                        raise PageSizeError(f"{name} must be between 0 and {self.max_page_size}")
                    sizes.append(value)
            if sizes:
                return max(sizes)
            if "first" in field_def.args or "last" in field_def.args:
                return self.default_page_size
            ids = args.get("ids")
            if isinstance(ids, list):
                return len(ids)
            entry = self.cost_table.get(key)
            unwrapped = return_type.of_type if is_non_null_type(return_type) else return_type
            if entry is not None and is_list_type(unwrapped):
                return entry.fanout
            return 1

        def unit(selection_set: SelectionSetNode | None, parent: Any) -> int:
            total = 0
            for selection in selection_set.selections if selection_set else ():
                if isinstance(selection, FieldNode):
                    total += field_cost(selection, parent)
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    target = self.schema.get_type(condition.name.value) if condition else parent
                    total += unit(selection.selection_set, target or parent)
                elif isinstance(selection, FragmentSpreadNode):
                    total += spread(selection.name.value)
            return total

        def spread(name: str) -> int:
            fragment = fragments.get(name)
            if fragment is None:
                return 0
            target = self.schema.get_type(fragment.type_condition.name.value)
            memo_key = (name, getattr(target, "name", ""))
            if memo_key not in memo:
                memo[memo_key] = 0  # cycles are rejected by validation; this only guards recursion
                memo[memo_key] = unit(fragment.selection_set, target)
            return memo[memo_key]

        def field_cost(field: FieldNode, parent: Any) -> int:
            name = field.name.value
            if name.startswith("__") or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                return 0
            field_def = parent.fields.get(name)
            if field_def is None:
                return 0
            key = f"{parent.name}.{name}"
            entry = self.cost_table.get(key)
            own = entry.calls if entry else 0
            if entry is not None and entry.per_argument:
                own += _int_argument_value(field, field_def, entry.per_argument, variables)
            multiplier = page(field, field_def, key, field_def.type)
            children = unit(field.selection_set, get_named_type(field_def.type)) if field.selection_set else 0
            return own + multiplier * children

        return unit(operation.selection_set, root)


def structure_limits_rule(
    *, max_depth: int, max_aliases: int, max_expanded_fields: int = MAX_EXPANDED_FIELDS
) -> type[ASTValidationRule]:
    """One validation rule: expansion size, then Strawberry's depth and alias limits (QUERY_TOO_COMPLEX).

    Strawberry's limiters walk every fragment expansion path; bounding the expanded size first keeps a
    document of nested fragment spreads from making them (or anything after them) run for exponential time.
    """
    depth_rule = depth_validator(max_depth, None)
    alias_rule = alias_validator(max_aliases)

    class StructureLimits(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            if expanded_field_count(context.document, max_expanded_fields) > max_expanded_fields:
                message = f"Operation expands to more than {max_expanded_fields} fields."
                context.report_error(GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX}))
                return
            coding = _CodingContext(context, QUERY_TOO_COMPLEX)
            depth_rule(coding)  # type: ignore[arg-type]  # both do all their work on construction
            alias_rule(coding)  # type: ignore[arg-type]

    return StructureLimits


def _int_argument_value(field: FieldNode, field_def: Any, name: str, variables: Mapping[str, Any]) -> int:
    """An Int argument's value (given, or the schema default); 0 when absent or not an int."""
    for argument in field.arguments or ():
        if argument.name.value == name:
            value = value_from_ast_untyped(argument.value, variables)
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
    definition = field_def.args.get(name)
    default = getattr(definition, "default_value", None)
    wrapped = getattr(definition, "default", None)  # graphql-core 3.3 SDL-built schemas keep the literal
    if not isinstance(default, int) and wrapped is not None:
        literal = getattr(wrapped, "literal", None)
        default = value_from_ast_untyped(literal) if literal is not None else getattr(wrapped, "value", None)
    return default if isinstance(default, int) and not isinstance(default, bool) and default > 0 else 0


class OperationLimits(SchemaExtension):
    """Page sizes and the upstream-call ceiling, checked after validation and before execution starts.

    Needs the operation's variables, so it cannot be a (cached) validation rule: it runs as the first step of
    execution instead, ahead of every resolver, and raises a coded GraphQLError (queries and subscriptions).
    """

    def __init__(
        self,
        *,
        max_cost: int,
        max_page_size: int = 100,
        default_page_size: int = DEFAULT_PAGE_SIZE,
        cost_table: Mapping[str, FieldCost] = DEFAULT_COST_TABLE,
    ) -> None:
        self.max_cost = max_cost
        self.max_page_size = max_page_size
        self.default_page_size = default_page_size
        self.cost_table = cost_table
        self.last_cost: int | None = None

    def on_execute(self) -> Iterator[None]:
        error = self.check()
        if error is not None:
            raise error
        yield

    def check(self) -> GraphQLError | None:
        context = self.execution_context
        document = context.graphql_document
        if document is None or context.pre_execution_errors:
            return None
        operation = select_operation(document, context.operation_name)
        if operation is None:
            return None  # execution reports the missing/ambiguous operation
        estimator = CostEstimator(
            context.schema._schema,
            cost_table=self.cost_table,
            default_page_size=self.default_page_size,
            max_page_size=self.max_page_size,
        )
        variables = context.variables if isinstance(context.variables, dict) else None
        try:
            cost = estimator.estimate(document, operation, variables)
        except PageSizeError as exc:
            return GraphQLError(exc.message, extensions={"code": BAD_USER_INPUT})
        self.last_cost = cost
        if cost > self.max_cost:
            message = f"Operation would make about {cost} upstream calls; the limit is {self.max_cost}."
            return GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX, "cost": cost})
        return None


# ----------------------------------------------------------------------------------------------------
# Error masking.


def _default_classifier(exc: BaseException | None) -> dict[str, Any] | None:
    try:
        from delivery_gateway.resolvers.errors import error_extensions
    except ImportError:  # pragma: no cover - the resolver package is assembled elsewhere
        return None
    return error_extensions(exc)


_REQUEST_ERRORS = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


def correlation_id_of(context: Any) -> str | None:
    """The request's correlation id (set by http_guards.CorrelationIdMiddleware), if any."""
    request = context.get("request") if isinstance(context, dict) else getattr(context, "request", None)
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and isinstance(scope.get("correlation_id"), str):
        return scope["correlation_id"]
    from delivery_gateway.http_guards import current_correlation_id

    return current_correlation_id()


class MaskUnexpectedErrors(SchemaExtension):
    """Errors carrying an intentional `extensions.code` pass; anything else from a resolver is masked.

    Masked errors read "Internal server error" with `extensions.code` INTERNAL_SERVER_ERROR and a
    `correlationId`; the original is logged with its traceback under that same id. Parse and validation errors
    (no original exception) keep their message and get GRAPHQL_PARSE_FAILED / GRAPHQL_VALIDATION_FAILED.
    """

    def __init__(self, classify: Callable[[BaseException | None], dict[str, Any] | None] | None = None):
        self.classify = classify or _default_classifier

    def _process(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [self._one(error) for error in errors]

    def _one(self, error: GraphQLError) -> GraphQLError:
        extensions = error.extensions if isinstance(error.extensions, dict) else {}
        code = extensions.get("code")
        original = error.original_error
        if code == INTERNAL and "correlationId" not in extensions:
            return self._mask(error, original)  # coded INTERNAL by process_errors, text not yet hidden
        if code:
            return error  # set intentionally (or already masked)
        if original is None or (isinstance(original, GraphQLError) and original.original_error is None):
            if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
                code = QUERY_TOO_COMPLEX if "tokens. Parsing aborted" in error.message else PARSE_FAILED
            elif error.message.startswith("Variable '$"):
                code = BAD_USER_INPUT
            else:
                code = VALIDATION_FAILED
            return _coded(error, code)
        if isinstance(original, _REQUEST_ERRORS):
            return _coded(error, VALIDATION_FAILED)  # e.g. "queries are not allowed" over legacy graphql-ws
        known = self.classify(original)
        if known and known.get("code") and known["code"] != INTERNAL:
            error.extensions = {**extensions, **known}
            return error
        return self._mask(error, original)

    def _mask(self, error: GraphQLError, original: BaseException | None) -> GraphQLError:
        correlation_id = correlation_id_of(self.execution_context.context) or uuid.uuid4().hex
        log.error(
            "unexpected error in %s at %s [correlationId=%s]: %s",
            self.execution_context.operation_name or "anonymous operation",
            ".".join(str(p) for p in error.path or ()) or "-",
            correlation_id,
            error.message,
            exc_info=(type(original), original, original.__traceback__) if original is not None else None,
        )
        return GraphQLError(
            MASKED_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={"code": INTERNAL, "correlationId": correlation_id},
        )

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLError as error:
            # Raised out of another extension's hook (ParserCache's syntax errors): Strawberry turns it
            # into the result after this hook has run, so it is coded on its way through.
            self._one(error)
            raise
        result = self.execution_context.result
        self._process(result)
        self._process(getattr(result, "initial_result", None))

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._process(result)
        yield None


def limit_extensions(
    settings: Settings, *, cost_table: Mapping[str, FieldCost] = DEFAULT_COST_TABLE
) -> list[Callable[[], SchemaExtension]]:
    """Factories of every hardening extension for `strawberry.Schema(..., extensions=...)`, from settings.

    Factories, not instances: Strawberry builds one extension per operation, so concurrent operations never
    share state. Validation rule classes are built once here and shared (they hold no state).
    """
    rules: list[type[ASTValidationRule]] = [
        structure_limits_rule(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases)
    ]
    if not settings.introspection:
        rules.append(coded_rule(NoSchemaIntrospectionCustomRule, VALIDATION_FAILED))
    return [
        MaskUnexpectedErrors,
        partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        partial(AddValidationRules, rules),
        partial(
            OperationLimits,
            max_cost=settings.max_query_cost,
            max_page_size=settings.max_page_size,
            cost_table=cost_table,
        ),
    ]
