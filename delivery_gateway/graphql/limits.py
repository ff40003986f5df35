"""GraphQL hardening as Strawberry extensions: depth, alias, token, page-size, upstream-cost and ledger-query
limits, and switching introspection off.

Never lets a rejected operation reach a resolver. Rejections carry `extensions.code` (QUERY_TOO_COMPLEX,
BAD_USER_INPUT, GRAPHQL_VALIDATION_FAILED); errors.py gives every other error its code.
"""

from __future__ import annotations

import json
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
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.type import GraphQLInterfaceType, GraphQLObjectType
from graphql.validation import ASTValidationRule, ValidationContext
from strawberry.extensions import AddValidationRules, DisableIntrospection, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from delivery_gateway.graphql.conversation.resolvers import scan_pages
from delivery_gateway.graphql.errors import QUERY_TOO_COMPLEX, BadUserInput, coded, error_extensions
from delivery_gateway.graphql.paging import PageSizes, upstream_pages
from delivery_gateway.kernel.memo import IdentityMemo
from delivery_gateway.kernel.settings import Settings

MAX_EXPANDED_FIELDS = 5000  # fields after expanding fragments; bounds every later walk of the document


@dataclass(frozen=True)
class FieldCost:
    """Upstream calls one resolution of `Type.field` makes per parent.

    `pages`: the calls grow with the field's page size (`first`/`last`, else the default): a function of it.
    `per_argument`: calls grow with that Int argument (a roll-up reads `window` messages' receipts).
    `ledger`: queries across the ledger (a report, a page of failures, a service stream's replay): they cost no
    Twilio call but database time, so they count against their own ceiling (DELIVERY_GATEWAY_MAX_LEDGER_QUERIES).
    """

    calls: int = 1
    pages: Callable[[int], int] | None = None
    per_argument: str | None = None
    ledger: int = 0


# Fields whose resolution costs upstream calls per parent object, keyed by `Type.field` of schema.graphql.
# Fields not listed are free (served from their parent's record, or from a list loaded once per
# conversation and request, like every participant lookup). Paged fields (`first`/`last` arguments) multiply
# the cost of everything below them by the page size (the default page size when neither is given).
DEFAULT_COST_TABLE: dict[str, FieldCost] = {
    "Query.conversation": FieldCost(),
    "Query.conversations": FieldCost(pages=scan_pages),  # participant callers: pages scanned while filtering
    "Query.message": FieldCost(),
    "Query.node": FieldCost(),
    "Conversation.messages": FieldCost(pages=upstream_pages),  # the upstream pages a window may straddle
    "Conversation.participants": FieldCost(),
    "Conversation.rollup": FieldCost(calls=2, per_argument="window"),  # one receipts list per message
    "Message.receipts": FieldCost(),
    "Message.recipients": FieldCost(),
    "Message.ticks": FieldCost(),
    "Message.resentAs": FieldCost(),
    "Message.resendOf": FieldCost(),
    "Mutation.resendMessage": FieldCost(calls=3),  # the original, its receipts, the new message
    # Service-wide ledger fields: one ledger query each, and one upstream call at most (the account's default
    # service when `serviceSid` is left out, cached); what is read below a failed message costs as usual, times
    # the page size.
    "Query.deliveryReport": FieldCost(ledger=1),
    "Query.failedMessages": FieldCost(ledger=1),
    "Subscription.serviceDeliveryUpdates": FieldCost(ledger=1),
    "FailedMessage.conversation": FieldCost(),
    "FailedMessage.message": FieldCost(),
    "FailedRecipient.participant": FieldCost(),  # the conversation's Participants list, once per request
}


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


class UncoercibleVariables(Exception):
    """The operation's variables do not coerce: execution refuses it with graphql-core's own errors."""


