"""Execute the Arweave/ar.io GraphQL subset a provenance verifier needs, honestly.

Supported: ``transactions(ids, owners, recipients, tags, bundledIn, block, first, after,
sort)`` and ``transaction(id)``, with literal arguments or ``$variables``, aliases,
fragments, ``@skip``/``@include`` and ``__typename``. Queries are validated against the
schema below before anything runs (unknown fields, arguments or types are errors, as on a
real gateway), and only the requested fields are returned.

Differences from ar.io, by design of a local stand-in: items are never inside a bundle
(``bundledIn`` is ``null``; a ``bundledIn: [...]`` filter matches nothing), fees are
zero, ``block`` is synthetic (see :mod:`.chain`), and tag filters support ``op: EQ|NEQ``
with ``match: EXACT`` only. ``first`` defaults to 10 and is capped at 100; cursors are
opaque and stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ario_mlflow.arweave.encoding import b64url_decode, b64url_encode
from ario_mlflow.localgw.chain import SyntheticChain
from ario_mlflow.localgw.gqlparse import (
    Directive,
    Document,
    EnumValue,
    Field,
    Fragment,
    FragmentSpread,
    GraphQLError,
    InlineFragment,
    Operation,
    Selection,
    TypeRef,
    Variable,
    parse,
)
from ario_mlflow.localgw.store import ItemQuery, ItemStore, StoredItem, TagFilter

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
#: Longest list accepted by a list filter (ids, owners, tag values …).
MAX_FILTER_VALUES = 1000
_CURSOR_PREFIX = "localgw:"

# --- schema -------------------------------------------------------------------------------

_SCALARS = frozenset({"String", "ID", "Int", "Boolean", "Float"})
_ENUMS: dict[str, frozenset[str]] = {
    "SortOrder": frozenset({"HEIGHT_DESC", "HEIGHT_ASC"}),
    "TagOperator": frozenset({"EQ", "NEQ"}),
    "TagMatch": frozenset({"EXACT", "WILDCARD", "FUZZY_AND", "FUZZY_OR"}),
}


def _t(text: str) -> TypeRef:
    """Build a TypeRef from SDL text such as ``[String!]!``."""
    non_null = text.endswith("!")
    core = text[:-1] if non_null else text
    if core.startswith("["):
        return TypeRef(of=_t(core[1:-1]), non_null=non_null)
    return TypeRef(name=core, non_null=non_null)


_INPUTS: dict[str, dict[str, TypeRef]] = {
    "TagFilter": {
        "name": _t("String!"),
        "values": _t("[String!]!"),
        "op": _t("TagOperator"),
        "match": _t("TagMatch"),
    },
    "BlockFilter": {"min": _t("Int"), "max": _t("Int")},
}

#: object type -> field -> (type name, is a list)
_OBJECTS: dict[str, dict[str, tuple[str, bool]]] = {
    "Query": {
        "transactions": ("TransactionConnection", False),
        "transaction": ("Transaction", False),
    },
    "TransactionConnection": {"pageInfo": ("PageInfo", False), "edges": ("TransactionEdge", True)},
    "PageInfo": {"hasNextPage": ("Boolean", False)},
    "TransactionEdge": {"cursor": ("String", False), "node": ("Transaction", False)},
    "Transaction": {
        "id": ("ID", False),
        "anchor": ("String", False),
        "signature": ("String", False),
        "recipient": ("String", False),
        "owner": ("Owner", False),
        "fee": ("Amount", False),
        "quantity": ("Amount", False),
        "data": ("MetaData", False),
        "tags": ("Tag", True),
        "block": ("Block", False),
        "parent": ("Parent", False),
        "bundledIn": ("Bundle", False),
    },
    "Owner": {"address": ("String", False), "key": ("String", False)},
    "Amount": {"winston": ("String", False), "ar": ("String", False)},
    "MetaData": {"size": ("String", False), "type": ("String", False)},
    "Tag": {"name": ("String", False), "value": ("String", False)},
    "Block": {
        "id": ("ID", False),
        "timestamp": ("Int", False),
        "height": ("Int", False),
        "previous": ("ID", False),
    },
    "Parent": {"id": ("ID", False)},
    "Bundle": {"id": ("ID", False)},
}

_ROOT_ARGS: dict[str, dict[str, TypeRef]] = {
    "transactions": {
        "ids": _t("[ID!]"),
        "owners": _t("[String!]"),
        "recipients": _t("[String!]"),
        "tags": _t("[TagFilter!]"),
        "bundledIn": _t("[ID!]"),
        "block": _t("BlockFilter"),
        "first": _t("Int"),
        "after": _t("String"),
        "sort": _t("SortOrder"),
    },
    "transaction": {"id": _t("ID!")},
}
_DIRECTIVE_ARGS = {"skip": {"if": _t("Boolean!")}, "include": {"if": _t("Boolean!")}}

# --- coercion -----------------------------------------------------------------------------

_MISSING = object()


def _coerce(value: Any, ref: TypeRef, where: str, variables: Mapping[str, Any] | None) -> Any:
    """Input coercion of a literal (``variables`` given) or a variable value (``None``)."""
    if isinstance(value, Variable):
        if variables is None or value.name not in variables:
            raise GraphQLError(f'Variable "${value.name}" is not defined.')
        return _coerce(variables[value.name], ref, where, None)
    if value is None:
        if ref.non_null:
            raise GraphQLError(f'{where}: expected a non-null value of type "{ref}".')
        return None
    if ref.of is not None:
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_FILTER_VALUES:
            raise GraphQLError(f"{where}: at most {MAX_FILTER_VALUES} values are allowed.")
        return [_coerce(item, ref.of, f"{where}[{i}]", variables) for i, item in enumerate(items)]
    name = str(ref.name)
    if name in _SCALARS:
        return _coerce_scalar(value, name, where)
    if name in _ENUMS:
        literal = variables is not None
        text = value.name if literal and isinstance(value, EnumValue) else None
        if not literal and isinstance(value, str):
            text = value
        if text not in _ENUMS[name]:
            raise GraphQLError(f'{where}: Value {_show(value)} does not exist in "{name}" enum.')
        return text
    if name in _INPUTS:
        return _coerce_input(value, name, where, variables)
    raise GraphQLError(f'Unknown type "{name}".')


def _coerce_scalar(value: Any, name: str, where: str) -> Any:
    if name == "ID" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if name in ("String", "ID"):
        if not isinstance(value, str):
            raise GraphQLError(f"{where}: {name} cannot represent {_show(value)}.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise GraphQLError(f"{where}: string holds an unpaired surrogate.") from None
        return value
    if name == "Boolean":
        if not isinstance(value, bool):
            raise GraphQLError(f"{where}: Boolean cannot represent {_show(value)}.")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GraphQLError(f"{where}: {name} cannot represent {_show(value)}.")
    if name == "Float":
        return float(value)
    if not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise GraphQLError(f"{where}: Int cannot represent {_show(value)}.")
    return value


def _coerce_input(
    value: Any, name: str, where: str, variables: Mapping[str, Any] | None
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GraphQLError(f"{where}: expected an object of type {name}.")
    spec = _INPUTS[name]
    unknown = sorted(set(value) - set(spec))
    if unknown:
        raise GraphQLError(f'{where}: Field "{unknown[0]}" is not defined by type "{name}".')
    result: dict[str, Any] = {}
    for key, key_ref in spec.items():
        raw = value.get(key, _MISSING)
        if raw is _MISSING:
            if key_ref.non_null:
                raise GraphQLError(
                    f'{where}: Field "{name}.{key}" of required type "{key_ref}" was not provided.'
                )
            continue
        result[key] = _coerce(raw, key_ref, f"{where}.{key}", variables)
    return result


def _show(value: Any) -> str:
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    return repr(value)


def _known_type(ref: TypeRef) -> bool:
    if ref.of is not None:
        return _known_type(ref.of)
    return ref.name in _SCALARS or ref.name in _ENUMS or ref.name in _INPUTS


def _coerce_variables(operation: Operation, provided: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for definition in operation.variables:
        if definition.name in values:
            raise GraphQLError(f'There can be only one variable named "${definition.name}".')
        if not _known_type(definition.type):
            raise GraphQLError(f'Unknown type "{definition.type}".')
        where = f'Variable "${definition.name}"'
        if definition.name in provided:
            values[definition.name] = _coerce(
                provided[definition.name], definition.type, where, None
            )
        elif definition.has_default:
            values[definition.name] = _coerce(definition.default, definition.type, where, {})
        elif definition.type.non_null:
            raise GraphQLError(
                f'Variable "${definition.name}" of required type "{definition.type}" '
                "was not provided."
            )
        else:
            values[definition.name] = None
    return values


# --- validation ---------------------------------------------------------------------------


class _Validator:
    """Static checks of the selected operation against the schema (before any execution)."""

    def __init__(self, document: Document, declared: set[str]) -> None:
        self.fragments = document.fragments
        self.declared = declared
        self.used_fragments: set[str] = set()

    def check_value_variables(self, value: Any) -> None:
        if isinstance(value, Variable):
            if value.name not in self.declared:
                raise GraphQLError(f'Variable "${value.name}" is not defined.')
        elif isinstance(value, list):
            for item in value:
                self.check_value_variables(item)
        elif isinstance(value, dict):
            for item in value.values():
                self.check_value_variables(item)

    def check_directives(self, directives: list[Directive]) -> None:
        for directive in directives:
            spec = _DIRECTIVE_ARGS.get(directive.name)
            if spec is None:
                raise GraphQLError(f'Unknown directive "@{directive.name}".')
            for name, value in directive.arguments.items():
                if name not in spec:
                    raise GraphQLError(
                        f'Unknown argument "{name}" on directive "@{directive.name}".'
                    )
                self.check_value_variables(value)
            if "if" not in directive.arguments:
                raise GraphQLError(f'Directive "@{directive.name}" argument "if" is required.')

    def selections(
        self, type_name: str, selections: list[Selection], stack: tuple[str, ...]
    ) -> None:
        for selection in selections:
            self.check_directives(selection.directives)
            if isinstance(selection, Field):
                self.field(type_name, selection, stack)
            elif isinstance(selection, InlineFragment):
                if selection.type_condition not in (None, type_name):
                    raise GraphQLError(
                        f'Fragment cannot be spread here as objects of type "{type_name}" can '
                        f'never be of type "{selection.type_condition}".'
                    )
                self.selections(type_name, selection.selections, stack)
            else:
                fragment = self.fragments.get(selection.name)
                if fragment is None:
                    raise GraphQLError(f'Unknown fragment "{selection.name}".')
                if selection.name in stack:
                    raise GraphQLError(f'Cannot spread fragment "{selection.name}" within itself.')
                if fragment.type_condition != type_name:
                    raise GraphQLError(
                        f'Fragment "{selection.name}" cannot be spread here as objects of type '
                        f'"{type_name}" can never be of type "{fragment.type_condition}".'
                    )
                self.used_fragments.add(selection.name)
                self.check_directives(fragment.directives)
                self.selections(type_name, fragment.selections, (*stack, selection.name))

    def field(self, type_name: str, node: Field, stack: tuple[str, ...]) -> None:
        if node.name == "__typename":
            if node.arguments or node.selections:
                raise GraphQLError('Field "__typename" takes no arguments or subfields.')
            return
        fields = _OBJECTS[type_name]
        if node.name not in fields:
            raise GraphQLError(f'Cannot query field "{node.name}" on type "{type_name}".')
        target, _ = fields[node.name]
        allowed = _ROOT_ARGS.get(node.name, {}) if type_name == "Query" else {}
        for name, value in node.arguments.items():
            if name not in allowed:
                raise GraphQLError(f'Unknown argument "{name}" on field "{type_name}.{node.name}".')
            self.check_value_variables(value)
        for name, ref in allowed.items():
            if ref.non_null and name not in node.arguments:
                raise GraphQLError(
                    f'Field "{node.name}" argument "{name}" of type "{ref}" is required, '
                    "but it was not provided."
                )
        if target in _OBJECTS:
            if not node.selections:
                raise GraphQLError(
                    f'Field "{node.name}" of type "{target}" must have a selection of subfields.'
                )
            self.selections(target, node.selections, stack)
        elif node.selections:
            raise GraphQLError(
                f'Field "{node.name}" must not have a selection since type "{target}" '
                "has no subfields."
            )


def _select_operation(document: Document, name: str | None) -> Operation:
    if name is not None:
        for operation in document.operations:
            if operation.name == name:
                return operation
        raise GraphQLError(f'Unknown operation named "{name}".')
    if len(document.operations) != 1:
        if not document.operations:
            raise GraphQLError("Must provide an operation.")
        raise GraphQLError("Must provide operation name if query contains multiple operations.")
    return document.operations[0]


# --- execution ----------------------------------------------------------------------------


def encode_cursor(seq: int) -> str:
    """Opaque, stable cursor of the item accepted ``seq``-th."""
    return b64url_encode(f"{_CURSOR_PREFIX}{seq}".encode())


def decode_cursor(cursor: str) -> int:
    """Inverse of :func:`encode_cursor`; ``GraphQLError`` for anything else."""
    try:
        text = b64url_decode(cursor).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError
        digits = text[len(_CURSOR_PREFIX) :]
        if not digits.isdigit():
            raise ValueError
        return int(digits)
    except (ValueError, UnicodeDecodeError):
        raise GraphQLError(f"Invalid cursor {cursor!r}.") from None


@dataclass
class _Context:
    store: ItemStore
    chain: SyntheticChain
    now: float
    variables: dict[str, Any]
    fragments: dict[str, Fragment]


def _node(item: StoredItem, ctx: _Context) -> dict[str, Any]:
    zero = {"winston": "0", "ar": "0.000000000000"}
    return {
        "id": item.id,
        "anchor": item.anchor,
        "signature": b64url_encode(item.signature),
        "recipient": item.target,
        "owner": {"address": item.owner_address, "key": b64url_encode(item.owner)},
        "fee": zero,
        "quantity": zero,
        "data": {"size": str(item.data_size), "type": item.content_type},
        "tags": [{"name": name, "value": value} for name, value in item.tags],
        "block": ctx.chain.block(item, ctx.now),
        "parent": None,
        "bundledIn": None,
    }


def _resolve_transaction(args: dict[str, Any], ctx: _Context) -> dict[str, Any] | None:
    item = ctx.store.get(args["id"])
    return None if item is None else _node(item, ctx)


def _resolve_transactions(args: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    first = args.get("first")
    first = DEFAULT_PAGE_SIZE if first is None else first
    if first < 0:
        raise GraphQLError('Argument "first" must not be negative.')
    first = min(first, MAX_PAGE_SIZE)
    after = args.get("after")
    after_seq = decode_cursor(after) if after else None
    descending = (args.get("sort") or "HEIGHT_DESC") == "HEIGHT_DESC"
    tags = []
    for tag in args.get("tags") or ():
        if tag.get("match") not in (None, "EXACT"):
            raise GraphQLError(f"Tag match {tag['match']} is not supported by the local gateway.")
        tags.append(TagFilter(tag["name"], tuple(tag["values"]), tag.get("op") == "NEQ"))
    block = args.get("block")
    received_before = min_seq = max_seq = None
    if block is not None:
        received_before = ctx.chain.finalized_cutoff(ctx.now)
        min_seq, max_seq = ctx.chain.seq_range(block.get("min"), block.get("max"))

    def listed(name: str) -> tuple[str, ...] | None:
        value = args.get(name)
        return None if value is None else tuple(value)

    query = ItemQuery(
        ids=listed("ids"),
        owners=listed("owners"),
        recipients=listed("recipients"),
        tags=tuple(tags),
        received_before=received_before,
        min_seq=min_seq,
        max_seq=max_seq,
        empty=args.get("bundledIn") is not None,
    )
    rows = ctx.store.query(query, descending=descending, after_seq=after_seq, limit=first + 1)
    return {
        "pageInfo": {"hasNextPage": len(rows) > first},
        "edges": [
            {"cursor": encode_cursor(item.seq), "node": _node(item, ctx)} for item in rows[:first]
        ],
    }


_RESOLVERS: dict[str, Callable[[dict[str, Any], _Context], Any]] = {
    "transactions": _resolve_transactions,
    "transaction": _resolve_transaction,
}


def _included(directives: list[Directive], variables: dict[str, Any]) -> bool:
    for directive in directives:
        flag = _coerce(directive.arguments["if"], _t("Boolean!"), f"@{directive.name}", variables)
        if (directive.name == "skip") == bool(flag):
            return False
    return True


def _collect(selections: list[Selection], ctx: _Context, out: dict[str, list[Field]]) -> None:
    """Group the fields to return by response key, expanding fragments and directives."""
    for selection in selections:
        if not _included(selection.directives, ctx.variables):
            continue
        if isinstance(selection, Field):
            out.setdefault(selection.key, []).append(selection)
        elif isinstance(selection, InlineFragment):
            _collect(selection.selections, ctx, out)
        elif isinstance(selection, FragmentSpread):
            fragment = ctx.fragments[selection.name]
            if _included(fragment.directives, ctx.variables):
                _collect(fragment.selections, ctx, out)


def _project(value: Any, type_name: str, selections: list[Selection], ctx: _Context) -> Any:
    if value is None:
        return None
    grouped: dict[str, list[Field]] = {}
    _collect(selections, ctx, grouped)
    result: dict[str, Any] = {}
    for key, nodes in grouped.items():
        name = nodes[0].name
        if any(node.name != name for node in nodes):
            raise GraphQLError(f'Fields "{key}" conflict because they select different fields.')
        if name == "__typename":
            result[key] = type_name
            continue
        target, is_list = _OBJECTS[type_name][name]
        if type_name == "Query":
            args = {
                arg: _coerce(raw, _ROOT_ARGS[name][arg], f'Argument "{arg}"', ctx.variables)
                for arg, raw in nodes[0].arguments.items()
            }
            raw_value = _RESOLVERS[name](args, ctx)
        else:
            raw_value = value.get(name)
        if target not in _OBJECTS:
            result[key] = raw_value
            continue
        merged = [sel for node in nodes for sel in node.selections or ()]
        if is_list:
            result[key] = [_project(entry, target, merged, ctx) for entry in raw_value or ()]
        else:
            result[key] = _project(raw_value, target, merged, ctx)
    return result


def execute(
    query: Any,
    *,
    store: ItemStore,
    chain: SyntheticChain,
    variables: Any = None,
    operation_name: Any = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Run one GraphQL request; returns ``{"data": …}`` or raises :class:`GraphQLError`."""
    if not isinstance(query, str) or not query.strip():
        raise GraphQLError("Must provide query string.")
    if variables is not None and not isinstance(variables, dict):
        raise GraphQLError("Variables must be provided as an object.")
    if operation_name is not None and not isinstance(operation_name, str):
        raise GraphQLError("Operation name must be a string.")
    document = parse(query)
    operation = _select_operation(document, operation_name)
    if operation.kind != "query":
        raise GraphQLError(f"The local gateway supports queries only, not {operation.kind}s.")
    validator = _Validator(document, {definition.name for definition in operation.variables})
    validator.check_directives(operation.directives)
    validator.selections("Query", operation.selections, ())
    ctx = _Context(
        store=store,
        chain=chain,
        now=time.time() if now is None else now,
        variables=_coerce_variables(operation, variables or {}),
        fragments=document.fragments,
    )
    return {"data": _project({}, "Query", operation.selections, ctx)}
