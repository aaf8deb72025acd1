"""A small, strict GraphQL query-language parser (the executable subset of the spec).

It reads operations (``query``, shorthand ``{ … }``, variable definitions with defaults),
fields with aliases and arguments, fragments (named and inline), directives, and every
value kind. It rejects anything else with :class:`GraphQLError` naming the position,
so a malformed query never reaches the executor. Nesting is bounded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeAlias

MAX_DEPTH = 32


class GraphQLError(Exception):
    """A query that cannot be parsed, validated or executed; the message is user-facing."""


@dataclass(frozen=True)
class Variable:
    name: str


@dataclass(frozen=True)
class EnumValue:
    name: str


@dataclass(frozen=True)
class TypeRef:
    """A type reference: ``Name``, ``[Inner]``, with ``!`` for non-null."""

    name: str | None = None
    of: TypeRef | None = None
    non_null: bool = False

    def __str__(self) -> str:
        text = self.name if self.of is None else f"[{self.of}]"
        return f"{text}!" if self.non_null else str(text)


@dataclass(frozen=True)
class Directive:
    name: str
    arguments: dict[str, Any]


@dataclass
class Field:
    name: str
    alias: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    directives: list[Directive] = field(default_factory=list)
    selections: list[Selection] | None = None

    @property
    def key(self) -> str:
        """Name of the field in the response."""
        return self.alias or self.name


@dataclass
class FragmentSpread:
    name: str
    directives: list[Directive] = field(default_factory=list)


@dataclass
class InlineFragment:
    type_condition: str | None
    selections: list[Selection]
    directives: list[Directive] = field(default_factory=list)


Selection: TypeAlias = "Field | FragmentSpread | InlineFragment"


@dataclass(frozen=True)
class VariableDefinition:
    name: str
    type: TypeRef
    default: Any = None
    has_default: bool = False


@dataclass
class Operation:
    kind: str
    name: str | None
    variables: list[VariableDefinition]
    selections: list[Selection]
    directives: list[Directive] = field(default_factory=list)


@dataclass
class Fragment:
    name: str
    type_condition: str
    selections: list[Selection]
    directives: list[Directive] = field(default_factory=list)


@dataclass
class Document:
    operations: list[Operation]
    fragments: dict[str, Fragment]


# --- lexer ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<skip>(?:[\s,\ufeff]|\#[^\n\r]*)+)
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$&():=@\[\]{|}])
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<number>-?(?:0|[1-9][0-9]*)(?P<frac>\.[0-9]+)?(?P<exp>[eE][+-]?[0-9]+)?(?![_A-Za-z0-9.]))
  | (?P<block>\"\"\"(?:\\\"\"\"|(?!\"\"\")[\s\S])*\"\"\")
  | (?P<string>"(?:[^"\\\n\r]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*")
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # punct, name, int, float, string, eof
    value: Any
    pos: int


def _block_string(raw: str) -> str:
    """Value of a block string per the spec: common indentation and blank edges removed."""
    lines = raw.replace('\\"""', '"""').replace("\r\n", "\n").replace("\r", "\n").split("\n")
    indents = [len(line) - len(line.lstrip(" \t")) for line in lines[1:] if line.strip(" \t")]
    common = min(indents) if indents else 0
    lines = [lines[0]] + [line[common:] for line in lines[1:]]
    while lines and not lines[0].strip(" \t"):
        lines.pop(0)
    while lines and not lines[-1].strip(" \t"):
        lines.pop()
    return "\n".join(lines)


def _checked(text: str, pos: int) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise GraphQLError(f"Syntax Error: string at {pos} holds an unpaired surrogate") from None
    return text


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens; ``GraphQLError`` at the first character that fits none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise GraphQLError(f"Syntax Error: unexpected character {source[pos]!r} at {pos}")
        kind = match.lastgroup
        text = match.group(0)
        if kind == "number":
            if match.group("frac") or match.group("exp"):
                tokens.append(Token("float", float(text), pos))
            else:
                tokens.append(Token("int", int(text), pos))
        elif kind in ("punct", "spread"):
            tokens.append(Token("punct", text, pos))
        elif kind == "name":
            tokens.append(Token("name", text, pos))
        elif kind == "string":
            tokens.append(Token("string", _checked(json.loads(text, strict=False), pos), pos))
        elif kind == "block":
            tokens.append(Token("string", _checked(_block_string(text[3:-3]), pos), pos))
        pos = match.end()
    tokens.append(Token("eof", None, pos))
    return tokens


# --- parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.index = 0
        self.depth = 0

    # token helpers
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "eof":
            self.index += 1
        return token

    def peek(self, value: str) -> bool:
        return self.token.kind == "punct" and self.token.value == value

    def peek_name(self, value: str | None = None) -> bool:
        return self.token.kind == "name" and (value is None or self.token.value == value)

    def expect(self, value: str) -> None:
        if not self.peek(value):
            self.fail(f"expected {value!r}")
        self.advance()

    def expect_name(self) -> str:
        if self.token.kind != "name":
            self.fail("expected a name")
        return str(self.advance().value)

    def fail(self, message: str) -> NoReturn:
        token = self.token
        found = "end of query" if token.kind == "eof" else repr(token.value)
        raise GraphQLError(f"Syntax Error: {message}, found {found} at {token.pos}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise GraphQLError(f"Syntax Error: query nests deeper than {MAX_DEPTH} levels")

    # document
    def document(self) -> Document:
        operations: list[Operation] = []
        fragments: dict[str, Fragment] = {}
        if self.token.kind == "eof":
            self.fail("expected a query")
        while self.token.kind != "eof":
            if self.peek("{"):
                operations.append(Operation("query", None, [], self.selection_set()))
            elif self.peek_name("fragment"):
                fragment = self.fragment()
                if fragment.name in fragments:
                    raise GraphQLError(f'There can be only one fragment named "{fragment.name}".')
                fragments[fragment.name] = fragment
            elif (
                self.peek_name("query")
                or self.peek_name("mutation")
                or self.peek_name("subscription")
            ):
                operations.append(self.operation())
            else:
                self.fail("expected an operation or a fragment")
        return Document(operations, fragments)

    def operation(self) -> Operation:
        kind = self.expect_name()
        name = self.expect_name() if self.token.kind == "name" else None
        variables = self.variable_definitions() if self.peek("(") else []
        directives = self.directives(const=False)
        return Operation(kind, name, variables, self.selection_set(), directives)

    def fragment(self) -> Fragment:
        self.expect_name()  # "fragment"
        name = self.expect_name()
        if name == "on":
            self.fail("a fragment cannot be named 'on'")
        if self.expect_name() != "on":
            self.index -= 1
            self.fail("expected 'on'")
        type_condition = self.expect_name()
        directives = self.directives(const=False)
        return Fragment(name, type_condition, self.selection_set(), directives)

    def variable_definitions(self) -> list[VariableDefinition]:
        self.expect("(")
        definitions: list[VariableDefinition] = []
        while not self.peek(")"):
            self.expect("$")
            name = self.expect_name()
            self.expect(":")
            type_ref = self.type_ref()
            if self.peek("="):
                self.advance()
                default = self.value(const=True)
                definitions.append(VariableDefinition(name, type_ref, default, True))
            else:
                definitions.append(VariableDefinition(name, type_ref))
            self.directives(const=True)
        self.advance()
        if not definitions:
            self.fail("expected a variable definition")
        return definitions

    def type_ref(self) -> TypeRef:
        if self.peek("["):
            self.advance()
            self.nested()
            inner = self.type_ref()
            self.depth -= 1
            self.expect("]")
            ref = TypeRef(of=inner)
        else:
            ref = TypeRef(name=self.expect_name())
        if self.peek("!"):
            self.advance()
            ref = TypeRef(name=ref.name, of=ref.of, non_null=True)
        return ref

    def selection_set(self) -> list[Selection]:
        self.expect("{")
        self.nested()
        selections: list[Selection] = []
        while not self.peek("}"):
            selections.append(self.selection())
        self.advance()
        self.depth -= 1
        if not selections:
            self.fail("expected at least one field")
        return selections

    def selection(self) -> Selection:
        if self.peek("..."):
            self.advance()
            if self.peek_name("on"):
                self.advance()
                condition = self.expect_name()
                directives = self.directives(const=False)
                return InlineFragment(condition, self.selection_set(), directives)
            if self.token.kind == "name":
                return FragmentSpread(self.expect_name(), self.directives(const=False))
            directives = self.directives(const=False)
            return InlineFragment(None, self.selection_set(), directives)
        name = self.expect_name()
        alias = None
        if self.peek(":"):
            self.advance()
            alias, name = name, self.expect_name()
        arguments = self.arguments(const=False) if self.peek("(") else {}
        directives = self.directives(const=False)
        selections = self.selection_set() if self.peek("{") else None
        return Field(name, alias, arguments, directives, selections)

    def arguments(self, *, const: bool) -> dict[str, Any]:
        self.expect("(")
        arguments: dict[str, Any] = {}
        while not self.peek(")"):
            name = self.expect_name()
            if name in arguments:
                raise GraphQLError(f'There can be only one argument named "{name}".')
            self.expect(":")
            arguments[name] = self.value(const=const)
        self.advance()
        if not arguments:
            self.fail("expected an argument")
        return arguments

    def directives(self, *, const: bool) -> list[Directive]:
        directives: list[Directive] = []
        while self.peek("@"):
            self.advance()
            name = self.expect_name()
            arguments = self.arguments(const=const) if self.peek("(") else {}
            directives.append(Directive(name, arguments))
        return directives

    def value(self, *, const: bool) -> Any:
        token = self.token
        if token.kind in ("int", "float", "string"):
            self.advance()
            return token.value
        if token.kind == "name":
            self.advance()
            if token.value in ("true", "false"):
                return token.value == "true"
            if token.value == "null":
                return None
            return EnumValue(str(token.value))
        if self.peek("$"):
            if const:
                self.fail("variables are not allowed here")
            self.advance()
            return Variable(self.expect_name())
        if self.peek("["):
            self.advance()
            self.nested()
            items = []
            while not self.peek("]"):
                items.append(self.value(const=const))
            self.advance()
            self.depth -= 1
            return items
        if self.peek("{"):
            self.advance()
            self.nested()
            fields: dict[str, Any] = {}
            while not self.peek("}"):
                name = self.expect_name()
                if name in fields:
                    raise GraphQLError(f'There can be only one input field named "{name}".')
                self.expect(":")
                fields[name] = self.value(const=const)
            self.advance()
            self.depth -= 1
            return fields
        return self.fail("expected a value")


def parse(source: str) -> Document:
    """Parse a GraphQL document; ``GraphQLError`` on any syntax error."""
    if not isinstance(source, str):
        raise GraphQLError("Must provide query string.")
    return _Parser(source).document()