class CostEstimator:
    """Estimates the upstream calls an operation makes: per-field costs times the page sizes above them.

    Reads arguments exactly as execution will: graphql-core coerces the variables (`100.0` is the Int 100, a
    left-out variable takes its default) and each field's arguments (schema defaults applied), so no spelling of
    a value the resolvers will use escapes the estimate.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        cost_table: Mapping[str, FieldCost] = DEFAULT_COST_TABLE,
        page_sizes: PageSizes = PageSizes(),
    ) -> None:
        self.schema = schema
        self.cost_table = cost_table
        self.page_sizes = page_sizes

    def estimate(
        self, document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
    ) -> int:
        """Raises BadUserInput for a `first`/`last` outside the page-size rule (PageSizes.check), and
        UncoercibleVariables when execution would refuse the variables anyway."""
        return self._total(document, operation, variables, upstream_calls)

    def ledger_queries(
        self, document: DocumentNode, operation: OperationDefinitionNode, variables: Mapping[str, Any] | None
    ) -> int:
        """The ledger queries the operation makes (FieldCost.ledger), times the page sizes above them."""
        return self._total(document, operation, variables, lambda entry, _page_size, _args: entry.ledger)

    def _total(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
        measure: Measure,
    ) -> int:
        """The sum over the operation's fields of `measure(entry, page size, arguments)`, each times the product
        of the page sizes above it."""
        fragments = _fragments(document)
        coerced = get_variable_values(self.schema, operation.variable_definitions or (), dict(variables or {}))
        if not isinstance(coerced, VariableValues):
            raise UncoercibleVariables(coerced)
        memo: dict[tuple[str, str], int] = {}
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return 0

        def arguments(field: FieldNode, field_def: GraphQLField) -> dict[str, Any]:
            try:
                return get_argument_values(field_def, field, coerced)
            except GraphQLError:  # an argument execution would refuse: it reports it, nothing runs
                return {}

        def page(args: Mapping[str, Any], field_def: GraphQLField) -> int:
            """The field's page size (the multiplier of everything below it); 1 for unpaged fields."""
            sizes = []
            for name in ("first", "last"):
                value = args.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    self.page_sizes.check(name, value)
                    sizes.append(value)
            if sizes:
                return max(sizes)
            if "first" in field_def.args or "last" in field_def.args:
                return self.page_sizes.default
            return 1

        def unit(selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None) -> int:
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
            memo_key = (name, target.name if target is not None else "")
            if memo_key not in memo:
                memo[memo_key] = 0  # cycles are rejected by validation; this only guards recursion
                memo[memo_key] = unit(fragment.selection_set, target)
            return memo[memo_key]

        def field_cost(field: FieldNode, parent: GraphQLNamedType | None) -> int:
            name = field.name.value
            if name.startswith("__") or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                return 0
            field_def = parent.fields.get(name)
            if field_def is None:
                return 0
            entry = self.cost_table.get(f"{parent.name}.{name}")
            args = arguments(field, field_def)
            multiplier = page(args, field_def)
            own = 0
            if entry is not None:
                own = measure(entry, multiplier, args)
            named: GraphQLNamedType = get_named_type(field_def.type)
            children = unit(field.selection_set, named) if field.selection_set else 0
            return own + multiplier * children

        return unit(operation.selection_set, root)


# What one field costs in one dimension: (its cost-table entry, its page size, its coerced arguments) -> cost.
Measure = Callable[[FieldCost, int, Mapping[str, Any]], int]


def upstream_calls(entry: FieldCost, page_size: int, args: Mapping[str, Any]) -> int:
    """Upstream calls of one resolution: its pages' calls (or its fixed calls), plus its per-argument calls."""
    calls = entry.pages(page_size) if entry.pages is not None else entry.calls
    return calls + (_positive_int(args.get(entry.per_argument)) if entry.per_argument else 0)


def _positive_int(value: Any) -> int:
    """A coerced Int argument as a count; 0 when absent (null) or not positive."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class _CodingContext:
    """A ValidationContext whose reported errors get `extensions.code` (wraps Strawberry's stock validators)."""

    def __init__(self, context: ValidationContext, code: str) -> None:
        self._context = context
        self._code = code

    def report_error(self, error: GraphQLError) -> None:
        self._context.report_error(coded(error, self._code))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


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
            coding: Any = _CodingContext(context, QUERY_TOO_COMPLEX)  # duck-typed ValidationContext
            depth_rule(coding)  # both do all their work on construction
            alias_rule(coding)

    return StructureLimits


class OperationLimits(SchemaExtension):
    """Page sizes and the upstream-call ceiling, checked after validation and before execution starts.

    Needs the operation's variables, so it cannot be a (cached) validation rule: it runs as the first step of
    execution instead, ahead of every resolver, and raises a coded GraphQLError (queries and subscriptions).
    """

    def __init__(
        self,
        *,
        max_cost: int,
        page_sizes: PageSizes = PageSizes(),
        cost_table: Mapping[str, FieldCost] = DEFAULT_COST_TABLE,
        max_ledger_queries: int | None = None,
        passed: IdentityMemo[bool] | None = None,
    ) -> None:
        self.max_cost = max_cost
        self.page_sizes = page_sizes
        self.cost_table = cost_table
        self.max_ledger_queries = max_ledger_queries
        # Operations found within the limits, per parsed document (ParserCache hands the same document object to
        # every request with the same text), operation name and variables: shared by the operations of a schema.
        self.passed = passed

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        label = None
        if self.passed is not None and document is not None and not context.pre_execution_errors:
            variables = context.variables if isinstance(context.variables, dict) else None
            label = (context.operation_name, json.dumps(variables, sort_keys=True, separators=(",", ":"), default=repr))
            if self.passed.get(label, document):
                yield
                return
        error = self.check()
        if error is not None:
            raise error
        if label is not None and document is not None and self.passed is not None:
            self.passed.put(label, (document,), True)  # an operation over a limit is checked again each time
        yield

    def check(self) -> GraphQLError | None:
        context = self.execution_context
        document = context.graphql_document
        if document is None or context.pre_execution_errors:
            return None
        operation = select_operation(document, context.operation_name)
        if operation is None:
            return None  # execution reports the missing/ambiguous operation
        estimator = CostEstimator(context.schema._schema, cost_table=self.cost_table, page_sizes=self.page_sizes)
        variables = context.variables if isinstance(context.variables, dict) else None
        try:
            cost = estimator.estimate(document, operation, variables)
        except BadUserInput as exc:
            return GraphQLError(str(exc), extensions=error_extensions(exc))
        except UncoercibleVariables:
            return None  # execution refuses the variables with graphql-core's errors (BAD_USER_INPUT)
        if cost > self.max_cost:
            message = f"Operation would make about {cost} upstream calls; the limit is {self.max_cost}."
            return GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX, "cost": cost})
        if self.max_ledger_queries is not None:
            queries = estimator.ledger_queries(document, operation, variables)
            if queries > self.max_ledger_queries:
                message = (
                    f"Operation would run {queries} ledger queries (reports, failed messages); "
                    f"the limit is {self.max_ledger_queries}."
                )
                return GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX, "ledgerQueries": queries})
        return None


def limit_extensions(
    settings: Settings, *, cost_table: Mapping[str, FieldCost] = DEFAULT_COST_TABLE
) -> list[Callable[[], SchemaExtension]]:
    """Factories of every limit for `strawberry.Schema(..., extensions=...)`, from settings.

    Factories, not instances: Strawberry builds one extension per operation, so concurrent operations never
    share state. Validation rule classes are built once here and shared (they hold no state).
    """
    rules: list[type[ASTValidationRule]] = [
        structure_limits_rule(max_depth=settings.max_query_depth, max_aliases=settings.max_aliases)
    ]
    extensions: list[Callable[[], SchemaExtension]] = [
        partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        partial(AddValidationRules, rules),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)  # rejects __schema/__type (not __typename) in validation
    extensions.append(
        partial(
            OperationLimits,
            max_cost=settings.max_query_cost,
            page_sizes=PageSizes.from_settings(settings),
            cost_table=cost_table,
            max_ledger_queries=settings.max_ledger_queries,
            passed=IdentityMemo(512),
        )
    )
    return extensions
